use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuArray};
use mdatp_bpf::EVENT_TYPES;
use mdatp_bpf::abi::mdatp_counters;

use crate::loss::{KernelCount, KernelCounters};

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
    fn read(&self) -> Result<BTreeMap<&'static str, KernelCount>, String> {
        let mut out = BTreeMap::new();
        for (ty, name) in EVENT_TYPES {
            let per_cpu = self
                .map
                .get(&(*ty as u32), 0)
                .map_err(|e| format!("read counters[{name}]: {e}"))?;
            let mut sum = KernelCount::default();
            for c in per_cpu.iter() {
                sum.emitted += c.emitted;
                sum.ringbuf_drops += c.ringbuf_drops;
                sum.filtered += c.filtered;
                sum.folded += c.folded;
            }
            out.insert(*name, sum);
        }
        Ok(out)
    }
}
