//! The running audit side: the multicast reader and assembler (always on,
//! for login events), and — in auditd-provider mode — our loaded rules.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::assemble::{Assembler, AuditEvent};
use super::control::{AuditError, Auditctl};
use super::netlink::{AuditMulticast, RawAuditRecord, Received};
use super::rules::RuleManager;

/// Counts of what the audit side could not turn into events.
#[derive(Debug, Default, Clone)]
pub struct AuditLoss {
    /// Our socket's buffer overflowed (ENOBUFS): records lost here.
    pub socket_overflows: u64,
    /// Kernel `lost` counter growth since the sensor started.
    pub kernel_lost: u64,
    /// Records without an audit(...) header.
    pub malformed_records: u64,
    /// Events flushed without their EOE record.
    pub incomplete_events: u64,
    /// Skipped by reason (malformed, incomplete, not reported).
    pub skipped: BTreeMap<&'static str, u64>,
}

pub struct AuditReader {
    sock: AsyncFd<AuditMulticast>,
    assembler: Assembler,
    buf: Vec<RawAuditRecord>,
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
            loss: AuditLoss::default(),
        })
    }

    pub async fn readable(&self) -> std::io::Result<()> {
        let mut g = self.sock.readable().await?;
        g.clear_ready();
        Ok(())
    }

    /// Everything waiting, assembled; plus events that timed out.
    pub fn drain(&mut self, now: Instant) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        self.buf.clear();
        match self.sock.get_mut().read(&mut self.buf) {
            Ok(Received::Overflow) => self.loss.socket_overflows += 1,
            Ok(_) => {}
            Err(e) => log::warn!("audit netlink read failed: {e}"),
        }
        for rec in self.buf.drain(..) {
            out.extend(self.assembler.push(rec, now));
        }
        let expired = self.assembler.expire(now);
        self.loss.incomplete_events += expired.len() as u64;
        out.extend(expired);
        self.loss.malformed_records = self.assembler.malformed;
        out
    }
}

/// Our rules while the auditd provider is active.
pub struct AuditRules {
    rules: RuleManager,
    /// The audit `enabled` value to restore: set when we had to enable it.
    restore_enabled: Option<u32>,
}

impl AuditRules {
    pub fn start(ctl: Auditctl, rules_dir: &Path, own_pid: u32) -> Result<Self, AuditError> {
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
        let n = rules.install(own_pid)?;
        log::info!(
            "loaded {n} audit rules keyed mdatp; wrote {}",
            rules.rules_path().display()
        );
        Ok(Self {
            rules,
            restore_enabled,
        })
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
