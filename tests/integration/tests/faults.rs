//! Faults around the sensor that must not stop its events: a hanging
//! auditctl (a wedged audit netlink, a stuck auditd).

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdatp_integration_tests::*;
use nix::sys::signal::Signal;

/// Runs `/bin/echo tag` and returns how long its exec event took.
fn exec_latency(d: &Daemon, tag: &str) -> Option<Duration> {
    let t = Instant::now();
    Command::new("/bin/echo")
        .arg(tag)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    d.wait_event(Duration::from_secs(10), |v| {
        is_exec(v) && at(v, "/unmapped/process/argv/1") == tag
    })
    .map(|_| t.elapsed())
}

#[test]
fn a_hanging_auditctl_never_holds_the_events() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("hang");
    let wrapper = dir.path().join("auditctl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ -e {} ] && exec sleep 600\nexec auditctl \"$@\"\n",
            mark.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("mdatp.yaml");
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: enabled\n").unwrap();
    let d = Daemon::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--audit-rules-dir",
        dir.path().join("rules.d").to_str().unwrap(),
        "--test-auditctl",
        wrapper.to_str().unwrap(),
    ]);
    std::fs::write(&mark, b"").unwrap();
    // 12 s: the periodic audit status read (every 10 s) hangs meanwhile.
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(12);
    let mut i = 0;
    while Instant::now() < until {
        let l = exec_latency(&d, &format!("hung-auditctl-{i}"))
            .unwrap_or_else(|| panic!("exec {i} not reported; stderr:\n{}", d.stderr()));
        worst = worst.max(l);
        i += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        worst < Duration::from_secs(1),
        "an exec took {worst:?} to arrive"
    );
    // A switch to the audit subsystem needs auditctl: it fails within its
    // timeout, says why, and the sensor stays on eBPF.
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: disabled\n").unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_stderr("did not finish within 5 s", Duration::from_secs(20));
    d.wait_stderr("staying on eBPF", Duration::from_secs(20));
    let l = exec_latency(&d, "after-the-failed-switch").expect("events after the failed switch");
    assert!(l < Duration::from_secs(2), "{l:?}");
    std::fs::remove_file(&mark).unwrap();
    let stopped = d.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert!(
        our_audit_rules().is_empty(),
        "no rule of ours is left: {:?}",
        our_audit_rules()
    );
}
