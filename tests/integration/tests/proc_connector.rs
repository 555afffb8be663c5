//! The third tier: with eBPF switched off and the audit rules unable to
//! load (auditctl missing, as on a host without the audit tools), process
//! exec/fork/exit come from the netlink process connector, marked with
//! their source, and health says so per kind.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::*;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn process_events_come_from_the_process_connector_when_both_higher_tiers_are_off() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let dir = tempfile::tempdir().unwrap();
    let d = start_on_bus(
        &bus,
        dir.path(),
        &[
            "--ebpf-supplementary-event-provider",
            "disabled",
            "--test-auditctl",
            "/nonexistent/auditctl",
        ],
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

    let health = health_json(&bus);
    assert_eq!(
        health["supplementary_events_subsystem"], "proc_connector",
        "{health}"
    );
    let src = health["event_sources"]["process_exec"].as_str().unwrap();
    assert!(
        src.starts_with("proc_connector (eBPF: ") && src.contains("audit: "),
        "{src}"
    );
    // Kinds only the two higher tiers have: unavailable, with why the
    // audit rules could not be loaded (the missing tool, named).
    let file_open = health["event_sources"]["file_open"].as_str().unwrap();
    assert!(
        file_open.starts_with("unavailable")
            && file_open.contains("could not be loaded")
            && file_open.contains("/nonexistent/auditctl"),
        "{file_open}"
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

#[test]
fn the_process_connector_serves_only_what_no_higher_tier_does() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    // eBPF serves every process kind: no connector. Audit has no record
    // of forks: the connector reports forks only, audit exec and exit.
    for (mode, exec_src, fork_by_connector) in
        [("enabled", "ebpf", false), ("disabled", "auditd", true)]
    {
        let dir = tempfile::tempdir().unwrap();
        let d = start_on_bus(
            &bus,
            dir.path(),
            &["--ebpf-supplementary-event-provider", mode],
        );
        let health = health_json(&bus);
        assert_eq!(
            health["event_sources"]["process_exec"], exec_src,
            "{health}"
        );
        assert_eq!(
            health["event_sources"]["process_exit"], exec_src,
            "{health}"
        );
        let fork_src = health["event_sources"]["process_fork"].as_str().unwrap();
        assert_eq!(
            fork_src.starts_with("proc_connector"),
            fork_by_connector,
            "{fork_src}"
        );
        let child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait_with_output().unwrap();
        if fork_by_connector {
            d.wait_event(WAIT, |v| {
                at(v, "/unmapped/provider") == "proc_connector"
                    && is_fork(v)
                    && at(v, "/process/pid") == pid
            })
            .unwrap_or_else(|| panic!("{mode}: no fork of {pid}; stderr:\n{}", d.stderr()));
        }
        std::thread::sleep(Duration::from_millis(500));
        let stopped = d.stop();
        let from_connector: Vec<&serde_json::Value> = stopped
            .events
            .iter()
            .filter(|v| at(v, "/unmapped/provider") == "proc_connector")
            .collect();
        assert!(
            from_connector.iter().all(|v| is_fork(v)),
            "{mode}: only forks from the connector: {from_connector:#?}"
        );
        assert_eq!(!from_connector.is_empty(), fork_by_connector, "{mode}");
    }
}
