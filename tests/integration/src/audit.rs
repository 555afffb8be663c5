//! The audit state tests read and change: auditctl, the loaded rules,
//! and `AuditState`, which puts back what a test changed.

use std::process::Command;

/// `auditctl ARGS` → stdout; panics with stderr on failure.
pub fn auditctl(args: &[&str]) -> String {
    let out = Command::new("auditctl")
        .args(args)
        .output()
        .expect("run auditctl (apt-get install auditd)");
    assert!(
        out.status.success(),
        "auditctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loaded audit rules, as auditctl -l prints them.
pub fn audit_rules() -> Vec<String> {
    auditctl(&["-l"])
        .lines()
        .filter(|l| !l.trim().is_empty() && l.trim() != "No rules")
        .map(String::from)
        .collect()
}

pub fn our_audit_rules() -> Vec<String> {
    audit_rules()
        .into_iter()
        .filter(|r| r.contains("key=mdatp") && !r.contains("key=mdatp-"))
        .collect()
}

fn audit_enabled() -> u32 {
    auditctl(&["-s"])
        .lines()
        .find_map(|l| l.strip_prefix("enabled "))
        .and_then(|v| v.trim().parse().ok())
        .expect("enabled in auditctl -s")
}

/// Audit state a test changes, put back on drop: the `enabled` flag, the
/// foreign rules the test added, and (if a daemon died) rules keyed mdatp.
pub struct AuditState {
    enabled: u32,
    rate_limit: u32,
    added: Vec<Vec<String>>,
}

fn audit_status_field(name: &str) -> u32 {
    let out = auditctl(&["-s"]);
    let prefix = format!("{name} ");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in auditctl -s"))
}

impl AuditState {
    pub fn capture() -> Self {
        Self {
            enabled: audit_enabled(),
            rate_limit: audit_status_field("rate_limit"),
            added: Vec::new(),
        }
    }

    /// Adds a rule (auditctl -a/-w arguments) that plays another tool's.
    pub fn add_foreign(&mut self, args: &[&str]) {
        auditctl(args);
        self.added
            .push(args.iter().map(|s| s.to_string()).collect());
    }

    pub fn set_enabled(&self, e: u32) {
        auditctl(&["-e", &e.to_string()]);
    }

    /// The kernel's message rate limit (0: none); put back on drop.
    pub fn set_rate_limit(&self, per_second: u32) {
        auditctl(&["-r", &per_second.to_string()]);
    }

    /// The kernel's `lost` counter.
    pub fn lost(&self) -> u64 {
        u64::from(audit_status_field("lost"))
    }
}

impl Drop for AuditState {
    fn drop(&mut self) {
        for args in self.added.iter().rev() {
            let mut del = args.clone();
            match del[0].as_str() {
                "-a" => del[0] = "-d".into(),
                "-w" => del[0] = "-W".into(),
                _ => continue,
            }
            let _ = Command::new("auditctl").args(&del).output();
        }
        for r in our_audit_rules() {
            let mut args: Vec<&str> = r.split_whitespace().collect();
            args[0] = "-d";
            let _ = Command::new("auditctl").args(&args).output();
        }
        let _ = Command::new("auditctl")
            .args(["-r", &self.rate_limit.to_string()])
            .output();
        let _ = Command::new("auditctl")
            .args(["-e", &self.enabled.to_string()])
            .output();
    }
}
