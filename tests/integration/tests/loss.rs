//! Loss is counted, never silent: a stalled consumer with a tiny ring
//! buffer loses exec events, and every one of them is accounted for by the
//! kernel counters and an in-band loss record; the default buffer rides
//! out the same storm without loss.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::*;
use nix::sys::signal::Signal;

const STORM_EXECS: u64 = 1000;

/// Runs `STORM_EXECS` fork+exec of /bin/true from one shell, while the
/// daemon is stopped (SIGSTOP) so that only the ring buffer holds events.
/// Returns (storm shell pid, stderr after shutdown, events).
fn storm(ring_size: Option<&str>) -> (u64, String, Vec<serde_json::Value>) {
    let mut args = vec![];
    if let Some(size) = ring_size {
        args.extend(["--ring-buffer-size", size]);
    }
    let d = Daemon::start(&args);
    d.signal(Signal::SIGSTOP);
    let script = format!("i=0; while [ $i -lt {STORM_EXECS} ]; do /bin/true; i=$((i+1)); done");
    let child = Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .expect("storm");
    let pid = u64::from(child.id());
    assert!(
        child
            .wait_with_output()
            .expect("wait storm")
            .status
            .success()
    );
    d.signal(Signal::SIGCONT);
    // SIGUSR1 prints the totals while running; the test then stops the
    // daemon, which drains the ring and prints the final totals.
    d.signal(Signal::SIGUSR1);
    d.wait_stderr("loss totals:", Duration::from_secs(10));
    let stopped = d.stop();
    assert!(stopped.status.success(), "exit status {}", stopped.status);
    (pid, stopped.stderr, stopped.events)
}

fn storm_execs_received(events: &[serde_json::Value], storm_pid: u64) -> u64 {
    let true_path = std::fs::canonicalize("/bin/true").expect("canonicalize /bin/true");
    events
        .iter()
        .filter(|v| {
            is_exec(v)
                && at(v, "/process/parent_process/pid") == storm_pid
                && at(v, "/process/file/path") == true_path.to_str().expect("utf8")
        })
        .count() as u64
}

fn loss_records(events: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    events
        .iter()
        .filter(|v| v["class_uid"] == 0 && v["activity_id"] == 99)
        .collect()
}

#[test]
fn a_tiny_ring_buffer_loses_only_what_it_counts() {
    skip_unless_root!();
    let _g = serial();
    let (pid, stderr, events) = storm(Some("4096"));
    let received = storm_execs_received(&events, pid);
    let drops = kernel_drops(&stderr);
    let exec_drops = drops.get("process_exec").copied().unwrap_or(0);
    assert!(exec_drops > 0, "a 4 KiB ring must overflow: {drops:?}");
    assert!(
        received + exec_drops >= STORM_EXECS,
        "received {received} + counted loss {exec_drops} < {STORM_EXECS} generated"
    );
    assert!(received < STORM_EXECS, "some execs were lost");
    // The gap shows in band, with the kernel's per-type counts.
    let records = loss_records(&events);
    assert!(!records.is_empty(), "no in-band loss record");
    let missing: u64 = records
        .iter()
        .map(|r| at(r, "/unmapped/missing").as_u64().expect("missing"))
        .sum();
    assert!(missing > 0);
    let in_band_exec: u64 = records
        .iter()
        .filter_map(|r| at(r, "/unmapped/kernel_drops_by_type/process_exec").as_u64())
        .sum();
    assert!(
        in_band_exec > 0,
        "loss records name the exec drops: {records:?}"
    );
    assert!(in_band_exec <= exec_drops);
}

#[test]
fn the_default_ring_buffer_rides_out_the_same_storm() {
    skip_unless_root!();
    let _g = serial();
    let (pid, stderr, events) = storm(None);
    let drops = kernel_drops(&stderr);
    assert_eq!(storm_execs_received(&events, pid), STORM_EXECS);
    assert!(
        drops.values().all(|n| *n == 0),
        "no drops expected: {drops:?}"
    );
    assert!(loss_records(&events).is_empty(), "no loss records expected");
}

/// Under a flood the ring never empties: the daemon must still take
/// SIGTERM promptly (bounded drain passes, no burst of catch-up ticks).
#[test]
fn sigterm_is_taken_promptly_during_a_flood() {
    skip_unless_root!();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = filter_config(dir.path(), "folding: {enabled: false}\n");
    let target = dir.path().join("flood.txt");
    std::fs::write(&target, b"x").unwrap();
    let d = Daemon::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--output",
        dir.path().join("ev.jsonl").to_str().unwrap(),
        "--ring-buffer-size",
        "1048576",
    ]);
    let mut storms: Vec<_> = (0..2)
        .map(|_| {
            Command::new(helper_bin())
                .args(["open-storm", target.to_str().unwrap(), "100000000"])
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    // Taken promptly: "stopping" follows SIGTERM at once although the ring
    // is full. (Detaching afterwards waits for the kernel's RCU grace
    // periods, slow on a loaded machine, so the storms end first.)
    let t0 = std::time::Instant::now();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_stderr("stopping", Duration::from_secs(10));
    let took = t0.elapsed();
    for s in &mut storms {
        let _ = s.kill();
        let _ = s.wait();
    }
    let stopped = d.stop();
    assert!(stopped.status.success());
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM taken after {took:?} under a flood"
    );
    assert!(
        stopped.stderr.contains("hooks detached"),
        "{}",
        stopped.stderr
    );
}
