//! What the audit side loses, counted and turned into in-band loss
//! records like the eBPF side's: the kernel's `lost` counter (backlog
//! overflow, rate limit), overflows of the sensor's own multicast socket,
//! and events that could not be converted (per kind where the SYSCALL
//! record names the call).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::selection::x86_64_syscall;
use crate::event::{Event, LossDetection, LossRecord, Provider};
use crate::kind::EventKind;

/// Counts of what the audit side could not turn into events.
#[derive(Debug, Default, Clone)]
pub struct AuditLoss {
    /// Our socket's buffer overflowed (ENOBUFS): records lost here.
    pub socket_overflows: u64,
    /// Audit events never received (serials skipped).
    pub serial_gaps: u64,
    /// Kernel `lost` counter growth since the sensor started.
    pub kernel_lost: u64,
    /// Records without an audit(...) header.
    pub malformed_records: u64,
    /// Events flushed without their EOE record (still converted when
    /// they can be: not lost by themselves).
    pub incomplete_events: u64,
    /// Events converted to nothing, by reason (malformed, incomplete).
    pub skipped: BTreeMap<String, u64>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn record(detected_by: LossDetection, missing: u64, by_kind: BTreeMap<String, u64>) -> Event {
    Event::Loss(LossRecord {
        time_ns: now_ns(),
        provider: Provider::Auditd,
        source: "auditd".into(),
        detected_by,
        first_missing: None,
        missing,
        dropped_by_type: by_kind,
    })
}

/// The kernel dropped `n` records (its `lost` counter grew): which ones,
/// it does not say.
pub fn kernel_lost(n: u64) -> Event {
    record(LossDetection::AuditKernelLost, n, BTreeMap::new())
}

/// `missing` audit events never reached the sensor (`SerialGaps`).
pub fn serial_gap(missing: u64) -> Event {
    record(LossDetection::AuditSerialGap, missing, BTreeMap::new())
}

/// Audit events the sensor never received. The kernel numbers every
/// audit event it emits (the serial, shared by all rules and PAM's
/// records) and sends each to the multicast group, so the serials read
/// are dense (checked on this kernel: 11,750 events, none skipped) and a
/// serial never seen is an event lost: to an overflow of our socket, or
/// dropped by the kernel (which its `lost` counter reports too — counted
/// twice then, erring on too many). Events arrive slightly out of order,
/// so a gap is declared only once it stays open for `GAP_WAIT` or
/// `WINDOW` later serials have arrived.
#[derive(Debug, Default)]
pub struct SerialGaps {
    /// Every serial up to here is either seen or counted missing.
    floor: Option<u64>,
    /// Serials seen above the floor.
    above: std::collections::BTreeSet<u64>,
    /// Since when the lowest gap has been open.
    open_since: Option<Instant>,
}

impl SerialGaps {
    const WINDOW: usize = 4096;
    const GAP_WAIT: Duration = Duration::from_secs(2);

    /// The serials of the events just read; how many serials were given
    /// up as lost.
    pub fn observe(&mut self, serials: impl Iterator<Item = u64>, now: Instant) -> u64 {
        for s in serials {
            match self.floor {
                None => self.floor = Some(s),
                Some(f) if s > f => {
                    self.above.insert(s);
                }
                Some(_) => {} // late, or already counted missing
            }
        }
        self.settle(now)
    }

    fn settle(&mut self, now: Instant) -> u64 {
        let Some(mut floor) = self.floor else {
            return 0;
        };
        let mut missing = 0;
        loop {
            while self.above.first() == Some(&(floor + 1)) {
                self.above.pop_first();
                floor += 1;
            }
            let Some(&next) = self.above.first() else {
                self.open_since = None;
                break;
            };
            let since = *self.open_since.get_or_insert(now);
            if self.above.len() < Self::WINDOW && now.duration_since(since) < Self::GAP_WAIT {
                break;
            }
            missing += next - floor - 1;
            floor = next - 1;
            self.open_since = None;
        }
        self.floor = Some(floor);
        missing
    }
}

/// Events that could not be converted, per kind.
pub fn unconverted(by_kind: BTreeMap<String, u64>) -> Event {
    let n = by_kind.values().sum();
    record(LossDetection::AuditUnconverted, n, by_kind)
}

/// The kind of a SYSCALL record's call, by its text (for loss records:
/// the conversion that would know failed). `unknown` otherwise.
pub fn kind_of_syscall_text(text: &[u8]) -> String {
    x86_64_syscall(text)
        .and_then(EventKind::from_audit_syscall)
        .map_or_else(|| "unknown".to_string(), |k| k.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_never_seen_is_lost_once_the_gap_has_stayed_open() {
        let t = Instant::now();
        let mut g = SerialGaps::default();
        assert_eq!(g.observe([10, 12, 11].into_iter(), t), 0);
        // 13 late, 14..=16 never: open, not yet given up.
        assert_eq!(g.observe([17, 18].into_iter(), t), 0);
        assert_eq!(g.observe([13].into_iter(), t), 0, "late, in time");
        let later = t + Duration::from_secs(3);
        assert_eq!(g.observe(std::iter::empty(), later), 3, "14, 15, 16");
        assert_eq!(g.observe([15, 19].into_iter(), later), 0, "counted once");
        // A flood of later serials gives a gap up without waiting.
        let flood = (30..30 + SerialGaps::WINDOW as u64).collect::<Vec<_>>();
        assert_eq!(g.observe(flood.into_iter(), later), 10, "20..=29");
    }

    #[test]
    fn a_failed_conversion_is_counted_under_its_kind() {
        let t = b"audit(1.2:3): arch=40000003 syscall=10 success=yes exit=0 pid=5";
        assert_eq!(kind_of_syscall_text(t), "file_delete");
        let t = b"audit(1.2:3): arch=c000003e syscall=42 success=yes exit=0 pid=5";
        assert_eq!(kind_of_syscall_text(t), "network_connect");
        assert_eq!(kind_of_syscall_text(b"garbage"), "unknown");
    }
}
