//! What the audit side loses, counted and turned into in-band loss
//! records like the eBPF side's: the kernel's `lost` counter (backlog
//! overflow, rate limit), overflows of the sensor's own multicast socket,
//! and events that could not be converted (per kind where the SYSCALL
//! record names the call).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::arch::Arch;
use super::selection::field;
use crate::event::{Event, LossDetection, LossRecord, Provider};
use crate::kind::EventKind;

/// Counts of what the audit side could not turn into events.
#[derive(Debug, Default, Clone)]
pub struct AuditLoss {
    /// Our socket's buffer overflowed (ENOBUFS): records lost here.
    pub socket_overflows: u64,
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

/// Our receive buffer overflowed: at least one record is gone.
pub fn socket_overflow() -> Event {
    record(LossDetection::AuditSocketOverflow, 1, BTreeMap::new())
}

/// Events that could not be converted, per kind.
pub fn unconverted(by_kind: BTreeMap<String, u64>) -> Event {
    let n = by_kind.values().sum();
    record(LossDetection::AuditUnconverted, n, by_kind)
}

/// The kind of a SYSCALL record's call, by its text (for loss records:
/// the conversion that would know failed). `unknown` otherwise.
pub fn kind_of_syscall_text(text: &[u8]) -> String {
    let kind = field(text, b"arch")
        .and_then(Arch::from_record)
        .zip(
            field(text, b"syscall")
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse::<i64>().ok()),
        )
        .and_then(|(arch, nr)| arch.to_x86_64(nr))
        .and_then(EventKind::from_audit_syscall);
    kind.map_or_else(|| "unknown".to_string(), |k| k.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_conversion_is_counted_under_its_kind() {
        let t = b"audit(1.2:3): arch=40000003 syscall=10 success=yes exit=0 pid=5";
        assert_eq!(kind_of_syscall_text(t), "file_delete");
        let t = b"audit(1.2:3): arch=c000003e syscall=42 success=yes exit=0 pid=5";
        assert_eq!(kind_of_syscall_text(t), "network_connect");
        assert_eq!(kind_of_syscall_text(b"garbage"), "unknown");
    }
}
