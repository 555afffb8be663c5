//! Layered configuration and systemd citizenship against the real daemon:
//! every configuration problem reported at once, a bad reload that changes
//! nothing, and the notify protocol seen by a NOTIFY_SOCKET listener.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdatp_integration_tests::*;
use nix::sys::signal::Signal;

const WAIT: Duration = Duration::from_secs(15);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

#[test]
fn validate_reports_every_problem_in_every_layer_at_once() {
    skip_unless_root!();
    let t = tempfile::tempdir().unwrap();
    let etc = t.path().join("etc");
    let state = t.path().join("state");
    write(&etc.join("mdatp.yaml"), "folding: [broken\n");
    write(
        &etc.join("conf.d/10-unknown.yaml"),
        "exclude: {pathz: [/tmp]}\n",
    );
    write(
        &etc.join("managed/50-type.yaml"),
        "folding: {window_ms: later}\n",
    );
    write(&state.join("local.yaml"), "events: {file_open: perhaps}\n");
    let out = Command::new(mdatpd_bin())
        .args([
            "validate",
            "--config-dir",
            s(&etc),
            "--state-dir",
            s(&state),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4 configuration problem(s)"), "{err}");
    assert!(
        err.contains(&format!(
            "{}: not valid YAML",
            etc.join("mdatp.yaml").display()
        )),
        "{err}"
    );
    assert!(
        err.contains("10-unknown.yaml: exclude.pathz: unknown field `pathz`"),
        "{err}"
    );
    assert!(
        err.contains("50-type.yaml: folding.window_ms: invalid type"),
        "{err}"
    );
    assert!(
        err.contains("local.yaml: events.file_open: invalid type"),
        "{err}"
    );

    // The daemon refuses to start on it, with the same messages.
    let out = Command::new(mdatpd_bin())
        .args([
            "--foreground",
            "--config-dir",
            s(&etc),
            "--state-dir",
            s(&state),
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("10-unknown.yaml"));

    // Fixed: valid, and explain names where each value comes from.
    for f in [
        "mdatp.yaml",
        "conf.d/10-unknown.yaml",
        "managed/50-type.yaml",
    ] {
        fs::remove_file(etc.join(f)).unwrap();
    }
    write(&state.join("local.yaml"), "folding: {window_ms: 750}\n");
    write(
        &etc.join("managed/50-mdm.yaml"),
        "ebpf_supplementary_event_provider: disabled\n",
    );
    let out = Command::new(mdatpd_bin())
        .args(["explain", "--config-dir", s(&etc), "--state-dir", s(&state)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "folding.window_ms = 750  ({})",
            state.join("local.yaml").display()
        )),
        "{text}"
    );
    assert!(
        text.contains("ebpf_supplementary_event_provider = \"disabled\""),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "[locked by {}]",
            etc.join("managed/50-mdm.yaml").display()
        )),
        "{text}"
    );
    assert!(text.contains("folding.enabled = true  (default)"), "{text}");
}

#[test]
fn a_bad_reload_changes_nothing_and_events_keep_flowing() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let t = tempfile::tempdir().unwrap();
    let etc = t.path().join("etc");
    write(&etc.join("mdatp.yaml"), "folding: {window_ms: 2000}\n");
    let d = Daemon::start(&[
        "--config-dir",
        s(&etc),
        "--state-dir",
        s(&t.path().join("state")),
        "--audit-rules-dir",
        s(&t.path().join("rules.d")),
    ]);
    write(
        &etc.join("conf.d/90-broken.yaml"),
        "ebpf_supplementary_event_provider: [\n",
    );
    d.signal(Signal::SIGHUP);
    d.wait_stderr("reload refused", WAIT);
    assert!(
        d.stderr().contains("90-broken.yaml: not valid YAML"),
        "{}",
        d.stderr()
    );
    let out = Command::new("/bin/echo")
        .arg("after-bad-reload")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let v = d
        .wait_event(WAIT, |v| {
            is_exec(v) && at(v, "/unmapped/process/argv/1") == "after-bad-reload"
        })
        .expect("events keep flowing after a refused reload");
    assert_eq!(at(&v, "/unmapped/provider"), "ebpf");
    // A managed profile that switches the provider takes effect on reload.
    fs::remove_file(etc.join("conf.d/90-broken.yaml")).unwrap();
    write(
        &etc.join("managed/10-mdm.yaml"),
        "ebpf_supplementary_event_provider: disabled\n",
    );
    d.signal(Signal::SIGHUP);
    d.wait_stderr("provider switched: ebpf -> auditd", WAIT);
    d.stop();
    assert!(our_audit_rules().is_empty());
}

/// Collects NOTIFY_SOCKET datagrams, as systemd would receive them.
struct NotifyListener {
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifyListener {
    fn bind(path: &Path) -> Self {
        let sock = UnixDatagram::bind(path).expect("bind notify socket");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                m.lock().unwrap().push((Instant::now(), text));
            }
        });
        Self { messages }
    }

    /// Waits for a datagram containing `line` after index `from`; returns
    /// its index.
    fn wait(&self, line: &str, from: usize) -> usize {
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            let msgs = self.messages.lock().unwrap();
            if let Some(i) = msgs
                .iter()
                .skip(from)
                .position(|(_, m)| m.lines().any(|l| l == line))
            {
                return from + i;
            }
            drop(msgs);
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no {line} in {:?}", self.messages.lock().unwrap());
    }
}

#[test]
fn the_notify_protocol_follows_the_service_lifecycle() {
    skip_unless_root!();
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let sock = t.path().join("notify.sock");
    let listener = NotifyListener::bind(&sock);
    let d = Daemon::start_with_env(
        &[],
        &[("NOTIFY_SOCKET", s(&sock)), ("WATCHDOG_USEC", "1000000")],
    );
    let ready = listener.wait("READY=1", 0);
    // Anything started after READY=1 is already seen.
    let child = Command::new("/bin/echo")
        .arg("after-ready")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = u64::from(child.id());
    child.wait_with_output().unwrap();
    d.wait_event(WAIT, |v| is_exec(v) && at(v, "/process/pid") == pid)
        .expect("exec event of a process started right after READY=1");
    let msgs = listener.messages.lock().unwrap().clone();
    assert!(msgs[ready].1.contains("STATUS=provider=ebpf"), "{msgs:?}");
    // Watchdog pings at half of WATCHDOG_USEC.
    let w1 = listener.wait("WATCHDOG=1", ready);
    let w2 = listener.wait("WATCHDOG=1", w1 + 1);
    let gap = {
        let m = listener.messages.lock().unwrap();
        m[w2].0 - m[w1].0
    };
    // Pings at half of WATCHDOG_USEC (500 ms), always within it.
    assert!(
        gap < Duration::from_secs(1),
        "pings every ~500 ms, saw {gap:?}"
    );
    assert!(gap > Duration::from_millis(200), "not a busy loop: {gap:?}");
    d.signal(Signal::SIGHUP);
    let r = listener.wait("RELOADING=1", w2);
    assert!(
        listener.messages.lock().unwrap()[r]
            .1
            .contains("MONOTONIC_USEC=")
    );
    listener.wait("READY=1", r);
    let before_stop = listener.messages.lock().unwrap().len();
    d.stop();
    listener.wait("STOPPING=1", before_stop);
}
