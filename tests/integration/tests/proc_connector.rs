//! The third tier: with eBPF switched off and the audit rules unable to
//! load (auditctl missing, as on a host without the audit tools), process
//! exec/fork/exit come from the netlink process connector, marked with
//! their source, and health says so per kind.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::*;

const WAIT: Duration = Duration::from_secs(15);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn process_events_come_from_the_process_connector_when_both_higher_tiers_are_off() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_with_env(
        &[
            "--ebpf-supplementary-event-provider",
            "disabled",
            "--test-auditctl",
            "/nonexistent/auditctl",
            "--config-dir",
            s(&dir.path().join("etc")),
            "--state-dir",
            s(&dir.path().join("state")),
            "--audit-rules-dir",
            s(&dir.path().join("rules.d")),
            "--log-dir",
            s(&dir.path().join("log")),
        ],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    let marker = format!("mdatp-cn-{}", std::process::id());
    let child = Command::new("/bin/sh")
        .args([
            "-c",
            &format!("/usr/bin/env true {marker} 'two words'; exit 3"),
        ])
        .spawn()
        .unwrap();
    let sh_pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));

    let from_connector = |v: &serde_json::Value| at(v, "/unmapped/provider") == "proc_connector";
    let fork = d
        .wait_event(WAIT, |v| {
            from_connector(v) && is_fork(v) && at(v, "/process/pid") == sh_pid
        })
        .unwrap_or_else(|| panic!("no fork of {sh_pid}; stderr:\n{}", d.stderr()));
    assert_eq!(
        at(&fork, "/process/parent_process/pid"),
        std::process::id(),
        "{fork}"
    );
    // The shell's exec of /bin/sh is its own exec event; env's carries the
    // marker, its argv read from /proc (or nothing, if it was already gone:
    // never guessed).
    let exec = d
        .wait_event(WAIT, |v| {
            from_connector(v) && is_exec(v) && at(v, "/process/pid") == sh_pid
        })
        .unwrap_or_else(|| panic!("no exec of {sh_pid}; stderr:\n{}", d.stderr()));
    assert_eq!(at(&exec, "/unmapped/provider"), "proc_connector");
    let exit = d
        .wait_event(WAIT, |v| {
            from_connector(v) && is_exit(v) && at(v, "/process/pid") == sh_pid
        })
        .unwrap_or_else(|| panic!("no exit of {sh_pid}; stderr:\n{}", d.stderr()));
    assert_eq!(at(&exit, "/exit_code"), 3, "{exit}");
    // A long-lived exec is read whole from /proc.
    let mut sleeper = Command::new("/bin/sleep").arg("2.5").spawn().unwrap();
    let exec = d
        .wait_event(WAIT, |v| {
            from_connector(v) && is_exec(v) && at(v, "/process/pid") == sleeper.id()
        })
        .unwrap_or_else(|| panic!("no exec of sleep; stderr:\n{}", d.stderr()));
    assert_eq!(at(&exec, "/process/file/path"), "/usr/bin/sleep", "{exec}");
    assert_eq!(
        at(&exec, "/unmapped/process/argv"),
        &serde_json::json!(["/bin/sleep", "2.5"])
    );
    assert_eq!(at(&exec, "/process/user/uid"), "0");
    sleeper.wait().unwrap();

    let health = Command::new(cli_bin())
        .args(["health", "--output", "json"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    let health: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(
        health["supplementary_events_subsystem"], "proc_connector",
        "{health}"
    );
    let src = health["event_sources"]["process_exec"].as_str().unwrap();
    assert!(
        src.starts_with("proc_connector (eBPF: ") && src.contains("audit: "),
        "{src}"
    );
    assert!(
        health["event_sources"]["file_open"]
            .as_str()
            .unwrap()
            .starts_with("unavailable"),
        "{health}"
    );
    assert!(
        health["health_issues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().contains("/nonexistent/auditctl")),
        "the missing tool is named: {health}"
    );
    let stopped = d.stop();
    assert!(
        stopped.stderr.contains("netlink process connector closed"),
        "{}",
        stopped.stderr
    );
    assert!(our_audit_rules().is_empty());
}
