//! The normalized event model: one shape whatever the provider, turned
//! into OCSF by `ocsf`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ebpf,
    Procfs,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Ebpf => "ebpf",
            Provider::Procfs => "procfs",
        }
    }
}

/// What is known of a process. `None` means unknown, never a guess.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub tid: Option<u32>,
    pub entity_id: String,
    /// Process start, ns since the Unix epoch.
    pub start_time_ns: Option<u64>,
    pub name: Option<String>,
    pub exe: Option<String>,
    pub exe_truncated: bool,
    pub argv: Option<Vec<String>>,
    pub argv_truncated: bool,
    pub argc: Option<u32>,
    pub cwd: Option<String>,
    pub cwd_truncated: bool,
    pub creds: Option<Credentials>,
    pub cgroup_id: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub user_name: Option<String>,
    /// Audit login uid; None when unset (4294967295) or unavailable.
    pub loginuid: Option<u32>,
    /// Audit session id; None when unset or unavailable.
    pub sessionid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProcessActivity {
    /// A new program image (execve).
    Exec,
    /// A new process (fork/clone without CLONE_THREAD); `process` is the child.
    Fork,
    /// The last thread of the process ended.
    Exit {
        code: u32,
        signal: Option<u32>,
        core_dumped: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessEvent {
    pub time_ns: u64,
    pub activity: ProcessActivity,
    pub process: ProcessInfo,
    pub parent: Option<ProcessInfo>,
    pub origin: Origin,
}

/// Where a record came from: provider, per-source sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub provider: Provider,
    /// e.g. "ebpf/cpu1": the sequence numbers are per source.
    pub source: String,
    pub sequence: u64,
}

/// An in-band record that events were lost.
#[derive(Debug, Clone, PartialEq)]
pub struct LossRecord {
    pub time_ns: u64,
    pub provider: Provider,
    pub source: String,
    pub detected_by: LossDetection,
    /// Sequence gap: first missing sequence number and how many are
    /// missing. None for a kernel-counter record.
    pub first_missing: Option<u64>,
    pub missing: u64,
    /// Kernel drop counters per event type since the previous loss record.
    pub dropped_by_type: BTreeMap<String, u64>,
}

/// How a loss was noticed. A sequence gap names the missing numbers of one
/// source; a kernel counter names drops per type that no gap reported yet.
/// Per-type totals are the sum of `dropped_by_type` over all records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossDetection {
    SequenceGap,
    KernelCounter,
}

impl LossDetection {
    pub fn as_str(self) -> &'static str {
        match self {
            LossDetection::SequenceGap => "sequence_gap",
            LossDetection::KernelCounter => "kernel_counter",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Process(Box<ProcessEvent>),
    Loss(LossRecord),
}
