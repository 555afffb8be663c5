//! The normalized event model: one shape whatever the provider, turned
//! into OCSF by `ocsf`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::kind::EventKind;

/// Text shared between the process cache and every event of a process:
/// an event takes a reference, not a copy (a clone per field per event
/// was a measurable part of the per-event cost).
pub type SharedStr = Arc<str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ebpf,
    Auditd,
    Procfs,
    /// The netlink process connector (the third tier).
    ProcConnector,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Ebpf => "ebpf",
            Provider::Auditd => "auditd",
            Provider::Procfs => "procfs",
            Provider::ProcConnector => "proc_connector",
        }
    }
}

/// What is known of a process. `None` means unknown, never a guess.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub tid: Option<u32>,
    pub entity_id: SharedStr,
    /// Process start, ns since the Unix epoch (filled by enrichment from
    /// `start_boot_ns`).
    pub start_time_ns: Option<u64>,
    /// Process start on the kernel's boot clock, as the source knows it:
    /// with the pid, the key of the process cache and of the entity id.
    pub start_boot_ns: Option<u64>,
    pub name: Option<SharedStr>,
    pub exe: Option<SharedStr>,
    pub exe_truncated: bool,
    pub argv: Option<crate::argv::Argv>,
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
    pub user_name: Option<SharedStr>,
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

/// An io_uring set up, or a file or network operation submitted to one
/// (reported when submitted: the result is the ring's).
#[derive(Debug, Clone, PartialEq)]
pub struct IoUringEvent {
    pub time_ns: u64,
    pub op: IoUringOp,
    pub process: ProcessInfo,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IoUringOp {
    Setup {
        ring_fd: i32,
        sq_entries: u32,
        /// IORING_SETUP_*.
        flags: u32,
    },
    /// `file` (and `to`: a rename's or link's destination) as the caller
    /// named it: a name relative to the cwd is joined with the cwd and
    /// marked inferred, one relative to another directory fd is kept as
    /// given (inferred too).
    File {
        opcode: IoUringOpcode,
        dirfd: i32,
        file: FileInfo,
        to: Option<FileInfo>,
    },
    Net {
        opcode: IoUringOpcode,
        fd: i32,
        /// The fd is an index into the ring's registered files.
        fixed_file: bool,
        /// A connect's address as the caller passed it.
        remote: Option<std::net::SocketAddr>,
    },
    /// An operation the kernel side reports that this build does not
    /// name (IORING_OP_* number).
    Other { opcode: u32 },
}

/// The io_uring operations reported (IORING_OP_*, include/uapi/linux/io_uring.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoUringOpcode {
    Openat,
    Openat2,
    Renameat,
    Unlinkat,
    Mkdirat,
    Symlinkat,
    Linkat,
    Connect,
    Accept,
    Socket,
    Bind,
    Listen,
}

impl IoUringOpcode {
    pub fn from_raw(op: u32) -> Option<Self> {
        Some(match op {
            18 => Self::Openat,
            28 => Self::Openat2,
            35 => Self::Renameat,
            36 => Self::Unlinkat,
            37 => Self::Mkdirat,
            38 => Self::Symlinkat,
            39 => Self::Linkat,
            16 => Self::Connect,
            13 => Self::Accept,
            45 => Self::Socket,
            56 => Self::Bind,
            57 => Self::Listen,
            _ => return None,
        })
    }

    /// The name io_uring's header gives it, without IORING_OP_.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openat => "OPENAT",
            Self::Openat2 => "OPENAT2",
            Self::Renameat => "RENAMEAT",
            Self::Unlinkat => "UNLINKAT",
            Self::Mkdirat => "MKDIRAT",
            Self::Symlinkat => "SYMLINKAT",
            Self::Linkat => "LINKAT",
            Self::Connect => "CONNECT",
            Self::Accept => "ACCEPT",
            Self::Socket => "SOCKET",
            Self::Bind => "BIND",
            Self::Listen => "LISTEN",
        }
    }

    pub fn is_file(self) -> bool {
        matches!(
            self,
            Self::Openat
                | Self::Openat2
                | Self::Renameat
                | Self::Unlinkat
                | Self::Mkdirat
                | Self::Symlinkat
                | Self::Linkat
        )
    }
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
    /// e.g. "ebpf/cpu1": the sequence numbers are per source. Shared,
    /// so that an event's origin costs no allocation.
    pub source: std::sync::Arc<str>,
    pub sequence: u64,
    /// How the operation reached the kernel.
    pub path: CallPath,
}

/// How an operation reached the kernel. Both others are worth a look: the
/// ways around sensors that watch only the 64-bit system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallPath {
    /// A system call of the host's own ABI (x86_64), or not a call's
    /// event at all.
    #[default]
    Native,
    /// A 32-bit (ia32) system call: a 32-bit program, or a 64-bit one
    /// calling through `int 0x80`.
    Ia32,
    /// Submitted to an io_uring: no system call of its own.
    IoUring,
}

impl CallPath {
    pub fn as_str(self) -> &'static str {
        match self {
            CallPath::Native => "native",
            CallPath::Ia32 => "ia32",
            CallPath::IoUring => "io_uring",
        }
    }
}

/// An in-band record that events were lost.
#[derive(Debug, Clone, PartialEq)]
pub struct LossRecord {
    pub time_ns: u64,
    pub provider: Provider,
    pub source: std::sync::Arc<str>,
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
    /// The kernel's audit `lost` counter grew (backlog full, rate limit).
    AuditKernelLost,
    /// Audit events never received: their serial numbers were skipped
    /// (the sensor's socket overflowed, or the kernel dropped them).
    AuditSerialGap,
    /// Audit events that could not be converted (malformed, incomplete).
    AuditUnconverted,
}

impl LossDetection {
    pub fn as_str(self) -> &'static str {
        match self {
            LossDetection::SequenceGap => "sequence_gap",
            LossDetection::KernelCounter => "kernel_counter",
            LossDetection::AuditKernelLost => "audit_kernel_lost",
            LossDetection::AuditSerialGap => "audit_serial_gap",
            LossDetection::AuditUnconverted => "audit_unconverted",
        }
    }
}

/// A device number, shown "major:minor" as in /proc/self/mountinfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub major: u32,
    pub minor: u32,
}

impl Device {
    /// From the kernel's internal dev_t (MINORBITS = 20).
    pub fn from_kernel(dev: u32) -> Self {
        Device {
            major: dev >> 20,
            minor: dev & 0xfffff,
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// A file as the kernel identified it. `None` = unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileInfo {
    /// Shared: the pipeline keeps a process's recent open paths (to name
    /// its fold records) and counts hot paths without copying them.
    pub path: Option<SharedStr>,
    pub path_truncated: bool,
    /// The path was inferred, not resolved: joined lexically through a
    /// `..` component (a symlink before it makes the object the kernel
    /// acted on another one), or (audit) a name relative to a directory
    /// fd joined with the cwd. It never matches an exclusion.
    pub path_inferred: bool,
    pub inode: Option<u64>,
    pub device: Option<Device>,
    pub mount_id: Option<u32>,
    /// st_mode: type and permission bits.
    pub mode: Option<u32>,
    /// Path changes: inode of the directory the name was resolved in.
    pub parent_inode: Option<u64>,
    /// Where inode/device/mount id came from.
    pub identity_from: IdentitySource,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdentitySource {
    /// The kernel's objects at the event.
    #[default]
    Kernel,
    /// A statx of the path when the daemon processed the event (the name
    /// was absolute, so the kernel side had no object for it).
    Lookup,
    /// Not known.
    Unknown,
}

impl IdentitySource {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::Kernel => "kernel",
            IdentitySource::Lookup => "lookup",
            IdentitySource::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FileActivity {
    /// A successful open; `access` is enum mdatp_access bits.
    Open {
        access: u32,
        flags: u32,
        fd: i32,
    },
    /// Read-only opens folded in the kernel after a reported open.
    OpenFolded {
        access: u32,
        count: u32,
        first_ns: u64,
        last_ns: u64,
    },
    Delete {
        directory: bool,
    },
    Rename {
        to: FileInfo,
        flags: u32,
    },
    Mkdir {
        mode: u32,
    },
    Chmod {
        mode: u32,
    },
    Chown {
        uid: Option<u32>,
        gid: Option<u32>,
    },
    /// A hard link `to` of `file`.
    Link {
        to: FileInfo,
        flags: u32,
    },
    /// `file` is the new symbolic link; `target` its text.
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileEvent {
    pub time_ns: u64,
    pub activity: FileActivity,
    pub file: FileInfo,
    /// errno of a failed operation.
    pub error: Option<i32>,
    pub process: ProcessInfo,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetActivity {
    Connect,
    Accept,
    Listen {
        backlog: u32,
    },
    Bind,
    /// The first datagram of a UDP flow (socket, peer, direction).
    UdpFirst {
        inbound: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetEvent {
    pub time_ns: u64,
    pub activity: NetActivity,
    pub protocol: u16,
    pub local: Option<std::net::SocketAddr>,
    pub remote: Option<std::net::SocketAddr>,
    /// errno of a failed call; EINPROGRESS for a non-blocking connect.
    pub error: Option<i32>,
    pub process: ProcessInfo,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthActivity {
    Logon,
    Logoff,
    Other,
}

/// A login-related record from PAM (USER_AUTH, USER_LOGIN, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthEvent {
    pub time_ns: u64,
    pub activity: AuthActivity,
    /// The audit record type, e.g. "USER_AUTH".
    pub record_type: String,
    pub success: bool,
    /// The account the operation is about (PAM's acct).
    pub user: Option<String>,
    /// PAM operation, e.g. "PAM:authentication".
    pub op: Option<String>,
    pub terminal: Option<String>,
    pub remote_host: Option<String>,
    pub remote_addr: Option<String>,
    pub session: Option<u32>,
    /// The program that ran PAM (login, su, sshd, ...).
    pub process: ProcessInfo,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Auth(Box<AuthEvent>),
    IoUring(Box<IoUringEvent>),
    Process(Box<ProcessEvent>),
    File(Box<FileEvent>),
    Network(Box<NetEvent>),
    Loss(LossRecord),
}

impl Event {
    /// The kind of the event; None for an in-band loss record.
    pub fn kind(&self) -> Option<EventKind> {
        Some(match self {
            Event::Process(p) => match p.activity {
                ProcessActivity::Exec => EventKind::ProcessExec,
                ProcessActivity::Fork => EventKind::ProcessFork,
                ProcessActivity::Exit { .. } => EventKind::ProcessExit,
            },
            Event::File(f) => match f.activity {
                FileActivity::Open { .. } => EventKind::FileOpen,
                FileActivity::OpenFolded { .. } => EventKind::FileOpenFolded,
                FileActivity::Delete { .. } => EventKind::FileDelete,
                FileActivity::Rename { .. } => EventKind::FileRename,
                FileActivity::Mkdir { .. } => EventKind::FileMkdir,
                FileActivity::Chmod { .. } => EventKind::FileChmod,
                FileActivity::Chown { .. } => EventKind::FileChown,
                FileActivity::Link { .. } => EventKind::FileLink,
                FileActivity::Symlink { .. } => EventKind::FileSymlink,
            },
            Event::Network(n) => match n.activity {
                NetActivity::Connect => EventKind::NetworkConnect,
                NetActivity::Accept => EventKind::NetworkAccept,
                NetActivity::Listen { .. } => EventKind::NetworkListen,
                NetActivity::Bind => EventKind::NetworkBind,
                NetActivity::UdpFirst { inbound: false } => EventKind::NetworkUdpSend,
                NetActivity::UdpFirst { inbound: true } => EventKind::NetworkUdpRecv,
            },
            Event::Auth(_) => EventKind::Login,
            Event::IoUring(_) => EventKind::IoUring,
            Event::Loss(_) => return None,
        })
    }

    /// The provider that produced it.
    pub fn provider(&self) -> Provider {
        match self {
            Event::Process(p) => p.origin.provider,
            Event::File(f) => f.origin.provider,
            Event::Network(n) => n.origin.provider,
            Event::Auth(a) => a.origin.provider,
            Event::IoUring(u) => u.origin.provider,
            Event::Loss(l) => l.provider,
        }
    }
}
