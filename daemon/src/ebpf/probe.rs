//! What this kernel offers the sensor, probed at start (aya's feature
//! probes load tiny programs and maps; files say the rest), not guessed
//! from the version. Reported in health (`kernel_capabilities`); the
//! per-kind choice still follows which programs attach — choosing
//! program variants by these probes is issue work still to come.

use std::collections::BTreeMap;
use std::path::Path;

use aya::maps::MapType;
use aya::programs::{LsmAttachType, ProgramType};
use aya::sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported};

/// One probed capability: present, or absent with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    Yes,
    No(String),
}

impl Probed {
    fn from_probe<E: std::fmt::Display>(r: Result<bool, E>) -> Self {
        match r {
            Ok(true) => Probed::Yes,
            Ok(false) => Probed::No("not supported by this kernel".into()),
            Err(e) => Probed::No(format!("probe failed: {e}")),
        }
    }

    fn from_file(path: &str) -> Self {
        if Path::new(path).exists() {
            Probed::Yes
        } else {
            Probed::No(format!("{path} is missing"))
        }
    }

    /// `yes`, or `no: <why>` (health's text).
    pub fn text(&self) -> String {
        match self {
            Probed::Yes => "yes".into(),
            Probed::No(why) => format!("no: {why}"),
        }
    }
}

/// The syscall exit tracepoints, found in tracefs wherever it is mounted.
fn syscall_tracepoints() -> Probed {
    let found = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|root| {
            Path::new(root)
                .join("events/syscalls/sys_exit_openat")
                .exists()
        });
    if found {
        Probed::Yes
    } else {
        Probed::No("no syscalls/sys_exit_openat in tracefs".into())
    }
}

/// LSM BPF needs the program type and `bpf` among the active LSMs.
fn lsm() -> Probed {
    const ACTIVE: &str = "/sys/kernel/security/lsm";
    let Ok(active) = std::fs::read_to_string(ACTIVE) else {
        return Probed::No(format!("cannot read {ACTIVE}"));
    };
    if !active.split(',').any(|l| l.trim() == "bpf") {
        return Probed::No("bpf is not an active LSM (/sys/kernel/security/lsm)".into());
    }
    Probed::from_probe(is_program_supported(ProgramType::Lsm(LsmAttachType::Mac)))
}

/// Every capability the sensor's programs (or their alternatives) use.
pub fn probe() -> BTreeMap<&'static str, Probed> {
    let helper = |h| Probed::from_probe(is_helper_supported(ProgramType::TracePoint, h));
    BTreeMap::from([
        ("btf", Probed::from_file("/sys/kernel/btf/vmlinux")),
        (
            "ring_buffer",
            Probed::from_probe(is_map_supported(MapType::RingBuf)),
        ),
        (
            "raw_tracepoint",
            Probed::from_probe(is_program_supported(ProgramType::RawTracePoint)),
        ),
        (
            "tracepoint",
            Probed::from_probe(is_program_supported(ProgramType::TracePoint)),
        ),
        ("syscall_tracepoints", syscall_tracepoints()),
        (
            "bpf_get_current_task_btf",
            helper(BpfHelper::BPF_FUNC_get_current_task_btf),
        ),
        ("bpf_task_pt_regs", helper(BpfHelper::BPF_FUNC_task_pt_regs)),
        (
            "task_storage",
            Probed::from_probe(is_map_supported(MapType::TaskStorage)),
        ),
        (
            "fentry",
            Probed::from_probe(is_program_supported(ProgramType::Tracing)),
        ),
        ("lsm", lsm()),
    ])
}
