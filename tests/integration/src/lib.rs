//! Helpers for the end-to-end tests: run the real `mdatpd` against the
//! running kernel and collect what it prints.
//!
//! The tests share kernel state (attached programs, the audit subsystem),
//! so each takes [`serial`] first.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod audit;
mod bus;
pub use audit::{AuditState, audit_rules, auditctl, our_audit_rules};
pub use bus::{
    BusPolicy, PrivateBus, TestUser, cli_bin, cli_on, health_json, output_text, start_on_bus,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serializes tests that touch global kernel state.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The built daemon: $MDATPD_BIN, else target/debug/mdatpd of this
/// workspace (the test command builds it first).
pub fn mdatpd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MDATPD_BIN") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("debug/mdatpd");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --workspace` first or set MDATPD_BIN",
        bin.display()
    );
    bin
}

/// What a stopped daemon left: exit status, stderr and every event.
pub struct Stopped {
    pub status: std::process::ExitStatus,
    pub stderr: String,
    pub events: Vec<Value>,
}

/// Whether these tests can run: they load eBPF programs, change audit
/// state and start daemons, which needs root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// First line of every end-to-end test: as a non-root user it is skipped
/// with a one-line reason, so plain `cargo test` runs the rest.
#[macro_export]
macro_rules! skip_unless_root {
    () => {
        if !$crate::is_root() {
            $crate::say_skipped();
            return;
        }
    };
}

/// The one line a skipped test prints. Straight to the terminal: the test
/// harness captures `eprintln!` of passing tests.
pub fn say_skipped() {
    use std::io::Write;
    let name = thread::current().name().unwrap_or("test").to_string();
    let _ = writeln!(
        std::io::stderr(),
        "{name}: skipped, needs root (loads eBPF programs, changes audit state); the README's test command runs it"
    );
}

/// Where every test daemon's events are also written (one file per
/// daemon), for the OCSF schema check (scripts/ocsf-validate.sh).
fn event_archive(pid: u32) -> Option<std::fs::File> {
    let dir = std::env::var_os("MDATP_TEST_EVENT_ARCHIVE")?;
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::File::create(std::path::Path::new(&dir).join(format!("{pid}.jsonl"))).ok()
}

/// A running `mdatpd --foreground`, its stdout parsed as JSON Lines.
pub struct Daemon {
    child: Child,
    /// Private --config-dir/--state-dir unless the test gave its own.
    _dirs: Option<tempfile::TempDir>,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts the daemon and waits until it reports that it is running.
    pub fn start(extra: &[&str]) -> Daemon {
        Self::start_with_env(extra, &[])
    }

    /// On the audit subsystem (eBPF disabled), its rules file in `rules_dir`.
    pub fn start_on_audit(rules_dir: &std::path::Path) -> Daemon {
        let dir = rules_dir.to_str().expect("UTF-8 rules dir");
        Self::start(&[
            "--ebpf-supplementary-event-provider",
            "disabled",
            "--audit-rules-dir",
            dir,
        ])
    }

    /// As `start`, with extra environment variables. The configuration
    /// and state directories are private temporary ones unless `extra`
    /// names them, so no test reads or writes /etc/mdatp.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::start_wrapped(&[], extra, env)
    }

    /// As `start_with_env`, the daemon run by `wrapper` (a program and
    /// its arguments that end by exec'ing the daemon's command line, which
    /// follows them), e.g. to give it a private mount namespace.
    pub fn start_wrapped(wrapper: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(mdatpd_bin());
                c
            }
            None => Command::new(mdatpd_bin()),
        };
        cmd.arg("--foreground").args(extra);
        // The suite can run against the compat build of the syscall exit
        // programs (the one 5.8-5.14 kernels load): scripts/dev.sh does.
        if let Ok(v) = std::env::var("MDATP_TEST_SYSCALL_VARIANT") {
            cmd.arg("--test-syscall-variant").arg(v);
        }
        let dirs = if extra.contains(&"--config-dir") {
            None
        } else {
            let t = tempfile::tempdir().expect("tempdir");
            cmd.arg("--config-dir")
                .arg(t.path().join("etc"))
                .arg("--state-dir")
                .arg(t.path().join("state"));
            Some(t)
        };
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mdatpd");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let ev = Arc::clone(&events);
        let mut archive = event_archive(child.id());
        thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // A line without its newline at the end of the pipe is one
                // the test's own SIGKILL (Drop) cut in the middle of a
                // write: not an event, and not the sensor's to repair (the
                // event file's torn tail is; file_output.rs).
                if buf.last() != Some(&b'\n') {
                    break;
                }
                let line = String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned();
                if let Some(f) = archive.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("mdatpd printed a line that is not JSON ({e}): {line}")
                });
                ev.lock().expect("events").push(v);
            }
        });
        let err = child.stderr.take().expect("stderr");
        let se = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("mdatpd: {line}");
                let mut s = se.lock().expect("stderr");
                s.push_str(&line);
                s.push('\n');
            }
        });
        let d = Daemon {
            child,
            _dirs: dirs,
            events,
            stderr,
        };
        d.wait_stderr("sensor running", Duration::from_secs(30));
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    /// Waits until stderr contains `needle`; panics with stderr otherwise.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.stderr().contains(needle) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mdatpd did not print {needle:?}; stderr:\n{}",
            self.stderr()
        );
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("events").clone()
    }

    /// The first event matching `pred`, waiting up to `timeout`.
    pub fn wait_event(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let end = Instant::now() + timeout;
        // Only the events not looked at yet, under the lock and without
        // copying them all: a copy of tens of thousands per poll would
        // keep the reader thread from the pipe and stall the daemon.
        let mut seen = 0;
        loop {
            {
                let events = self.events.lock().expect("events");
                if let Some(v) = events[seen..].iter().find(|v| pred(v)) {
                    return Some(v.clone());
                }
                seen = events.len();
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig)
            .expect("signal mdatpd");
    }

    /// SIGTERM, then waits for exit; returns what it printed in all.
    pub fn stop(mut self) -> Stopped {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        // A daemon that does not stop is a failure, not a hung test run.
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait mdatpd") {
                break st;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "mdatpd did not stop within 30 s of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        // Let the reader threads take the last lines.
        thread::sleep(Duration::from_millis(200));
        Stopped {
            status,
            stderr: self.stderr(),
            events: self.events(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `v` at a JSON pointer, e.g. "/process/pid".
pub fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

pub fn is_exec(v: &Value) -> bool {
    v["class_uid"] == 1007 && v["activity_id"] == 1 && v["unmapped"]["launch_type_id"] == 3
}

/// How long a switch to eBPF may take: its programs load off the event
/// loop, and the verifier alone takes seconds of CPU (7.8 s on this
/// project's slowest VM, more beside other work).
pub const LOAD_WAIT: Duration = Duration::from_secs(90);

/// The provider an event names (`ebpf`, `auditd`, ...).
pub fn provider_of(v: &Value) -> &str {
    at(v, "/unmapped/provider").as_str().unwrap_or("")
}

/// Runs /bin/echo with a unique argument; returns its exec event, or
/// panics with the daemon's log when it does not come within `wait`.
pub fn exec_seen(d: &Daemon, tag: &str, wait: Duration) -> Value {
    let st = Command::new("/bin/echo")
        .arg(tag)
        .stdout(Stdio::null())
        .status()
        .expect("run /bin/echo");
    assert!(st.success());
    d.wait_event(wait, |v| {
        is_exec(v) && at(v, "/unmapped/process/argv/1") == tag
    })
    .unwrap_or_else(|| panic!("no exec event for {tag}; stderr:\n{}", d.stderr()))
}

/// Each tag's exec (`exec_seen`) is in `events` exactly once: across a
/// provider switch nothing is lost and nothing reported twice.
pub fn assert_each_exec_once(events: &[Value], tags: &[&str]) {
    for tag in tags {
        let n = events
            .iter()
            .filter(|v| is_exec(v) && at(v, "/unmapped/process/argv/1") == *tag)
            .count();
        assert_eq!(n, 1, "{tag} reported {n} times");
    }
}

pub fn is_fork(v: &Value) -> bool {
    v["class_uid"] == 1007 && v["activity_id"] == 1 && v["unmapped"]["launch_type_id"] == 2
}

pub fn is_exit(v: &Value) -> bool {
    v["class_uid"] == 1007 && v["activity_id"] == 2
}

/// The test helper binary (tests/integration/src/bin), next to mdatpd.
pub fn helper_bin() -> PathBuf {
    let bin = mdatpd_bin().with_file_name("mdatp-test-helper");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

/// Writes a filter configuration file and returns its path.
pub fn filter_config(dir: &std::path::Path, yaml: &str) -> PathBuf {
    let p = dir.join("filters.yaml");
    std::fs::write(&p, yaml).expect("write filter config");
    p
}

pub fn is_file_event(v: &Value) -> bool {
    v["class_uid"] == 1001
}

pub fn is_net_event(v: &Value) -> bool {
    v["class_uid"] == 4001
}

/// Names of the BPF programs loaded in the kernel now (bpftool).
pub fn loaded_bpf_program_names() -> Vec<String> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .expect("run bpftool (apt-get install bpftool)");
    assert!(out.status.success(), "bpftool prog show failed");
    let v: Value = serde_json::from_slice(&out.stdout).expect("bpftool json");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Our BPF programs (`mdatp_*`) still loaded, once the kernel has had up
/// to 5 s to free those of a daemon that just exited: a process's
/// programs go when its last descriptor closes, but the ones held by a
/// tail-call program array (the 64-bit and 32-bit system call programs)
/// go when that map is freed, from a kernel work queue, a moment later.
pub fn our_bpf_programs_settled() -> Vec<String> {
    let ours = || -> Vec<String> {
        loaded_bpf_program_names()
            .into_iter()
            .filter(|n| n.starts_with("mdatp_"))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = ours();
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = ours();
    }
    left
}

/// Kernel ring-buffer drops per event type from the last "loss totals"
/// line the daemon logged (on SIGUSR1 or at shutdown).
pub fn kernel_drops(stderr: &str) -> std::collections::BTreeMap<String, u64> {
    kernel_counts(stderr, "kernel ring-buffer drops:")
}

/// One section ("kernel filtered:", "kernel folded:", ...) of the last
/// "loss totals" line.
pub fn kernel_counts(stderr: &str, section: &str) -> std::collections::BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("loss totals:"))
        .unwrap_or_else(|| panic!("no loss totals in stderr:\n{stderr}"));
    let drops = line
        .split(section)
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_else(|| panic!("malformed loss totals: {line}"));
    drops
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.parse().unwrap_or_else(|_| panic!("bad count in {line}")),
            )
        })
        .collect()
}

/// How often each marker appears as an exec's argument.
pub fn marker_counts(lines: &[Value], prefix: &str) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for v in lines.iter().filter(|v| is_exec(v)) {
        let cmd = at(v, "/process/cmd_line").as_str().unwrap_or_default();
        if let Some(w) = cmd.split_whitespace().find(|w| w.starts_with(prefix)) {
            *m.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    m
}

/// Runs `/bin/true <prefix><i>` for each i: marked execs.
pub fn run_markers(prefix: &str, range: std::ops::Range<usize>) {
    for i in range {
        let st = std::process::Command::new("/bin/true")
            .arg(format!("{prefix}{i}"))
            .status()
            .expect("run /bin/true");
        assert!(st.success());
    }
}

/// Polls `f` every 200 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    f()
}
