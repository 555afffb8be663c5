use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuArray};
use mdatp_bpf::abi::mdatp_counters;

use crate::kind::EventKind;
use crate::loss::{CounterError, KernelCount, KernelCounters};

/// The per-CPU `counters` map, summed over CPUs on read.
pub struct BpfCounters {
    map: PerCpuArray<MapData, mdatp_counters>,
}

impl BpfCounters {
    pub(super) fn new(map: PerCpuArray<MapData, mdatp_counters>) -> Self {
        Self { map }
    }
}

impl KernelCounters for BpfCounters {
    fn read(&self) -> Result<BTreeMap<EventKind, KernelCount>, CounterError> {
        let mut out = BTreeMap::new();
        for kind in EventKind::ALL {
            let Some(abi) = kind.spec().abi else { continue };
            let per_cpu = self
                .map
                .get(&(abi as u32), 0)
                .map_err(|source| CounterError::Read { kind, source })?;
            let mut sum = KernelCount::default();
            for c in per_cpu.iter() {
                sum.emitted += c.emitted;
                sum.ringbuf_drops += c.ringbuf_drops;
                sum.filtered += c.filtered;
                sum.folded += c.folded;
                sum.unreadable += c.unreadable;
            }
            out.insert(kind, sum);
        }
        Ok(out)
    }
}
