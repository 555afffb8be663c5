//! Which SYSCALL records are ours: those our rules asked for, whatever
//! key labelled them. The kernel labels a record with the key of the
//! first rule that matched, so on a host whose baseline (CIS, STIG, a
//! distribution's rules) already watches deletes, permission changes or
//! execs, the records our rules asked for carry the foreign key. Selecting
//! by key alone would drop them; selecting by what our rules say (the
//! syscall, the arch, success where asked, not the sensor itself) keeps
//! them, exactly once (one record per syscall), and nothing we did not
//! ask for.

use super::arch::Arch;
use super::rules::groups;
use crate::kind::EventKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    own_pid: u32,
    /// (syscall number, success only) per syscall our rules name.
    syscalls: Vec<(i64, bool)>,
}

/// The value of the first ` name=` in a record's text (up to the next
/// space). The kernel writes arch, syscall, success, ppid and pid before
/// any text a process controls (comm, exe: quoted or hex), so the first
/// occurrence is the kernel's.
fn field<'a>(text: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let pos = text
        .windows(name.len() + 2)
        .position(|w| w[0] == b' ' && &w[1..=name.len()] == name && w[name.len() + 1] == b'=')?;
    let start = pos + name.len() + 2;
    let end = text[start..]
        .iter()
        .position(|b| *b == b' ')
        .map_or(text.len(), |e| start + e);
    Some(&text[start..end])
}

fn number<T: std::str::FromStr>(text: &[u8], name: &[u8]) -> Option<T> {
    std::str::from_utf8(field(text, name)?).ok()?.parse().ok()
}

/// A field written in hex without a prefix (a syscall's arguments).
pub(super) fn hex_field(text: &[u8], name: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(field(text, name)?).ok()?, 16).ok()
}

/// A SYSCALL record's call in x86_64 numbers (our rules are loaded for
/// both ABIs; a 32-bit call is read as its x86_64 counterpart). None for
/// another ABI or a call the sensor does not know there.
pub(super) fn x86_64_syscall(text: &[u8]) -> Option<i64> {
    let arch = field(text, b"arch").and_then(Arch::from_record)?;
    let nr = number::<i64>(text, b"syscall")?;
    arch.call_to_x86_64(nr, hex_field(text, b"a0").unwrap_or(u64::MAX))
}

impl Selection {
    /// What the rules for `kinds` (rules::rule_args) ask for.
    pub fn new(own_pid: u32, kinds: &[EventKind]) -> Self {
        let syscalls = groups(kinds)
            .iter()
            .flat_map(|(ks, success_only)| {
                ks.iter()
                    .flat_map(|k| k.spec().audit_syscalls.iter())
                    .map(move |nr| (*nr, *success_only))
            })
            .collect();
        Self { own_pid, syscalls }
    }

    /// Whether the SYSCALL record `text` is one our rules asked for.
    pub fn matches(&self, text: &[u8]) -> bool {
        let Some(nr) = x86_64_syscall(text) else {
            return false;
        };
        let Some(&(_, success_only)) = self.syscalls.iter().find(|(n, _)| *n == nr) else {
            return false;
        };
        if success_only && field(text, b"success") != Some(b"yes") {
            return false;
        }
        // Our rules leave out the sensor and its children (auditctl).
        number::<u32>(text, b"pid") != Some(self.own_pid)
            && number::<u32>(text, b"ppid") != Some(self.own_pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(syscall: i64, success: &str, pid: u32, ppid: u32, key: &str) -> Vec<u8> {
        format!(
            "audit(1.2:3): arch=c000003e syscall={syscall} success={success} exit=3 a0=1 \
             items=1 ppid={ppid} pid={pid} auid=0 uid=0 comm=\"x\" exe=\"/usr/bin/x\" key={key}"
        )
        .into_bytes()
    }

    #[test]
    fn records_of_foreign_rules_are_ours_when_our_rules_asked_for_them() {
        let s = Selection::new(
            100,
            &[
                EventKind::ProcessExec,
                EventKind::FileOpen,
                EventKind::FileDelete,
            ],
        );
        let exec = libc::SYS_execve;
        assert!(s.matches(&record(exec, "yes", 5, 1, "\"exec\"")));
        assert!(s.matches(&record(libc::SYS_unlinkat, "no", 5, 1, "\"delete\"")));
        // Opens: success only, as our rule asks.
        assert!(s.matches(&record(libc::SYS_openat, "yes", 5, 1, "(null)")));
        assert!(!s.matches(&record(libc::SYS_openat, "no", 5, 1, "\"access\"")));
        // Not asked for: another syscall, the sensor itself, its children.
        assert!(!s.matches(&record(libc::SYS_settimeofday, "yes", 5, 1, "\"time\"")));
        assert!(!s.matches(&record(exec, "yes", 100, 1, "\"exec\"")));
        assert!(!s.matches(&record(exec, "yes", 7, 100, "\"exec\"")));
        // A 32-bit call, in its own numbers: i386 execve is 11, and 59
        // (x86_64's execve) is umask there.
        let i386 = |nr: i64| {
            String::from_utf8(record(nr, "yes", 5, 1, "\"exec\""))
                .unwrap()
                .replace("c000003e", "40000003")
        };
        assert!(s.matches(i386(11).as_bytes()));
        assert!(!s.matches(i386(exec).as_bytes()));
        // Another ABI (aarch64's arch value) is none of ours.
        let other = String::from_utf8(record(exec, "yes", 5, 1, "k"))
            .unwrap()
            .replace("c000003e", "c00000b7");
        assert!(!s.matches(other.as_bytes()));
    }

    #[test]
    fn fields_are_found_whole() {
        let t = b"audit(1:2): arch=c000003e syscall=59 ppid=1 pid=22 auid=4294967295";
        assert_eq!(field(t, b"pid"), Some(&b"22"[..]));
        assert_eq!(field(t, b"ppid"), Some(&b"1"[..]));
        assert_eq!(field(t, b"id"), None);
        assert_eq!(field(t, b"auid"), Some(&b"4294967295"[..]));
    }
}
