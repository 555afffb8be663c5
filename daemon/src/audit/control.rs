//! auditctl: audit status and rule changes. The audit rule syntax and its
//! kernel encoding are auditctl's business; we only ever add or delete
//! rules that carry our key.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// How long one auditctl call may take. A hung auditctl (a stuck audit
/// netlink, a wedged auditd) must not hold the sensor: the call is killed
/// and fails with `AuditError::Timeout`.
pub const AUDITCTL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot run {bin} ({source}); install the auditd package (apt-get install auditd)")]
    Missing {
        bin: String,
        #[source]
        source: io::Error,
    },
    #[error("auditctl {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("auditctl {args} did not finish within {} s: killed", .after.as_secs())]
    Timeout { args: String, after: Duration },
    #[error("audit configuration is immutable (enabled 2): rules cannot change until reboot")]
    Immutable,
    #[error("cannot read audit status from auditctl -s: {0}")]
    Status(String),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("audit netlink socket")]
    Netlink(#[source] io::Error),
}

/// `auditctl -s`, the parts we use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStatus {
    /// 0 disabled, 1 enabled, 2 enabled and immutable.
    pub enabled: u32,
    /// pid of the registered audit daemon, 0 if none.
    pub pid: u32,
    /// records the kernel lost (backlog overflow, rate limit).
    pub lost: u64,
    pub backlog: u64,
}

impl AuditStatus {
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        let get = |key: &str| {
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let enabled = get("enabled").ok_or_else(|| AuditError::Status(text.trim().to_string()))?;
        Ok(Self {
            enabled: enabled as u32,
            pid: get("pid").unwrap_or(0) as u32,
            lost: get("lost").unwrap_or(0),
            backlog: get("backlog").unwrap_or(0),
        })
    }

    pub fn immutable(&self) -> bool {
        self.enabled == 2
    }
}

#[derive(Debug, Clone)]
pub struct Auditctl {
    bin: PathBuf,
    /// Testing: the `enabled` value status() reports, instead of the
    /// kernel's (immutable mode cannot be undone without a reboot).
    enabled_override: Option<u32>,
}

impl Default for Auditctl {
    fn default() -> Self {
        Self {
            bin: PathBuf::from("auditctl"),
            enabled_override: None,
        }
    }
}

impl Auditctl {
    fn run(&self, args: &[&str]) -> Result<String, AuditError> {
        let mut child = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a timeout kills whatever it started.
            .process_group(0)
            .spawn()
            .map_err(|source| AuditError::Missing {
                bin: self.bin.display().to_string(),
                source,
            })?;
        // The pipes are read beside the wait: `auditctl -l` on a host with
        // many rules prints more than a pipe holds.
        let reader = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
        let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
        let status = match child.wait_timeout(AUDITCTL_TIMEOUT) {
            Ok(Some(status)) => status,
            Ok(None) | Err(_) => {
                let group = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                // The readers end when the group's pipes close; not waited for.
                return Err(AuditError::Timeout {
                    args: args.join(" "),
                    after: AUDITCTL_TIMEOUT,
                });
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        // auditctl can print an error and still exit 0 (immutable mode).
        if !status.success() || stderr.contains("Error") || stderr.contains("error") {
            return Err(AuditError::Failed {
                args: args.join(" "),
                stderr,
            });
        }
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }

    /// Testing: another auditctl program (a missing one is a host without
    /// the audit tools: the rules cannot load, for real).
    pub fn with_bin(mut self, bin: Option<PathBuf>) -> Self {
        if let Some(b) = bin {
            self.bin = b;
        }
        self
    }

    pub fn with_enabled_override(mut self, enabled: Option<u32>) -> Self {
        self.enabled_override = enabled;
        self
    }

    pub fn status(&self) -> Result<AuditStatus, AuditError> {
        let mut s = AuditStatus::parse(&self.run(&["-s"])?)?;
        if let Some(e) = self.enabled_override {
            s.enabled = e;
        }
        Ok(s)
    }

    /// Every loaded rule, as `auditctl -l` prints it.
    pub fn list_rules(&self) -> Result<Vec<String>, AuditError> {
        let out = self.run(&["-l"])?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "No rules")
            .map(String::from)
            .collect())
    }

    pub fn add_rule(&self, args: &[String]) -> Result<(), AuditError> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args).map(|_| ())
    }

    /// Deletes a rule given as `auditctl -l` printed it ("-a ..." or "-w ...").
    pub fn delete_listed(&self, line: &str) -> Result<(), AuditError> {
        let mut args: Vec<&str> = line.split_whitespace().collect();
        args[0] = match args.first().copied() {
            Some("-a") => "-d",
            Some("-w") => "-W",
            _ => {
                return Err(AuditError::Failed {
                    args: line.to_string(),
                    stderr: "not a rule line".into(),
                });
            }
        };
        self.run(&args).map(|_| ())
    }

    pub fn set_enabled(&self, enabled: u32) -> Result<(), AuditError> {
        self.run(&["-e", &enabled.to_string()]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_auditctl_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("auditctl");
        // A child that keeps the pipes open outlives a plain kill.
        std::fs::write(&bin, "#!/bin/sh\nsleep 60 &\nsleep 60\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ctl = Auditctl::default().with_bin(Some(bin));
        let t = std::time::Instant::now();
        let e = ctl.status().unwrap_err();
        assert!(matches!(e, AuditError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < AUDITCTL_TIMEOUT + Duration::from_secs(2));
        assert!(e.to_string().contains("did not finish within 5 s"), "{e}");
    }

    #[test]
    fn status_is_parsed() {
        let s = AuditStatus::parse(
            "enabled 2\nfailure 1\npid 123\nrate_limit 0\nbacklog_limit 64\nlost 7\nbacklog 3\n",
        )
        .expect("status");
        assert_eq!(s.enabled, 2);
        assert!(s.immutable());
        assert_eq!((s.pid, s.lost, s.backlog), (123, 7, 3));
        assert!(AuditStatus::parse("garbage").is_err());
    }
}
