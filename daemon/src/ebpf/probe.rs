//! What this kernel offers the sensor, probed at start (aya's feature
//! probes load tiny programs and maps; files say the rest), not guessed
//! from the version. Reported in health (`kernel_capabilities`); the
//! probes choose which build of the syscall exit programs is loaded
//! ([`syscall_variant`]); which kinds eBPF then serves follows from which
//! programs attach.

use std::collections::BTreeMap;
use std::path::Path;

use aya::maps::MapType;
use aya::programs::{LsmAttachType, ProgramType};
use aya::sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported};
use mdatp_bpf::SyscallVariant;

/// The helpers the typed build of the syscall exit programs calls.
const TYPED_NEEDS: [&str; 2] = ["bpf_get_current_task_btf", "bpf_task_pt_regs"];

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
    let helper = |h| Probed::from_probe(is_helper_supported(ProgramType::RawTracePoint, h));
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

/// What every program needs (the BPF ring buffer, 5.8; BTF for CO-RE):
/// without one of them nothing loads, and the audit subsystem serves
/// every kind. Returns why, or None when both are there.
pub fn ebpf_blocker(probes: &BTreeMap<&'static str, Probed>) -> Option<String> {
    let missing = missing(probes, &["ring_buffer", "btf"]);
    (!missing.is_empty()).then(|| missing.join("; "))
}

/// `<capability>: <why>` for each of `names` the kernel lacks.
fn missing(probes: &BTreeMap<&'static str, Probed>, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter_map(|c| match probes.get(c) {
            Some(Probed::Yes) => None,
            Some(Probed::No(why)) => Some(format!("{c}: {why}")),
            None => Some(format!("{c}: not probed")),
        })
        .collect()
}

/// The build of the syscall exit programs this kernel can run, and why:
/// the typed one when every helper it calls is there (5.15+), else the
/// compat one (5.8-5.14; on older kernels neither loads and the audit
/// subsystem serves those kinds).
pub fn syscall_variant(probes: &BTreeMap<&'static str, Probed>) -> (SyscallVariant, String) {
    let missing = missing(probes, &TYPED_NEEDS);
    if missing.is_empty() {
        (
            SyscallVariant::Typed,
            format!("{} are available", TYPED_NEEDS.join(" and ")),
        )
    } else {
        (SyscallVariant::Compat, missing.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_helper_chooses_the_compat_build_and_says_which() {
        let mut p = BTreeMap::from([
            ("bpf_get_current_task_btf", Probed::Yes),
            ("bpf_task_pt_regs", Probed::Yes),
        ]);
        assert_eq!(syscall_variant(&p).0, SyscallVariant::Typed);
        p.insert(
            "bpf_task_pt_regs",
            Probed::No("not supported by this kernel".into()),
        );
        let (v, why) = syscall_variant(&p);
        assert_eq!(v, SyscallVariant::Compat);
        assert_eq!(why, "bpf_task_pt_regs: not supported by this kernel");
        p.remove("bpf_get_current_task_btf");
        assert!(
            syscall_variant(&p)
                .1
                .starts_with("bpf_get_current_task_btf: not probed")
        );
    }
}

/// What the daemon keeps of one probing: health's text per capability,
/// what blocks eBPF, and the build to load. Probed at start and again
/// before every switch back to eBPF.
#[derive(Debug, Clone)]
pub struct KernelProbe {
    pub capabilities: BTreeMap<String, String>,
    pub blocker: Option<String>,
    pub variant: (SyscallVariant, String),
}

impl KernelProbe {
    /// Probes now; `forced` (a test flag) overrides the build choice.
    pub fn run(forced: Option<SyscallVariant>) -> Self {
        let probes = probe();
        let kp = Self {
            capabilities: probes
                .iter()
                .map(|(k, v)| (k.to_string(), v.text()))
                .collect(),
            blocker: ebpf_blocker(&probes),
            variant: match forced {
                Some(v) => (v, "forced by --test-syscall-variant".into()),
                None => syscall_variant(&probes),
            },
        };
        log::info!(
            "kernel capabilities: {}; syscall exit programs: {} build ({})",
            kp.capabilities
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            kp.variant.0.name(),
            kp.variant.1
        );
        kp
    }
}
