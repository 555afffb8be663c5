//! The audit event source: the multicast reader and assembler (always on,
//! for login events), the conversion of what it reads into normalized
//! events, and — for the kinds audit serves — our loaded rules.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::assemble::{Assembler, AuditEvent};
use super::control::{AuditError, Auditctl};
use super::convert::{self, Skip};
use super::loss::{self, AuditLoss, SerialGaps};
use super::netlink::{AuditMulticast, RawAuditRecord, Received};
use super::rules::RuleManager;
use super::selection::Selection;
use super::sockets;
use crate::event::{Event, ProcessInfo};
use crate::kind::{EventKind, Served};
use crate::pipeline::Pipeline;
use crate::source::EventSource;

/// Audit record types: user-space messages (PAM's USER_*) and the
/// SYSCALL record that carries a rule's key.
const USER_MSG: std::ops::Range<u16> = 1100..1200;
const SYSCALL: u16 = 1300;
/// How a SYSCALL record names our rules' key (`rules::KEY`; a test keeps
/// the two equal). A constant: this test runs on every audit event.
const KEY_FIELD: &[u8] = b" key=\"mdatp\"";

pub struct AuditReader {
    sock: AsyncFd<AuditMulticast>,
    assembler: Assembler,
    buf: Vec<RawAuditRecord>,
    gaps: SerialGaps,
    /// The last read left records in the socket: read again without
    /// waiting (epoll reports a socket once per arrival, not per record
    /// left, so waiting could leave them there until the next arrival).
    more: bool,
    pub loss: AuditLoss,
}

impl AuditReader {
    pub fn open() -> Result<Self, AuditError> {
        let sock = AuditMulticast::open().map_err(AuditError::Netlink)?;
        // SAFETY: the socket owns its fd, open and unchanged until the
        // AsyncFd (which owns the socket) is dropped.
        let sock = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(|e| AuditError::Netlink(e.into()))?;
        Ok(Self {
            sock,
            assembler: Assembler::default(),
            buf: Vec::new(),
            gaps: SerialGaps::default(),
            more: false,
            loss: AuditLoss::default(),
        })
    }

    pub async fn readable(&self) -> std::io::Result<()> {
        if self.more {
            return Ok(());
        }
        let mut g = self.sock.readable().await?;
        g.clear_ready();
        Ok(())
    }

    /// Everything waiting, converted into `pipeline`. `syscalls`: events
    /// of our rules are reported (audit serves kinds now, or a switch
    /// away from it is draining them); login records always are.
    /// `selection`: what our loaded rules ask for (records a foreign
    /// rule labelled first are ours too). Whether records were read.
    pub fn drain(
        &mut self,
        syscalls: bool,
        selection: Option<&Selection>,
        pipeline: &mut Pipeline,
    ) -> bool {
        let (events, lost, read_any) = self.read(Instant::now());
        for l in lost {
            pipeline.submit(l);
        }
        if events.is_empty() {
            return read_any;
        }
        submit(
            &events,
            syscalls,
            selection,
            pipeline,
            &mut self.loss,
            Path::new("/proc"),
        );
        pipeline.flush();
        read_any
    }

    /// Everything waiting, assembled; plus events that timed out; and
    /// loss records for what was lost on the way here; whether anything
    /// was read.
    fn read(&mut self, now: Instant) -> (Vec<AuditEvent>, Vec<Event>, bool) {
        let mut out = Vec::new();
        let mut lost = Vec::new();
        self.buf.clear();
        let received = self.sock.get_mut().read(&mut self.buf);
        self.more = matches!(received, Ok(Received::More | Received::Overflow));
        let read_any = match received {
            // What it cost shows as a serial gap.
            Ok(Received::Overflow) => {
                self.loss.socket_overflows += 1;
                true
            }
            Ok(Received::Records | Received::More) => true,
            Ok(Received::Nothing) => false,
            Err(e) => {
                log::warn!("audit netlink read failed: {e}");
                false
            }
        };
        for rec in self.buf.drain(..) {
            out.extend(self.assembler.push(rec, now));
        }
        let expired = self.assembler.expire(now);
        self.loss.incomplete_events += expired.len() as u64;
        out.extend(expired);
        let missing = self.gaps.observe(out.iter().map(|e| e.serial), now);
        if missing > 0 {
            self.loss.serial_gaps += missing;
            lost.push(loss::serial_gap(missing));
        }
        // A record without a header cannot be assigned to an event: each
        // is a loss of unknown kind.
        let malformed = self.assembler.malformed - self.loss.malformed_records;
        self.loss.malformed_records = self.assembler.malformed;
        if malformed > 0 {
            lost.push(loss::unconverted(
                [("unknown".to_string(), malformed)].into(),
            ));
        }
        (out, lost, read_any)
    }
}

/// Assembled events → normalized events into `pipeline` (`proc_root`:
/// where running processes' start times are read).
pub fn submit(
    events: &[AuditEvent],
    syscalls: bool,
    selection: Option<&Selection>,
    pipeline: &mut Pipeline,
    loss: &mut AuditLoss,
    proc_root: &Path,
) {
    let mut unconverted: BTreeMap<String, u64> = BTreeMap::new();
    for ev in events {
        if !reported(ev, syscalls, selection) {
            continue;
        }
        match convert::convert(ev) {
            Ok(convert::Converted {
                mut event,
                socket_fds,
            }) => {
                fill_start_times(&mut event, proc_root);
                if let (Event::Network(net), Some(fds)) = (&mut event, socket_fds)
                    && let Some(view) = sockets::view(proc_root, net.process.pid, &fds)
                {
                    sockets::complete(net, view);
                }
                pipeline.submit(event);
            }
            Err(Skip::NotReported) => {}
            Err(skip) => {
                *loss.skipped.entry(format!("{skip:?}")).or_default() += 1;
                let kind = ev.records.iter().find(|r| r.ty == SYSCALL).map_or_else(
                    || EventKind::Login.name().to_string(),
                    |r| loss::kind_of_syscall_text(&r.text),
                );
                *unconverted.entry(kind).or_default() += 1;
            }
        }
    }
    if !unconverted.is_empty() {
        pipeline.submit(loss::unconverted(unconverted));
    }
}

fn names(kinds: &[EventKind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Login records always; syscall records only while `syscalls`, and only
/// those our rules asked for: with our key, or matching `selection` under
/// another rule's key (the kernel labels a record with the first match).
fn reported(ev: &AuditEvent, syscalls: bool, selection: Option<&Selection>) -> bool {
    let Some(first) = ev.records.first() else {
        return false;
    };
    if USER_MSG.contains(&first.ty) {
        return true;
    }
    syscalls
        && ev.records.iter().any(|r| {
            r.ty == SYSCALL
                && (r.text.windows(KEY_FIELD.len()).any(|w| w == KEY_FIELD)
                    || selection.is_some_and(|s| s.matches(&r.text)))
        })
}

/// Audit records carry no process start time: it is read from /proc while
/// the process is still there (the pipeline derives entity ids from it).
fn fill_start_times(event: &mut Event, proc_root: &Path) {
    let (process, parent) = match event {
        Event::Process(p) => (&mut p.process, p.parent.as_mut()),
        Event::File(f) => (&mut f.process, None),
        Event::Network(n) => (&mut n.process, None),
        Event::Auth(a) => (&mut a.process, None),
        Event::IoUring(u) => (&mut u.process, None),
        Event::Loss(_) => return,
    };
    fill_start_time(process, proc_root);
    if let Some(p) = parent {
        fill_start_time(p, proc_root);
    }
}

fn fill_start_time(p: &mut ProcessInfo, proc_root: &Path) {
    if p.start_boot_ns.is_some() || p.pid == 0 {
        return;
    }
    let stat = std::fs::read_to_string(proc_root.join(p.pid.to_string()).join("stat"))
        .ok()
        .and_then(|s| crate::procfs::parse_stat(&s));
    if let Some((comm, _ppid, ticks)) = stat {
        p.start_boot_ns = Some(crate::clock::ticks_to_boot_ns(ticks));
        if p.name.is_none() {
            p.name = Some(comm.into());
        }
    }
}

/// Our rules while the audit subsystem serves kinds.
pub struct AuditRules {
    rules: RuleManager,
    kinds: Vec<EventKind>,
    /// What the loaded rules ask for, to find their records under any key.
    selection: Selection,
    /// The audit `enabled` value to restore: set when we had to enable it.
    restore_enabled: Option<u32>,
}

impl AuditRules {
    /// Loads our rules for `kinds` (and writes the rules file).
    pub fn start(
        ctl: Auditctl,
        rules_dir: &Path,
        own_pid: u32,
        kinds: Vec<EventKind>,
    ) -> Result<Self, AuditError> {
        let status = ctl.status()?;
        if status.immutable() {
            return Err(AuditError::Immutable);
        }
        let mut restore_enabled = None;
        if status.enabled == 0 {
            // Rules produce no records while auditing is off.
            ctl.set_enabled(1)?;
            restore_enabled = Some(0);
            log::info!(
                "audit was disabled (enabled 0): enabled it for the auditd provider; restored at stop"
            );
        }
        let rules = RuleManager::new(ctl, rules_dir);
        let n = rules.install(own_pid, &kinds)?;
        log::info!(
            "loaded {n} audit rules keyed mdatp for {}; wrote {}",
            names(&kinds),
            rules.rules_path().display()
        );
        Ok(Self {
            rules,
            restore_enabled,
            selection: Selection::new(own_pid, &kinds),
            kinds,
        })
    }

    /// What the loaded rules ask for.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The kinds the loaded rules produce.
    pub fn kinds(&self) -> &[EventKind] {
        &self.kinds
    }

    /// Replaces our loaded rules (and file) with rules for `kinds`.
    pub fn change_kinds(&mut self, own_pid: u32, kinds: Vec<EventKind>) -> Result<(), AuditError> {
        let n = self.rules.install(own_pid, &kinds)?;
        log::info!(
            "reloaded {n} audit rules keyed mdatp, now for {}",
            names(&kinds)
        );
        self.selection = Selection::new(own_pid, &kinds);
        self.kinds = kinds;
        Ok(())
    }

    /// Removes our loaded rules; `remove_file` also deletes the rules
    /// file (switching to eBPF). Restores `enabled` if we changed it.
    pub fn stop(self, remove_file: bool) -> Result<(), AuditError> {
        // The file first: when the loaded rules are immutable, a reboot
        // then clears them.
        if remove_file {
            self.rules.remove_file()?;
        }
        let n = self.rules.remove_loaded()?;
        if let Some(e) = self.restore_enabled {
            self.rules.ctl.set_enabled(e)?;
        }
        log::info!("removed {n} audit rules keyed mdatp");
        Ok(())
    }
}

/// The audit source as the daemon runs it: the reader (login events, and
/// the records of our rules) and, while audit serves kinds, our rules.
#[derive(Default)]
pub struct AuditSource {
    pub reader: Option<AuditReader>,
    pub rules: Option<AuditRules>,
    /// Why our rules could not be loaded the last time they were asked
    /// for (the kernel's or auditctl's words); None once they load.
    pub rules_error: Option<String>,
    /// Whether syscall records of our key are reported: while audit
    /// serves kinds, or while a switch away from it drains them.
    report_syscalls: bool,
}

impl AuditSource {
    /// Opens the multicast reader; without it login events are unavailable.
    pub fn open() -> Self {
        let reader = match AuditReader::open() {
            Ok(r) => Some(r),
            Err(e) => {
                log::warn!(
                    "login events unavailable: cannot read the audit netlink multicast group: {e}"
                );
                None
            }
        };
        Self {
            reader,
            rules: None,
            rules_error: None,
            report_syscalls: false,
        }
    }

    pub fn report_syscalls(&mut self, on: bool) {
        self.report_syscalls = on;
    }

    /// At stop: reads every record already queued (what our rules asked
    /// for before they went, as `selection` says) until the socket is
    /// empty or `deadline`. Records left unread are counted as a loss.
    pub fn drain_until(
        &mut self,
        selection: Option<&Selection>,
        pipeline: &mut Pipeline,
        deadline: Instant,
    ) {
        let Some(r) = &mut self.reader else { return };
        while r.drain(true, selection, pipeline) {
            if Instant::now() > deadline {
                log::warn!("audit records were still queued at stop: not read (counted as lost)");
                // At least one: how many, no serial will tell now.
                r.loss.serial_gaps += 1;
                pipeline.submit(loss::serial_gap(1));
                pipeline.flush();
                return;
            }
        }
    }

    /// The audit part of the loss-totals line.
    pub fn summary(&self) -> String {
        match &self.reader {
            Some(a) => format!(
                "; audit: kernel lost={} socket overflows={} events never received={} malformed records={} incomplete events={} skipped={:?}",
                a.loss.kernel_lost,
                a.loss.socket_overflows,
                a.loss.serial_gaps,
                a.loss.malformed_records,
                a.loss.incomplete_events,
                a.loss.skipped
            ),
            None => "; audit: not read".into(),
        }
    }
}

impl EventSource for AuditSource {
    fn serves(&self, kind: EventKind) -> Served {
        if kind == EventKind::Login {
            return match self.reader {
                Some(_) => Served::Yes,
                None => Served::No("cannot read the audit netlink multicast group".into()),
            };
        }
        if kind.spec().audit_syscalls.is_empty() {
            return Served::No("the audit subsystem has no record of it".into());
        }
        match (&self.rules, &self.reader) {
            (Some(r), Some(_)) if r.kinds.contains(&kind) => Served::Yes,
            (Some(_), Some(_)) => Served::No("the sensor's audit rules do not cover it".into()),
            (None, _) => Served::No(match &self.rules_error {
                Some(e) => format!("the sensor's audit rules could not be loaded: {e}"),
                None => "the sensor's audit rules are not loaded".into(),
            }),
            (_, None) => Served::No("cannot read the audit netlink multicast group".into()),
        }
    }

    async fn readable(&self) {
        match &self.reader {
            Some(r) => {
                if r.readable().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }

    fn drain(&mut self, pipeline: &mut Pipeline) -> bool {
        if let Some(r) = &mut self.reader {
            let selection = self.rules.as_ref().map(|r| &r.selection);
            r.drain(self.report_syscalls, selection, pipeline);
        }
        // The socket is read until it would block: readiness comes back
        // with the next record.
        false
    }

    fn table_use(&self, out: &mut Vec<crate::bounds::TableUse>) {
        if let Some(a) = &self.reader {
            out.push(a.assembler.table_use());
        }
    }

    fn loss_map(&self, m: &mut BTreeMap<String, u64>) {
        let Some(a) = &self.reader else { return };
        for (k, v) in [
            ("audit_kernel_lost", a.loss.kernel_lost),
            ("audit_socket_overflows", a.loss.socket_overflows),
            ("audit_serial_gaps", a.loss.serial_gaps),
            ("audit_incomplete_events", a.loss.incomplete_events),
            (
                "audit_unconverted",
                a.loss.skipped.values().sum::<u64>() + a.loss.malformed_records,
            ),
        ] {
            if v > 0 {
                m.insert(k.to_string(), v);
            }
        }
    }
}

/// Clears our rules and rules file (the eBPF provider is active): only
/// rules keyed mdatp, never anyone else's.
pub fn clear_ours(ctl: &Auditctl, rules_dir: &Path) -> Result<usize, AuditError> {
    let rules = RuleManager::new(ctl.clone(), rules_dir);
    // The file first, as in AuditRules::stop.
    let file = rules.remove_file()?;
    let n = rules.remove_loaded()?;
    if n > 0 || file {
        log::info!(
            "eBPF provider active: removed {n} loaded audit rules keyed mdatp and the rules file"
        );
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_field_is_our_rules_key() {
        assert_eq!(
            KEY_FIELD,
            format!(" key=\"{}\"", super::super::rules::KEY).as_bytes()
        );
    }
}
