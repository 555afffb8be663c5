//! The one list of event kinds. Everything that names an event type —
//! the configuration's `events.<kind>` keys, health's per-kind sources,
//! the loss ledger, the kernel counters, the audit rules and the docs'
//! table — derives from [`EventKind::ALL`] and [`EventKind::spec`].
//! Adding a kind is one variant, one spec entry, and its producers.

use std::fmt;

use mdatp_bpf::abi::mdatp_event_type as Abi;

/// An event kind the sensor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    ProcessExec,
    ProcessFork,
    ProcessExit,
    FileOpen,
    FileOpenFolded,
    FileDelete,
    FileRename,
    FileMkdir,
    FileChmod,
    FileChown,
    FileLink,
    FileSymlink,
    NetworkConnect,
    NetworkAccept,
    NetworkListen,
    NetworkBind,
    NetworkUdpSend,
    NetworkUdpRecv,
    Login,
    IoUring,
}

/// Whether a source serves a kind now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    Yes,
    /// Not served, and why (one line).
    No(String),
}

/// OCSF class uids of the kinds.
pub mod class {
    pub const FILE_SYSTEM_ACTIVITY: u32 = 1001;
    pub const PROCESS_ACTIVITY: u32 = 1007;
    pub const AUTHENTICATION: u32 = 3002;
    pub const NETWORK_ACTIVITY: u32 = 4001;
}

/// What one kind is and who can produce it.
#[derive(Debug)]
pub struct KindSpec {
    /// Stable name: output, counters, `events.<name>` configuration keys.
    pub name: &'static str,
    /// OCSF class uid and the activity ids (with names) it is written as.
    pub ocsf_class: u32,
    pub ocsf_activities: &'static [(u32, &'static str)],
    /// The kernel ABI event type id, for kinds eBPF produces.
    pub abi: Option<Abi>,
    /// eBPF programs (names in the object) that produce it: the kind is
    /// served by eBPF when any of them is attached.
    pub programs: &'static [&'static str],
    /// System calls whose audit records produce it (x86_64 numbers from
    /// libc); empty when audit cannot produce it from syscall rules.
    pub audit_syscalls: &'static [i64],
}

use libc::{
    SYS_accept, SYS_accept4, SYS_bind, SYS_chmod, SYS_chown, SYS_connect, SYS_creat, SYS_execve,
    SYS_execveat, SYS_exit_group, SYS_fchmod, SYS_fchmodat, SYS_fchown, SYS_fchownat, SYS_lchown,
    SYS_link, SYS_linkat, SYS_listen, SYS_mkdir, SYS_mkdirat, SYS_open, SYS_openat, SYS_openat2,
    SYS_rename, SYS_renameat, SYS_renameat2, SYS_rmdir, SYS_symlink, SYS_symlinkat, SYS_unlink,
    SYS_unlinkat,
};

const OPEN_PROGRAMS: &[&str] = &["mdatp_openat", "mdatp_open", "mdatp_creat", "mdatp_openat2"];
const OPEN_SYSCALLS: &[i64] = &[SYS_open, SYS_openat, SYS_openat2, SYS_creat];
const OPEN_ACTIVITIES: &[(u32, &str)] = &[(1, "Create"), (14, "Open")];
const CREATE: &[(u32, &str)] = &[(1, "Create")];
const SET_SECURITY: &[(u32, &str)] = &[(7, "Set Security")];
const NET_OPEN: &[(u32, &str)] = &[(1, "Open")];

macro_rules! spec {
    ($name:literal, $class:ident, $acts:expr, $abi:expr, [$($prog:literal),*], [$($sys:expr),*]) => {
        KindSpec {
            name: $name,
            ocsf_class: class::$class,
            ocsf_activities: $acts,
            abi: $abi,
            programs: &[$($prog),*],
            audit_syscalls: &[$($sys),*],
        }
    };
}

const PROCESS_EXEC: KindSpec = spec!(
    "process_exec",
    PROCESS_ACTIVITY,
    &[(1, "Launch")],
    Some(Abi::MDATP_EV_EXEC),
    ["mdatp_exec"],
    [SYS_execve, SYS_execveat]
);
const PROCESS_FORK: KindSpec = spec!(
    "process_fork",
    PROCESS_ACTIVITY,
    &[(1, "Launch")],
    Some(Abi::MDATP_EV_FORK),
    ["mdatp_fork"],
    []
);
const PROCESS_EXIT: KindSpec = spec!(
    "process_exit",
    PROCESS_ACTIVITY,
    &[(2, "Terminate")],
    Some(Abi::MDATP_EV_EXIT),
    ["mdatp_exit"],
    [SYS_exit_group]
);
const FILE_OPEN: KindSpec = KindSpec {
    name: "file_open",
    ocsf_class: class::FILE_SYSTEM_ACTIVITY,
    ocsf_activities: OPEN_ACTIVITIES,
    abi: Some(Abi::MDATP_EV_FILE_OPEN),
    programs: OPEN_PROGRAMS,
    audit_syscalls: OPEN_SYSCALLS,
};
const FILE_OPEN_FOLDED: KindSpec = KindSpec {
    name: "file_open_folded",
    ocsf_class: class::FILE_SYSTEM_ACTIVITY,
    ocsf_activities: &[(14, "Open")],
    abi: Some(Abi::MDATP_EV_FILE_FOLD),
    programs: OPEN_PROGRAMS,
    // Folding happens in the kernel: audit reports every open instead.
    audit_syscalls: &[],
};
const FILE_DELETE: KindSpec = spec!(
    "file_delete",
    FILE_SYSTEM_ACTIVITY,
    &[(4, "Delete")],
    Some(Abi::MDATP_EV_FILE_DELETE),
    ["mdatp_unlink", "mdatp_unlinkat", "mdatp_rmdir"],
    [SYS_unlink, SYS_unlinkat, SYS_rmdir]
);
const FILE_RENAME: KindSpec = spec!(
    "file_rename",
    FILE_SYSTEM_ACTIVITY,
    &[(5, "Rename")],
    Some(Abi::MDATP_EV_FILE_RENAME),
    ["mdatp_rename", "mdatp_renameat", "mdatp_renameat2"],
    [SYS_rename, SYS_renameat, SYS_renameat2]
);
const FILE_MKDIR: KindSpec = spec!(
    "file_mkdir",
    FILE_SYSTEM_ACTIVITY,
    CREATE,
    Some(Abi::MDATP_EV_FILE_MKDIR),
    ["mdatp_mkdir", "mdatp_mkdirat"],
    [SYS_mkdir, SYS_mkdirat]
);
const FILE_CHMOD: KindSpec = spec!(
    "file_chmod",
    FILE_SYSTEM_ACTIVITY,
    SET_SECURITY,
    Some(Abi::MDATP_EV_FILE_CHMOD),
    ["mdatp_chmod", "mdatp_fchmod", "mdatp_fchmodat"],
    [SYS_chmod, SYS_fchmod, SYS_fchmodat]
);
const FILE_CHOWN: KindSpec = spec!(
    "file_chown",
    FILE_SYSTEM_ACTIVITY,
    SET_SECURITY,
    Some(Abi::MDATP_EV_FILE_CHOWN),
    [
        "mdatp_chown",
        "mdatp_lchown",
        "mdatp_fchown",
        "mdatp_fchownat"
    ],
    [SYS_chown, SYS_fchown, SYS_lchown, SYS_fchownat]
);
const FILE_LINK: KindSpec = spec!(
    "file_link",
    FILE_SYSTEM_ACTIVITY,
    CREATE,
    Some(Abi::MDATP_EV_FILE_LINK),
    ["mdatp_link", "mdatp_linkat"],
    [SYS_link, SYS_linkat]
);
const FILE_SYMLINK: KindSpec = spec!(
    "file_symlink",
    FILE_SYSTEM_ACTIVITY,
    CREATE,
    Some(Abi::MDATP_EV_FILE_SYMLINK),
    ["mdatp_symlink", "mdatp_symlinkat"],
    [SYS_symlink, SYS_symlinkat]
);
const NETWORK_CONNECT: KindSpec = spec!(
    "network_connect",
    NETWORK_ACTIVITY,
    &[(1, "Open"), (4, "Fail"), (5, "Refuse")],
    Some(Abi::MDATP_EV_NET_CONNECT),
    ["mdatp_connect"],
    [SYS_connect]
);
const NETWORK_ACCEPT: KindSpec = spec!(
    "network_accept",
    NETWORK_ACTIVITY,
    NET_OPEN,
    Some(Abi::MDATP_EV_NET_ACCEPT),
    ["mdatp_accept", "mdatp_accept4"],
    [SYS_accept, SYS_accept4]
);
const NETWORK_LISTEN: KindSpec = spec!(
    "network_listen",
    NETWORK_ACTIVITY,
    &[(7, "Listen")],
    Some(Abi::MDATP_EV_NET_LISTEN),
    ["mdatp_listen"],
    [SYS_listen]
);
const NETWORK_BIND: KindSpec = spec!(
    "network_bind",
    NETWORK_ACTIVITY,
    &[(99, "Bind")],
    Some(Abi::MDATP_EV_NET_BIND),
    ["mdatp_bind"],
    [SYS_bind]
);
const NETWORK_UDP_SEND: KindSpec = spec!(
    "network_udp_send",
    NETWORK_ACTIVITY,
    NET_OPEN,
    Some(Abi::MDATP_EV_NET_UDP_SEND),
    ["mdatp_sendto", "mdatp_sendmsg"],
    []
);
const NETWORK_UDP_RECV: KindSpec = spec!(
    "network_udp_recv",
    NETWORK_ACTIVITY,
    NET_OPEN,
    Some(Abi::MDATP_EV_NET_UDP_RECV),
    ["mdatp_recvfrom", "mdatp_recvmsg"],
    []
);
/// PAM's records, read from the audit multicast group without rules.
const LOGIN: KindSpec = spec!(
    "login",
    AUTHENTICATION,
    &[(1, "Logon"), (2, "Logoff"), (99, "Other")],
    None,
    [],
    []
);

/// io_uring: a ring set up is written as Process Activity (99 Other); an
/// operation submitted to one in the class of what it does (File System
/// Activity, Network Activity), with `unmapped.call_path: io_uring`.
const IO_URING: KindSpec = spec!(
    "io_uring",
    PROCESS_ACTIVITY,
    &[(99, "Other")],
    Some(Abi::MDATP_EV_IO_URING),
    ["mdatp_io_uring_create", "mdatp_io_uring_submit"],
    []
);

impl EventKind {
    /// Every kind, in the order output and docs list them.
    pub const ALL: [EventKind; 20] = [
        EventKind::ProcessExec,
        EventKind::ProcessFork,
        EventKind::ProcessExit,
        EventKind::FileOpen,
        EventKind::FileOpenFolded,
        EventKind::FileDelete,
        EventKind::FileRename,
        EventKind::FileMkdir,
        EventKind::FileChmod,
        EventKind::FileChown,
        EventKind::FileLink,
        EventKind::FileSymlink,
        EventKind::NetworkConnect,
        EventKind::NetworkAccept,
        EventKind::NetworkListen,
        EventKind::NetworkBind,
        EventKind::NetworkUdpSend,
        EventKind::NetworkUdpRecv,
        EventKind::Login,
        EventKind::IoUring,
    ];

    pub fn spec(self) -> &'static KindSpec {
        match self {
            EventKind::ProcessExec => &PROCESS_EXEC,
            EventKind::ProcessFork => &PROCESS_FORK,
            EventKind::ProcessExit => &PROCESS_EXIT,
            EventKind::FileOpen => &FILE_OPEN,
            EventKind::FileOpenFolded => &FILE_OPEN_FOLDED,
            EventKind::FileDelete => &FILE_DELETE,
            EventKind::FileRename => &FILE_RENAME,
            EventKind::FileMkdir => &FILE_MKDIR,
            EventKind::FileChmod => &FILE_CHMOD,
            EventKind::FileChown => &FILE_CHOWN,
            EventKind::FileLink => &FILE_LINK,
            EventKind::FileSymlink => &FILE_SYMLINK,
            EventKind::NetworkConnect => &NETWORK_CONNECT,
            EventKind::NetworkAccept => &NETWORK_ACCEPT,
            EventKind::NetworkListen => &NETWORK_LISTEN,
            EventKind::NetworkBind => &NETWORK_BIND,
            EventKind::NetworkUdpSend => &NETWORK_UDP_SEND,
            EventKind::NetworkUdpRecv => &NETWORK_UDP_RECV,
            EventKind::Login => &LOGIN,
            EventKind::IoUring => &IO_URING,
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind an audit syscall number produces, if any.
    pub fn from_audit_syscall(nr: i64) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.spec().audit_syscalls.contains(&nr))
    }

    /// Every known kind name, for error messages.
    pub fn names() -> String {
        EventKind::ALL.map(EventKind::name).join(", ")
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The docs' table of kinds (docs/EVENTS.md carries it verbatim; a test
/// keeps the two equal).
pub fn markdown_table() -> String {
    let mut s = String::from(
        "| kind | OCSF class | activities | eBPF programs | audit syscalls (x86_64) |\n| --- | --- | --- | --- | --- |\n",
    );
    for k in EventKind::ALL {
        let spec = k.spec();
        let acts: Vec<String> = spec
            .ocsf_activities
            .iter()
            .map(|(id, n)| format!("{id} {n}"))
            .collect();
        let syscalls: Vec<String> = spec
            .audit_syscalls
            .iter()
            .map(|nr| crate::audit::rules::syscall_name(*nr).to_string())
            .collect();
        let or_dash = |v: String| if v.is_empty() { "—".to_string() } else { v };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            spec.name,
            spec.ocsf_class,
            acts.join(", "),
            or_dash(spec.programs.join(", ")),
            or_dash(if k == EventKind::Login {
                "none: PAM's USER_* records".to_string()
            } else {
                syscalls.join(", ")
            }),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_abi_ids_are_unique_and_round_trip() {
        let mut ids = std::collections::BTreeSet::new();
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_name(k.name()), Some(k));
            if let Some(abi) = k.spec().abi {
                assert!(ids.insert(abi as u32), "{k}: ABI id {} twice", abi as u32);
                assert!(
                    (1..32).contains(&(abi as u32)),
                    "{k}: outside the counter array"
                );
            }
        }
    }

    #[test]
    fn every_program_in_the_object_serves_a_kind_and_every_kind_program_exists() {
        let object: Vec<&str> = mdatp_bpf::programs().map(|p| p.name).collect();
        // The 32-bit programs add the i386 path to kinds whose 64-bit
        // programs serve them, and the dispatcher enters the 64-bit ones;
        // alone they serve nothing.
        for p in mdatp_bpf::programs()
            .filter(|p| {
                !matches!(
                    p.domain,
                    mdatp_bpf::Domain::Ia32 | mdatp_bpf::Domain::SyscallDispatch
                )
            })
            .map(|p| &p.name)
        {
            assert!(
                EventKind::ALL.iter().any(|k| k.spec().programs.contains(p)),
                "program {p} serves no kind"
            );
        }
        for k in EventKind::ALL {
            for p in k.spec().programs {
                assert!(object.contains(p), "{k}: no program {p} in the object");
            }
        }
    }

    #[test]
    fn an_audit_syscall_produces_one_kind() {
        for k in EventKind::ALL {
            for nr in k.spec().audit_syscalls {
                assert_eq!(EventKind::from_audit_syscall(*nr), Some(k), "{nr}");
            }
        }
    }

    #[test]
    fn the_docs_carry_the_table_of_kinds() {
        let docs = include_str!("../../docs/EVENTS.md");
        assert!(
            docs.contains(&markdown_table()),
            "docs/EVENTS.md lacks the current table of kinds; paste this in:\n{}",
            markdown_table()
        );
    }
}
