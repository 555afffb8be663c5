//! What the audit side loses is reported in band and in health, never
//! silent: the kernel dropping records (rate limit, backlog), and a busy
//! host (a package-install-like storm beside the workload).

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdatp_integration_tests::*;
use serde_json::Value;

fn is_loss(v: &Value) -> bool {
    v["class_uid"] == 0 && at(v, "/unmapped/record") == "loss"
}

/// The kernel drops records under a rate limit: the sensor says so with
/// an in-band loss record and an unhealthy health naming the loss.
#[test]
fn records_the_kernel_drops_are_a_loss_record_and_unhealthy() {
    skip_unless_root!();
    let _g = serial();
    let audit = AuditState::capture();
    let bus = PrivateBus::start(BusPolicy::Permissive);
    let dir = tempfile::tempdir().unwrap();
    let d = start_on_bus(
        &bus,
        dir.path(),
        &["--ebpf-supplementary-event-provider", "disabled"],
    );
    assert_eq!(health_json(&bus)["healthy"], true, "healthy before");
    let before = audit.lost();
    audit.set_rate_limit(2);
    for _ in 0..100 {
        Command::new("/bin/true").status().unwrap();
    }
    audit.set_rate_limit(0);
    let dropped = audit.lost() - before;
    assert!(dropped > 0, "the rate limit dropped nothing");
    // The kernel's counter is read every 10 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let h = loop {
        let h = health_json(&bus);
        if h["healthy"] == false || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(h["healthy"], false, "{h:#}");
    // Per kind where the sensor knows it (an exec whose records were cut
    // short), `unknown` for what the kernel's counter says.
    let recent = h["loss_last_minute"].as_object().unwrap();
    assert!(
        !recent.is_empty() && recent.values().all(|v| v.as_u64() > Some(0)),
        "{h:#}"
    );
    assert!(
        h["health_issues"].as_array().unwrap().iter().any(|i| i
            .as_str()
            .unwrap()
            .contains("events lost in the last minute")),
        "{h:#}"
    );
    let l = d
        .wait_event(Duration::from_secs(15), |v| {
            is_loss(v) && at(v, "/unmapped/detected_by") == "audit_kernel_lost"
        })
        .unwrap_or_else(|| panic!("no loss record; stderr:\n{}", d.stderr()));
    let missing = at(&l, "/unmapped/missing").as_u64().unwrap();
    assert!(
        missing >= 1 && missing <= dropped,
        "{missing} of {dropped}: {l}"
    );
    assert_eq!(at(&l, "/unmapped/provider"), "auditd");
    d.stop();
}
