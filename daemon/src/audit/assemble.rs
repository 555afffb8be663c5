//! Multi-record audit events (SYSCALL, EXECVE, CWD, PATH, SOCKADDR,
//! PROCTITLE, ... EOE) assembled by serial number. User-space records
//! (PAM's USER_*, CRED_*) are complete on their own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::netlink::RawAuditRecord;

const EOE: u16 = 1320;
const EXECVE: u16 = 1309;
/// Records of an event whose EOE never came are flushed after this.
const INCOMPLETE_AFTER: Duration = Duration::from_secs(2);
/// Bound of the events being assembled. Serials are the kernel's, but a
/// burst without EOEs (or a forged stream on a hostile socket) must not
/// grow the table for two seconds: past the cap, the oldest pending
/// event is emitted as incomplete — reported, not dropped.
pub const MAX_PENDING: usize = 4096;
/// Bound of the records one event keeps. Only EXECVE repeats without a
/// limit (a huge argc is split over many records, and the argv kept is
/// 4 KiB anyway): past the cap further EXECVE records are dropped and
/// counted; other records (CWD, PATH, PROCTITLE) are kept up to twice it.
pub const MAX_RECORDS: usize = 256;

/// An assembled event: all records of one serial, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub serial: u64,
    /// Milliseconds since the Unix epoch, from the record header.
    pub time_ms: u64,
    pub records: Vec<RawAuditRecord>,
    /// The event ended by timeout, not by its EOE record.
    pub incomplete: bool,
}

/// (seconds, milliseconds, serial) from "audit(1732512345.123:4567): ...".
pub fn event_id(text: &[u8]) -> Option<(u64, u64, u64)> {
    let s = std::str::from_utf8(text.get(..64.min(text.len()))?).ok()?;
    let inner = s.strip_prefix("audit(")?;
    let (stamp, rest) = inner.split_once(':')?;
    let serial: u64 = rest.split(')').next()?.parse().ok()?;
    let (sec, ms) = stamp.split_once('.')?;
    Some((sec.parse().ok()?, ms.parse().ok()?, serial))
}

/// Kernel-generated syscall events end with EOE; user-space messages
/// (1100–1199, 2100–2999) stand alone.
fn standalone(ty: u16) -> bool {
    (1100..1200).contains(&ty) || (2100..3000).contains(&ty)
}

struct Pending {
    first_seen: Instant,
    event: AuditEvent,
}

#[derive(Default)]
pub struct Assembler {
    pending: BTreeMap<u64, Pending>,
    /// Records without a parsable audit(...) header.
    pub malformed: u64,
    /// Records dropped past `MAX_RECORDS`, and events emitted early as
    /// incomplete because `MAX_PENDING` were pending.
    pub dropped: u64,
}

impl Assembler {
    /// Adds a record; returns events it completed.
    pub fn push(&mut self, rec: RawAuditRecord, now: Instant) -> Vec<AuditEvent> {
        let Some((sec, ms, serial)) = event_id(&rec.text) else {
            self.malformed += 1;
            return Vec::new();
        };
        // Saturating: the header's numbers are parsed from text (a
        // 17-digit second count overflowed here).
        let time_ms = sec.saturating_mul(1000).saturating_add(ms);
        if standalone(rec.ty) {
            return vec![AuditEvent {
                serial,
                time_ms,
                records: vec![rec],
                incomplete: false,
            }];
        }
        if rec.ty == EOE {
            return self
                .pending
                .remove(&serial)
                .map(|p| vec![p.event])
                .unwrap_or_default();
        }
        let mut out = Vec::new();
        if self.pending.len() >= MAX_PENDING
            && !self.pending.contains_key(&serial)
            && let Some(oldest) = self.oldest()
            && let Some(mut p) = self.pending.remove(&oldest)
        {
            self.dropped += 1;
            p.event.incomplete = true;
            out.push(p.event);
        }
        let records = &mut self
            .pending
            .entry(serial)
            .or_insert_with(|| Pending {
                first_seen: now,
                event: AuditEvent {
                    serial,
                    time_ms,
                    records: Vec::new(),
                    incomplete: false,
                },
            })
            .event
            .records;
        let cap = if rec.ty == EXECVE {
            MAX_RECORDS
        } else {
            2 * MAX_RECORDS
        };
        if records.len() < cap {
            records.push(rec);
        } else {
            self.dropped += 1;
        }
        out
    }

    /// The lowest pending serial: the kernel numbers events in order, so
    /// it is the oldest (a lookup, not a scan, at every record of a flood).
    fn oldest(&self) -> Option<u64> {
        self.pending.keys().next().copied()
    }

    pub fn table_use(&self) -> crate::bounds::TableUse {
        crate::bounds::TableUse {
            name: "audit_pending_events",
            entries: self.pending.len(),
            cap: MAX_PENDING,
            dropped: self.dropped,
        }
    }

    /// Events whose EOE did not come in time, marked incomplete.
    pub fn expire(&mut self, now: Instant) -> Vec<AuditEvent> {
        let old: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.first_seen) >= INCOMPLETE_AFTER)
            .map(|(s, _)| *s)
            .collect();
        old.into_iter()
            .filter_map(|s| self.pending.remove(&s))
            .map(|mut p| {
                p.event.incomplete = true;
                p.event
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ty: u16, t: &str) -> RawAuditRecord {
        RawAuditRecord {
            ty,
            text: t.as_bytes().to_vec(),
        }
    }

    /// Seen while writing the audit_chain fuzz target: the time in
    /// milliseconds overflowed (a panic with overflow checks, a wrapped
    /// time without).
    #[test]
    fn a_header_with_a_huge_second_count_saturates() {
        let mut a = Assembler::default();
        let ev = a.push(
            rec(1112, "audit(99999999999999999.999:1): pid=1 msg='op=login'"),
            Instant::now(),
        );
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].time_ms, u64::MAX);
    }

    #[test]
    fn records_join_until_eoe() {
        let mut a = Assembler::default();
        let now = Instant::now();
        assert!(
            a.push(rec(1300, "audit(10.5:7): syscall=59"), now)
                .is_empty()
        );
        assert!(
            a.push(rec(1307, "audit(10.5:7): cwd=\"/\""), now)
                .is_empty()
        );
        let ev = a.push(rec(1320, "audit(10.5:7): "), now);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].serial, 7);
        assert_eq!(ev[0].time_ms, 10_005);
        assert_eq!(ev[0].records.len(), 2);
    }

    #[test]
    fn user_records_stand_alone_and_garbage_is_counted() {
        let mut a = Assembler::default();
        let now = Instant::now();
        assert_eq!(a.push(rec(1100, "audit(1.0:2): pid=1"), now).len(), 1);
        assert!(a.push(rec(1300, "not audit"), now).is_empty());
        assert_eq!(a.malformed, 1);
    }

    #[test]
    fn a_missing_eoe_expires_as_incomplete() {
        let mut a = Assembler::default();
        let now = Instant::now();
        a.push(rec(1300, "audit(1.0:3): syscall=2"), now);
        assert!(a.expire(now).is_empty());
        let ev = a.expire(now + INCOMPLETE_AFTER);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].incomplete);
    }

    #[test]
    fn a_flood_without_eoe_and_a_huge_argc_stay_within_the_caps() {
        let mut a = Assembler::default();
        let now = Instant::now();
        let mut early = Vec::new();
        for serial in 0..3 * MAX_PENDING as u64 {
            let t = format!("audit(1.0:{serial}): syscall=59");
            early.extend(a.push(rec(1300, &t), now));
        }
        assert_eq!(a.table_use().entries, MAX_PENDING);
        assert_eq!(early.len(), 2 * MAX_PENDING, "emitted, not lost");
        assert!(early.iter().all(|e| e.incomplete));
        assert_eq!(early[0].serial, 0, "oldest first");
        // One event with thousands of EXECVE records, then its CWD.
        let mut b = Assembler::default();
        b.push(rec(1300, "audit(1.0:9): syscall=59"), now);
        for i in 0..5_000 {
            b.push(rec(1309, &format!("audit(1.0:9): a{i}=\"x\"")), now);
        }
        b.push(rec(1307, "audit(1.0:9): cwd=\"/tmp\""), now);
        let ev = b.push(rec(1320, "audit(1.0:9): "), now);
        assert_eq!(ev.len(), 1);
        let recs = &ev[0].records;
        assert_eq!(
            recs.iter().filter(|r| r.ty == 1309).count(),
            MAX_RECORDS - 1
        );
        assert!(recs.iter().any(|r| r.ty == 1307), "CWD kept");
        assert!(b.dropped >= 4_000);
    }
}
