//! io_uring: file and network operations submitted to a ring make no
//! system call of their own, so syscall-based hooks never see them. Every
//! ring set up and every such operation must be an event, with the names
//! and the address the caller passed, marked `call_path: io_uring`.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn operation(v: &Value) -> &str {
    at(v, "/unmapped/io_uring/operation").as_str().unwrap_or("")
}

#[test]
fn io_uring_setups_and_submitted_operations_are_events() {
    skip_unless_root!();
    let _g = serial();
    let bus = PrivateBus::start(BusPolicy::Permissive);
    let sensor = tempfile::tempdir().unwrap();
    let d = start_on_bus(&bus, sensor.path(), &[]);
    let work = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(work.path()).unwrap();
    let dir = dir.to_str().unwrap();
    let bin = helper_bin().with_file_name("mdatp-io-uring-workload");
    let out = Command::new(&bin)
        .args([dir, "47998"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = |v: &Value| {
        at(v, "/actor/process/name") == "mdatp-io-uring-"
            || at(v, "/actor/process/file/name") == "mdatp-io-uring-workload"
    };
    let find = |op: &str| {
        d.wait_event(WAIT, |v| mine(v) && operation(v) == op)
            .unwrap_or_else(|| panic!("no io_uring {op} event; stderr:\n{}", d.stderr()))
    };
    let setup = find("SETUP");
    assert_eq!(at(&setup, "/class_uid"), 1007, "{setup}");
    assert!(at(&setup, "/unmapped/io_uring/ring_fd").as_i64().unwrap() >= 0);
    assert_eq!(at(&setup, "/unmapped/io_uring/sq_entries"), 8, "{setup}");

    let open = find("OPENAT");
    assert_eq!(at(&open, "/class_uid"), 1001);
    assert_eq!(
        at(&open, "/file/path"),
        format!("{dir}/made-by-uring").as_str()
    );
    assert_eq!(at(&open, "/unmapped/call_path"), "io_uring");
    assert_eq!(
        at(&open, "/status_id"),
        0,
        "submitted: the result is the ring's"
    );

    let rename = find("RENAMEAT");
    assert_eq!(at(&rename, "/activity_name"), "Rename");
    assert_eq!(
        at(&rename, "/file/path"),
        format!("{dir}/made-by-uring").as_str()
    );
    assert_eq!(
        at(&rename, "/file_result/path"),
        format!("{dir}/renamed-by-uring").as_str()
    );
    let unlink = find("UNLINKAT");
    assert_eq!(at(&unlink, "/activity_name"), "Delete");
    assert_eq!(
        at(&unlink, "/file/path"),
        format!("{dir}/renamed-by-uring").as_str()
    );

    // Relative to the cwd: joined with the submitter's cwd.
    let mkdir = find("MKDIRAT");
    assert_eq!(
        at(&mkdir, "/file/path"),
        format!("{dir}/dir-by-uring").as_str(),
        "{mkdir}"
    );

    let connect = find("CONNECT");
    assert_eq!(at(&connect, "/class_uid"), 4001);
    assert_eq!(at(&connect, "/dst_endpoint/ip"), "127.0.0.1");
    assert_eq!(at(&connect, "/dst_endpoint/port"), 47998);

    let health = health_json(&bus);
    assert_eq!(health["event_sources"]["io_uring"], "ebpf", "{health}");
    assert_eq!(
        health["not_covered"],
        serde_json::json!([]),
        "this kernel leaves no way around: {health}"
    );
    d.stop();
}
