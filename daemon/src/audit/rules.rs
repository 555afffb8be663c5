//! Our audit rules: generated, written to the rules file, loaded, and
//! removed again. Only rules carrying our key are ever touched.
// libc's SYS_* constants keep the kernel's lower-case names in match patterns.
#![allow(non_upper_case_globals)]

use std::path::{Path, PathBuf};

use super::arch::Arch;
use super::control::{AuditError, Auditctl};
use crate::kind::{EventKind, class};

pub const KEY: &str = "mdatp";
pub const RULES_FILE: &str = "mdatp.rules";

/// The rules for `kinds`: one for opens (failed opens are reported by
/// neither provider, so it asks for success), then one per OCSF class
/// for the rest. Kinds without audit syscalls add nothing.
pub(super) fn groups(kinds: &[EventKind]) -> Vec<(Vec<EventKind>, bool)> {
    let audited = |k: &&EventKind| !k.spec().audit_syscalls.is_empty();
    let mut out = Vec::new();
    if kinds.contains(&EventKind::FileOpen) {
        out.push((vec![EventKind::FileOpen], true));
    }
    for class in [
        class::PROCESS_ACTIVITY,
        class::FILE_SYSTEM_ACTIVITY,
        class::NETWORK_ACTIVITY,
    ] {
        let group: Vec<EventKind> = kinds
            .iter()
            .filter(audited)
            .filter(|k| k.spec().ocsf_class == class && **k != EventKind::FileOpen)
            .copied()
            .collect();
        if !group.is_empty() {
            out.push((group, false));
        }
    }
    out
}

/// The x86_64 name auditctl knows a system call by (the rules file is
/// read by people too).
pub fn syscall_name(nr: i64) -> &'static str {
    use libc::*;
    match nr {
        SYS_execve => "execve",
        SYS_execveat => "execveat",
        SYS_exit_group => "exit_group",
        SYS_open => "open",
        SYS_openat => "openat",
        SYS_openat2 => "openat2",
        SYS_creat => "creat",
        SYS_unlink => "unlink",
        SYS_unlinkat => "unlinkat",
        SYS_rmdir => "rmdir",
        SYS_rename => "rename",
        SYS_renameat => "renameat",
        SYS_renameat2 => "renameat2",
        SYS_mkdir => "mkdir",
        SYS_mkdirat => "mkdirat",
        SYS_chmod => "chmod",
        SYS_fchmod => "fchmod",
        SYS_fchmodat => "fchmodat",
        SYS_chown => "chown",
        SYS_fchown => "fchown",
        SYS_lchown => "lchown",
        SYS_fchownat => "fchownat",
        SYS_link => "link",
        SYS_linkat => "linkat",
        SYS_symlink => "symlink",
        SYS_symlinkat => "symlinkat",
        SYS_connect => "connect",
        SYS_accept => "accept",
        SYS_accept4 => "accept4",
        SYS_bind => "bind",
        SYS_listen => "listen",
        _ => "unknown",
    }
}

/// How the rule names a call: by name, but by number where an auditctl
/// still in service does not know the name (Debian 11's auditd 3.0 refuses
/// `openat2`, which makes the whole rule fail to load). Calls added since
/// Linux 5.1 have the same number on x86_64 and i386.
fn auditctl_spelling(name: &'static str) -> &'static str {
    match name {
        "openat2" => "437",
        other => other,
    }
}

/// The auditctl arguments of every rule: each group once per ABI (a
/// 32-bit program makes its calls with other numbers, which an
/// `arch=b64` rule never sees). The sensor's own process and its children
/// (auditctl) are left out so that its own work does not feed back.
pub fn rule_args(own_pid: u32, kinds: &[EventKind]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for arch in Arch::ALL {
        for (kinds, success_only) in groups(kinds) {
            let mut syscalls: Vec<&str> = Vec::new();
            // Once each: socketcall stands for several calls.
            for name in kinds
                .iter()
                .flat_map(|k| k.spec().audit_syscalls.iter())
                .flat_map(|nr| arch.names(*nr))
                .map(auditctl_spelling)
            {
                if !syscalls.contains(&name) {
                    syscalls.push(name);
                }
            }
            if syscalls.is_empty() {
                continue;
            }
            let mut a: Vec<String> = vec!["-a".into(), "always,exit".into(), "-F".into()];
            a.push(arch.rule_field().into());
            a.extend(["-S".into(), syscalls.join(",")]);
            if success_only {
                a.extend(["-F".into(), "success=1".into()]);
            }
            a.extend(["-F".into(), format!("pid!={own_pid}")]);
            a.extend(["-F".into(), format!("ppid!={own_pid}")]);
            a.extend(["-k".into(), KEY.into()]);
            out.push(a);
        }
    }
    out
}

/// The rules file, in auditctl -R / augenrules syntax.
pub fn rules_file_text(rules: &[Vec<String>]) -> String {
    let mut s =
        String::from("## Written by mdatpd (auditd provider); removed when it switches to eBPF.\n");
    for r in rules {
        s.push_str(&r.join(" "));
        s.push('\n');
    }
    s
}

/// Whether a rule line (auditctl -l prints `-F key=K`, rule files use
/// `-k K`) carries exactly our key.
pub fn is_ours(listed_rule: &str) -> bool {
    let words: Vec<&str> = listed_rule.split_whitespace().collect();
    words.iter().any(|w| w.strip_prefix("key=") == Some(KEY))
        || words.windows(2).any(|p| p == ["-k", KEY])
}

pub struct RuleManager {
    pub ctl: Auditctl,
    rules_dir: PathBuf,
}

impl RuleManager {
    pub fn new(ctl: Auditctl, rules_dir: &Path) -> Self {
        Self {
            ctl,
            rules_dir: rules_dir.to_path_buf(),
        }
    }

    pub fn rules_path(&self) -> PathBuf {
        self.rules_dir.join(RULES_FILE)
    }

    /// Writes the file and loads our rules (replacing any of ours already
    /// loaded). Fails without touching anything when rules are immutable.
    pub fn install(&self, own_pid: u32, kinds: &[EventKind]) -> Result<usize, AuditError> {
        if self.ctl.status()?.immutable() {
            return Err(AuditError::Immutable);
        }
        let rules = rule_args(own_pid, kinds);
        let path = self.rules_path();
        std::fs::create_dir_all(&self.rules_dir).map_err(|source| AuditError::Io {
            what: "create",
            path: self.rules_dir.display().to_string(),
            source,
        })?;
        // Atomically: augenrules (or a crash) never sees half a file. The
        // temporary name does not end in .rules, so augenrules skips it.
        let tmp = self.rules_dir.join(format!(".{RULES_FILE}.tmp"));
        std::fs::write(&tmp, rules_file_text(&rules))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| AuditError::Io {
                what: "write",
                path: path.display().to_string(),
                source,
            })?;
        self.remove_loaded()?;
        for r in &rules {
            self.ctl.add_rule(r)?;
        }
        Ok(rules.len())
    }

    /// Deletes our loaded rules (and only ours). Returns how many.
    pub fn remove_loaded(&self) -> Result<usize, AuditError> {
        let ours: Vec<String> = self
            .ctl
            .list_rules()?
            .into_iter()
            .filter(|r| is_ours(r))
            .collect();
        if !ours.is_empty() && self.ctl.status()?.immutable() {
            return Err(AuditError::Immutable);
        }
        for r in &ours {
            self.ctl.delete_listed(r)?;
        }
        Ok(ours.len())
    }

    pub fn remove_file(&self) -> Result<bool, AuditError> {
        let path = self.rules_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(AuditError::Io {
                what: "remove",
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_key_is_ours() {
        assert!(is_ours(
            "-a always,exit -F arch=b64 -S execve -F pid!=1 -F key=mdatp"
        ));
        assert!(!is_ours(
            "-a always,exit -F arch=b64 -S execve -F key=mdatp-other"
        ));
        assert!(!is_ours("-w /etc/passwd -p wa -k identity"));
        assert!(!is_ours(
            "-a always,exit -F arch=b64 -S openat -F key=hardening"
        ));
    }

    #[test]
    fn every_audit_syscall_of_a_kind_has_a_rule_name() {
        for k in EventKind::ALL {
            for nr in k.spec().audit_syscalls {
                assert_ne!(syscall_name(*nr), "unknown", "{k}: syscall {nr}");
            }
        }
        let rules = rule_args(1, &EventKind::ALL).concat().join(" ");
        assert!(rules.contains("-S execve,execveat,exit_group "), "{rules}");
        assert!(
            rules.contains("-S connect,accept,accept4,listen,bind "),
            "{rules}"
        );
        assert!(
            rules.contains("open,openat,437,creat -F success=1"),
            "{rules}"
        );
    }

    #[test]
    fn rules_cover_exactly_the_kinds_asked_for() {
        let open_only = rule_args(1, &[EventKind::FileOpen, EventKind::FileOpenFolded]);
        assert_eq!(open_only.len(), 2, "one per ABI");
        let text = open_only[0].join(" ");
        assert!(
            text.contains("-S open,openat,437,creat -F success=1"),
            "{text}"
        );
        let some = rule_args(1, &[EventKind::FileChmod, EventKind::NetworkBind]);
        let text = some.concat().join(" ");
        assert!(text.contains("-S chmod,fchmod,fchmodat "), "{text}");
        assert!(text.contains("-S bind "), "{text}");
        assert!(
            !text.contains("unlink") && !text.contains("connect"),
            "{text}"
        );
        assert!(rule_args(1, &[EventKind::ProcessFork]).is_empty());
    }

    #[test]
    fn every_rule_carries_the_key() {
        let rules = rule_args(42, &EventKind::ALL);
        assert_eq!(rules.len(), 8, "four groups, each for both ABIs");
        let b32 = rules[4..].concat().join(" ");
        assert!(
            b32.contains("arch=b32 -S execve,execveat,exit_group "),
            "{b32}"
        );
        assert!(
            b32.contains("chown,chown32,fchown,fchown32,lchown,lchown32,fchownat,"),
            "{b32}"
        );
        assert!(
            b32.contains("-S connect,socketcall,accept4,listen,bind "),
            "socketcall once: {b32}"
        );
        for r in &rules {
            assert_eq!(r[r.len() - 2..], ["-k".to_string(), "mdatp".to_string()]);
            assert!(r.contains(&"pid!=42".to_string()));
        }
        assert!(
            rules_file_text(&rules)
                .lines()
                .skip(1)
                .all(|l| l.ends_with("-k mdatp"))
        );
    }
}
