use std::error::Error as StdError;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::RawTracePoint;
use aya::{Ebpf, EbpfLoader};
use mdatp_bpf::{OBJECT, PROCESS_PROGRAMS};

use super::BpfCounters;

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("ring buffer size {0} must be a power of two and at least 4096 bytes")]
    RingSize(u32),
    #[error("load the BPF object into the kernel")]
    Load(#[source] aya::EbpfError),
    #[error("BPF map `{0}` is missing from the object")]
    MissingMap(&'static str),
    #[error("open BPF map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("no BPF program could be attached ({0})")]
    NothingAttached(String),
}

/// What the loader was asked to do.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub ring_buffer_bytes: u32,
    /// Ring fill at which a submit wakes user space.
    pub wakeup_bytes: u64,
    /// Test hook: programs whose attach is pointed at a tracepoint that
    /// does not exist, so the kernel refuses it for real.
    pub break_programs: Vec<String>,
}

/// One program and its hook: attached, or why not.
#[derive(Debug, Clone)]
pub struct HookStatus {
    pub program: &'static str,
    pub hook: String,
    pub error: Option<String>,
}

/// The loaded object. Dropping it detaches and unloads every program
/// (nothing is pinned).
pub struct EbpfSensor {
    bpf: Ebpf,
    pub hooks: Vec<HookStatus>,
}

impl EbpfSensor {
    pub fn load(opts: &LoadOptions) -> Result<Self, EbpfError> {
        let size = opts.ring_buffer_bytes;
        if size < 4096 || !size.is_power_of_two() {
            return Err(EbpfError::RingSize(size));
        }
        let wakeup = opts.wakeup_bytes.min(u64::from(size) / 4).max(1);
        let mut bpf = EbpfLoader::new()
            .map_max_entries("events", size)
            .override_global("wakeup_bytes", &wakeup, true)
            .load(OBJECT)
            .map_err(EbpfError::Load)?;
        let mut hooks = Vec::new();
        for (program, tracepoint) in PROCESS_PROGRAMS {
            let target = if opts.break_programs.iter().any(|p| p == program) {
                format!("mdatp_nonexistent_{tracepoint}")
            } else {
                (*tracepoint).to_string()
            };
            let error = attach_raw_tracepoint(&mut bpf, program, &target).err();
            if let Some(e) = &error {
                log::error!(
                    "eBPF program {program} on raw tracepoint {target} failed: {e}; the other programs keep running"
                );
            }
            hooks.push(HookStatus {
                program,
                hook: format!("raw_tracepoint/{target}"),
                error,
            });
        }
        if hooks.iter().all(|h| h.error.is_some()) {
            let why = hooks
                .iter()
                .filter_map(|h| h.error.as_deref())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(EbpfError::NothingAttached(why));
        }
        Ok(Self { bpf, hooks })
    }

    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, EbpfError> {
        let map = self
            .bpf
            .take_map("events")
            .ok_or(EbpfError::MissingMap("events"))?;
        RingBuf::try_from(map).map_err(|source| EbpfError::Map {
            name: "events",
            source,
        })
    }

    pub fn take_counters(&mut self) -> Result<BpfCounters, EbpfError> {
        let map = self
            .bpf
            .take_map("counters")
            .ok_or(EbpfError::MissingMap("counters"))?;
        let arr = PerCpuArray::try_from(map).map_err(|source| EbpfError::Map {
            name: "counters",
            source,
        })?;
        Ok(BpfCounters::new(arr))
    }
}

fn attach_raw_tracepoint(bpf: &mut Ebpf, program: &str, tracepoint: &str) -> Result<(), String> {
    let prog: &mut RawTracePoint = bpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} is not in the object"))?
        .try_into()
        .map_err(|e| chain("not a raw tracepoint program", &e))?;
    prog.load().map_err(|e| chain("load", &e))?;
    prog.attach(tracepoint).map_err(|e| chain("attach", &e))?;
    Ok(())
}

/// "what: error: cause: cause" — aya's errors keep the errno in sources.
fn chain(what: &str, e: &dyn StdError) -> String {
    let mut s = format!("{what}: {e}");
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}
