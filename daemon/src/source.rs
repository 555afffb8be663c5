//! The shape every event source has (eBPF, audit; a later netlink process
//! connector): it owns its whole path — start/attach, read, decode,
//! convert to normalized events, stop — and says per event kind whether
//! it serves it now and, if not, why. What comes after the conversion is
//! the pipeline's (`pipeline.rs`).

use std::collections::BTreeMap;
use std::future::Future;

use crate::kind::{EventKind, Served};
use crate::pipeline::Pipeline;

pub trait EventSource {
    /// Whether it serves `kind` now, and if not, why (one line).
    fn serves(&self, kind: EventKind) -> Served;

    /// Resolves when there may be something to read; never, while the
    /// source is not running.
    fn readable(&self) -> impl Future<Output = ()>;

    /// Reads what waits (bounded: a flood does not starve the daemon's
    /// loop) and hands the events to the pipeline. True when it stopped at
    /// its bound with more waiting: the loop drains again without waiting
    /// for `readable` (which a source may signal only once per batch).
    fn drain(&mut self, pipeline: &mut Pipeline) -> bool;

    /// Periodic work, e.g. reporting losses no record has shown yet.
    fn tick(&mut self, _pipeline: &mut Pipeline) {}

    /// What it lost, per stage (and kind), for health; zero entries left out.
    fn loss_map(&self, m: &mut BTreeMap<String, u64>);

    /// Its tables keyed by event data, for health's `state_tables`.
    fn table_use(&self, _out: &mut Vec<crate::bounds::TableUse>) {}
}
