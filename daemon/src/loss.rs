//! The loss ledger: per-source sequence tracking (a gap becomes an in-band
//! loss record), kernel drop counters per event type, and the user-space
//! stages that can lose a record. Nothing is lost without being counted.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use foldhash::HashMap;

use crate::ebpf::EbpfLoss;
use crate::kind::EventKind;

/// Kernel-side counters of one event type, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCount {
    pub emitted: u64,
    pub ringbuf_drops: u64,
    /// Excluded by configuration in the kernel (not lost).
    pub filtered: u64,
    /// Folded into another record (not lost).
    pub folded: u64,
    /// Not produced because the syscall's arguments could not be read
    /// (lost; only the compat build can).
    pub unreadable: u64,
}

impl KernelCount {
    /// Records the kernel lost: ring-buffer drops and unreadable ones.
    pub fn lost(&self) -> u64 {
        self.ringbuf_drops + self.unreadable
    }
}

/// Why the kernel counters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("eBPF provider not running")]
    NotRunning,
    #[error("read counters[{kind}]")]
    Read {
        kind: EventKind,
        #[source]
        source: aya::maps::MapError,
    },
}

/// Reads the kernel counters (the BPF `counters` map in production).
pub trait KernelCounters {
    fn read(&self) -> Result<BTreeMap<EventKind, KernelCount>, CounterError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutcome {
    InOrder,
    /// Records `first_missing ..= first_missing + missing - 1` never arrived.
    Gap {
        first_missing: u64,
        missing: u64,
    },
    /// A record older than one already seen (counted earlier as missing).
    Late,
}

/// Per-source sequence numbers start at 1 when the source starts.
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// Keyed by the shared source name: a record's lookup clones an `Arc`,
    /// it allocates nothing.
    next: HashMap<Arc<str>, u64>,
}

impl SeqTracker {
    pub fn observe(&mut self, source: &Arc<str>, seq: u64) -> SeqOutcome {
        let next = self.next.entry(Arc::clone(source)).or_insert(1);
        // Saturating: a corrupt record can carry any number (found by the
        // fuzzer with overflow checks: u64::MAX wrapped `next` to 0).
        if seq == *next {
            *next = next.saturating_add(1);
            SeqOutcome::InOrder
        } else if seq > *next {
            let gap = SeqOutcome::Gap {
                first_missing: *next,
                missing: seq - *next,
            };
            *next = seq.saturating_add(1);
            gap
        } else {
            SeqOutcome::Late
        }
    }
}

/// What the pipeline delivered and what its own stages lost.
#[derive(Debug, Default)]
pub struct LossLedger {
    pub delivered: BTreeMap<EventKind, u64>,
    /// Events a failed write lost at the sink, per kind name (or
    /// `unknown`).
    pub sink_lost: BTreeMap<String, u64>,
    /// Events of a new provider already reported by the old one during a
    /// switch (not lost: reported once).
    pub overlap_duplicates: u64,
    /// Events excluded by configuration in user space (not lost).
    pub filtered: BTreeMap<EventKind, u64>,
}

impl LossLedger {
    pub fn delivered(&mut self, kind: EventKind, n: u64) {
        let c = self.delivered.entry(kind).or_default();
        *c = c.saturating_add(n);
    }

    /// `n` events of `kind` (None: of no known kind) lost at the sink.
    pub fn sink_lost(&mut self, kind: Option<EventKind>, n: u64) {
        let name = kind.map_or("unknown", |k| k.name());
        let c = self.sink_lost.entry(name.to_string()).or_default();
        *c = c.saturating_add(n);
    }
}

/// One line for logs: printed on SIGUSR1 and at shutdown.
pub struct Summary<'a> {
    pub ledger: &'a LossLedger,
    pub kernel: &'a Result<BTreeMap<EventKind, KernelCount>, CounterError>,
    pub ebpf: &'a EbpfLoss,
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel ring-buffer drops:")?;
        match self.kernel {
            Ok(k) => {
                let total: u64 = k.values().map(|c| c.ringbuf_drops).sum();
                write!(f, " total={total}")?;
                for (ty, c) in k {
                    write!(f, " {ty}={}", c.ringbuf_drops)?;
                }
                for (title, get) in [
                    (
                        "kernel emitted",
                        (|c: &KernelCount| c.emitted) as fn(&KernelCount) -> u64,
                    ),
                    ("kernel filtered", |c| c.filtered),
                    ("kernel folded", |c| c.folded),
                    ("kernel unreadable", |c| c.unreadable),
                ] {
                    write!(f, "; {title}:")?;
                    for (ty, c) in k {
                        write!(f, " {ty}={}", get(c))?;
                    }
                }
            }
            Err(e) => write!(f, " unreadable ({e})")?,
        }
        write!(f, "; delivered:")?;
        for (ty, n) in &self.ledger.delivered {
            write!(f, " {ty}={n}")?;
        }
        write!(
            f,
            "; sequence gaps={} late={} decode errors={} lost at the sink={} switch duplicates suppressed={}",
            self.ebpf.sequence_gaps,
            self.ebpf.late_records,
            self.ebpf.decode_errors,
            self.ledger.sink_lost.values().sum::<u64>(),
            self.ledger.overlap_duplicates
        )?;
        write!(f, "; user-space filtered:")?;
        for (ty, n) in &self.ledger.filtered {
            write!(f, " {ty}={n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_sequence_number_does_not_wrap() {
        // Found by the fuzzer (ebpf_record with overflow checks).
        let mut t = SeqTracker::default();
        let a = Arc::from("a");
        assert!(matches!(t.observe(&a, u64::MAX), SeqOutcome::Gap { .. }));
        assert_eq!(t.observe(&a, u64::MAX), SeqOutcome::InOrder);
        assert_eq!(t.observe(&a, 1), SeqOutcome::Late, "not a new gap from 0");
    }

    #[test]
    fn gaps_and_late_records_are_seen_per_source() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(&Arc::from("a"), 1), SeqOutcome::InOrder);
        assert_eq!(t.observe(&Arc::from("b"), 1), SeqOutcome::InOrder);
        assert_eq!(
            t.observe(&Arc::from("a"), 5),
            SeqOutcome::Gap {
                first_missing: 2,
                missing: 3
            }
        );
        assert_eq!(t.observe(&Arc::from("a"), 3), SeqOutcome::Late);
        assert_eq!(t.observe(&Arc::from("a"), 6), SeqOutcome::InOrder);
        assert_eq!(
            t.observe(&Arc::from("c"), 4),
            SeqOutcome::Gap {
                first_missing: 1,
                missing: 3
            }
        );
    }
}

/// Loss over the last minute, per kind (or stage): health is unhealthy
/// while it is not empty. One bucket per second, at most 60.
#[derive(Debug, Default)]
pub struct RecentLoss {
    buckets: std::collections::VecDeque<(std::time::Instant, BTreeMap<String, u64>)>,
}

impl RecentLoss {
    pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    pub fn add(&mut self, now: std::time::Instant, what: &str, n: u64) {
        self.prune(now);
        if n == 0 {
            return;
        }
        let fresh = self
            .buckets
            .back()
            .is_some_and(|(t, _)| now.duration_since(*t) < std::time::Duration::from_secs(1));
        if !fresh {
            self.buckets.push_back((now, BTreeMap::new()));
        }
        if let Some((_, m)) = self.buckets.back_mut() {
            // Saturating, as every count here: the numbers come from
            // records (a sequence gap is the record's number minus ours).
            let c = m.entry(what.to_string()).or_default();
            *c = c.saturating_add(n);
        }
    }

    fn prune(&mut self, now: std::time::Instant) {
        while self
            .buckets
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= Self::WINDOW)
        {
            self.buckets.pop_front();
        }
    }

    /// The loss of the last minute, summed.
    pub fn last_minute(&self, now: std::time::Instant) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        let recent = self
            .buckets
            .iter()
            .filter(|(t, _)| now.duration_since(*t) < Self::WINDOW);
        for (_, m) in recent {
            for (k, v) in m {
                let c = out.entry(k.clone()).or_default();
                *c = c.saturating_add(*v);
            }
        }
        out
    }
}

#[cfg(test)]
mod recent_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn loss_ages_out_after_a_minute() {
        let t0 = Instant::now();
        let mut r = RecentLoss::default();
        r.add(t0, "file_open", 3);
        r.add(t0 + Duration::from_millis(500), "file_open", 2);
        r.add(t0 + Duration::from_secs(30), "unknown", 1);
        let m = r.last_minute(t0 + Duration::from_secs(31));
        assert_eq!(m.get("file_open"), Some(&5));
        assert_eq!(m.get("unknown"), Some(&1));
        assert_eq!(r.buckets.len(), 2);
        let m = r.last_minute(t0 + Duration::from_secs(61));
        r.add(t0 + Duration::from_secs(61), "x", 0);
        assert_eq!(r.buckets.len(), 1, "the old bucket went");
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(r.last_minute(t0 + Duration::from_secs(91)).is_empty());
    }
}
