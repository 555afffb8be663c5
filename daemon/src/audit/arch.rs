//! The two syscall ABIs of an x86_64 kernel that audit records name by
//! `arch=`: native x86_64 and 32-bit (ia32, `int 0x80` and compat
//! programs), which have their own syscall numbers. Every rule is loaded
//! for both (a 32-bit program is otherwise invisible), and every record is
//! read in x86_64 numbers so that the kinds and conversion know one table.
// libc's SYS_* constants keep the kernel's lower-case names in match patterns.
#![allow(non_upper_case_globals)]

use libc::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    I386,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::I386];

    /// The `arch=` value of records (AUDIT_ARCH_*), in the kernel's hex.
    pub fn record_value(self) -> &'static [u8] {
        match self {
            Arch::X86_64 => b"c000003e",
            Arch::I386 => b"40000003",
        }
    }

    /// AUDIT_ARCH_* as a number (the parsed `arch=` field).
    pub fn from_number(n: i64) -> Option<Arch> {
        match n {
            0xc000_003e => Some(Arch::X86_64),
            0x4000_0003 => Some(Arch::I386),
            _ => None,
        }
    }

    pub fn from_record(value: &[u8]) -> Option<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.record_value().eq_ignore_ascii_case(value))
    }

    /// The `-F arch=` of a rule.
    pub fn rule_field(self) -> &'static str {
        match self {
            Arch::X86_64 => "arch=b64",
            Arch::I386 => "arch=b32",
        }
    }

    /// A record's syscall number in x86_64 numbers (None: not one the
    /// sensor knows in this ABI).
    pub fn to_x86_64(self, nr: i64) -> Option<i64> {
        match self {
            Arch::X86_64 => Some(nr),
            Arch::I386 => I386.iter().find(|(n, _, _)| *n == nr).map(|(_, x, _)| *x),
        }
    }

    /// As `to_x86_64`, with socketcall(2) unpacked: its first argument
    /// `a0` says which socket call it is (its own arguments are in the
    /// SOCKETCALL record).
    pub fn call_to_x86_64(self, nr: i64, a0: u64) -> Option<i64> {
        if self == Arch::I386 && nr == I386_SOCKETCALL {
            return SOCKETCALLS.iter().find(|(c, _)| *c == a0).map(|(_, x)| *x);
        }
        self.to_x86_64(nr)
    }

    /// The names auditctl knows the calls of `x86_64_nr` by in this ABI
    /// (i386 has several for chown, none for accept).
    pub fn names(self, x86_64_nr: i64) -> Vec<&'static str> {
        match self {
            Arch::X86_64 => vec![super::rules::syscall_name(x86_64_nr)],
            Arch::I386 => {
                let mut names: Vec<&str> = I386
                    .iter()
                    .filter(|(_, x, _)| *x == x86_64_nr)
                    .map(|(_, _, name)| *name)
                    .collect();
                if SOCKETCALLS.iter().any(|(_, x)| *x == x86_64_nr) {
                    names.push("socketcall");
                }
                names
            }
        }
    }
}

/// socketcall(2): old 32-bit programs' one door to the socket calls.
pub const I386_SOCKETCALL: i64 = 102;

/// socketcall's call numbers (linux/net.h SYS_*) of the calls the sensor
/// reports, and the x86_64 call each is.
const SOCKETCALLS: &[(u64, i64)] = &[
    (2, SYS_bind),
    (3, SYS_connect),
    (4, SYS_listen),
    (5, SYS_accept),
    (18, SYS_accept4),
];

/// i386 number, the x86_64 call it is, its name (from the kernel's
/// arch/x86/entry/syscalls/syscall_32.tbl, as `ausyscall i386 --dump`
/// prints it). The 16-bit-uid chown family maps onto chown, as does its
/// 32-bit-uid successor. socketcall (102) is unpacked by `call_to_x86_64`.
const I386: &[(i64, i64, &str)] = &[
    (5, SYS_open, "open"),
    (8, SYS_creat, "creat"),
    (9, SYS_link, "link"),
    (10, SYS_unlink, "unlink"),
    (11, SYS_execve, "execve"),
    (15, SYS_chmod, "chmod"),
    (16, SYS_lchown, "lchown"),
    (38, SYS_rename, "rename"),
    (39, SYS_mkdir, "mkdir"),
    (40, SYS_rmdir, "rmdir"),
    (83, SYS_symlink, "symlink"),
    (94, SYS_fchmod, "fchmod"),
    (95, SYS_fchown, "fchown"),
    (182, SYS_chown, "chown"),
    (198, SYS_lchown, "lchown32"),
    (207, SYS_fchown, "fchown32"),
    (212, SYS_chown, "chown32"),
    (252, SYS_exit_group, "exit_group"),
    (295, SYS_openat, "openat"),
    (296, SYS_mkdirat, "mkdirat"),
    (298, SYS_fchownat, "fchownat"),
    (301, SYS_unlinkat, "unlinkat"),
    (302, SYS_renameat, "renameat"),
    (303, SYS_linkat, "linkat"),
    (304, SYS_symlinkat, "symlinkat"),
    (306, SYS_fchmodat, "fchmodat"),
    (353, SYS_renameat2, "renameat2"),
    (358, SYS_execveat, "execveat"),
    (361, SYS_bind, "bind"),
    (362, SYS_connect, "connect"),
    (363, SYS_listen, "listen"),
    (364, SYS_accept4, "accept4"),
    (437, SYS_openat2, "openat2"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::EventKind;

    #[test]
    fn every_i386_entry_is_a_call_some_kind_reports() {
        for (nr, x, name) in I386 {
            assert!(EventKind::from_audit_syscall(*x).is_some(), "{name} ({nr})");
            assert_eq!(Arch::I386.to_x86_64(*nr), Some(*x));
        }
        assert_eq!(Arch::I386.to_x86_64(102), None, "socketcall");
        assert_eq!(Arch::I386.call_to_x86_64(102, 3), Some(SYS_connect));
        assert_eq!(Arch::I386.call_to_x86_64(102, 1), None, "socket()");
        assert_eq!(
            Arch::X86_64.call_to_x86_64(102, 3),
            Some(102),
            "x86_64 getuid"
        );
        assert_eq!(Arch::I386.names(SYS_chown), ["chown", "chown32"]);
        assert_eq!(Arch::I386.names(SYS_accept), ["socketcall"]);
        assert_eq!(Arch::I386.names(SYS_connect), ["connect", "socketcall"]);
        assert_eq!(Arch::from_record(b"40000003"), Some(Arch::I386));
        assert_eq!(Arch::from_record(b"C000003E"), Some(Arch::X86_64));
        assert_eq!(Arch::from_record(b"c00000b7"), None, "aarch64");
    }
}
