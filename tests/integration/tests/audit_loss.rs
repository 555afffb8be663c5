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

/// A package-install-like storm: `tar` unpacking a tree of thousands of
/// files over and over, two at a time (both cores), until dropped.
struct Storm {
    children: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Storm {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("tree.tar");
        assert!(
            Command::new("tar")
                .args(["-cf"])
                .arg(&archive)
                .args(["-C", "/usr/share", "doc", "man"])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .code()
                .is_some_and(|c| c <= 1),
            "tar -c"
        );
        let children = (0..2)
            .map(|i| {
                let target = dir.path().join(format!("unpack{i}"));
                let script = format!(
                    "while :; do mkdir -p {t} && tar -C {t} -xf {a} && rm -rf {t}; done",
                    t = target.display(),
                    a = archive.display()
                );
                Command::new("sh")
                    .args(["-c", &script])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        Storm {
            children,
            _dir: dir,
        }
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        for c in &mut self.children {
            // The shell's process group holds its tar and rm.
            let _ = Command::new("pkill")
                .args(["-P", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An event the workload must produce: its name and a matcher.
type Expected = (String, Box<dyn Fn(&Value) -> bool>);

/// One round of the workload; the events it must produce.
fn round(dir: &std::path::Path, i: usize, port: u16) -> Vec<Expected> {
    let tag = format!("busy-round-{i}");
    Command::new("/bin/echo")
        .arg(&tag)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let a = dir.join(format!("created-{i}"));
    let b = dir.join(format!("renamed-{i}"));
    std::fs::write(&a, b"x").unwrap();
    std::fs::rename(&a, &b).unwrap();
    std::fs::remove_file(&b).unwrap();
    let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let me = u64::from(std::process::id());
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let file = move |activity: &'static str, p: String| -> Box<dyn Fn(&Value) -> bool> {
        Box::new(move |v| {
            is_file_event(v)
                && at(v, "/activity_name") == activity
                && at(v, "/file/path") == p.as_str()
        })
    };
    vec![
        (
            format!("exec {tag}"),
            Box::new(move |v: &Value| {
                is_exec(v) && at(v, "/unmapped/process/argv/1") == tag.as_str()
            }),
        ),
        (format!("create {i}"), file("Create", path(&a))),
        (format!("rename {i}"), file("Rename", path(&a))),
        (format!("delete {i}"), file("Delete", path(&b))),
        (
            format!("connect {i}"),
            Box::new(move |v: &Value| {
                is_net_event(v)
                    && at(v, "/actor/process/pid") == me
                    && at(v, "/connection_info/direction") == "Outbound"
                    && at(v, "/dst_endpoint/port") == u64::from(port)
            }),
        ),
    ]
}

/// The workload while a storm unpacks thousands of files beside it: every
/// event of it is delivered, or the sensor counted at least as many lost
/// in band. None may go missing silently.
#[test]
fn on_a_busy_host_every_event_is_delivered_or_counted_lost() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let work = std::fs::canonicalize(dir.path()).unwrap();
    let rules = dir.path().join("rules.d");
    let d = Daemon::start_on_audit(&rules);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let storm = Storm::start();
    std::thread::sleep(Duration::from_secs(2));
    let mut expected = Vec::new();
    for i in 0..10 {
        expected.extend(round(&work, i, port));
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    drop(storm);
    // The sensor works through what is queued (or loses it, counted):
    // an exec after the storm, repeated until one is reported, shows it
    // has caught up.
    let caught_up = (0..90).any(|i| {
        let tag = format!("busy-sentinel-{i}");
        Command::new("/bin/echo")
            .arg(&tag)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        d.wait_event(Duration::from_secs(1), |v| {
            is_exec(v)
                && at(v, "/unmapped/process/argv/1")
                    .as_str()
                    .is_some_and(|a| a.starts_with("busy-sentinel-"))
        })
        .is_some()
    });
    assert!(caught_up, "the sensor never caught up after the storm");
    // Gaps are given up after 2 s open.
    std::thread::sleep(Duration::from_secs(3));
    let stopped = d.stop();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|(_, m)| !stopped.events.iter().any(m))
        .map(|(name, _)| name)
        .collect();
    let counted: u64 = stopped
        .events
        .iter()
        .filter(|v| is_loss(v))
        .map(|v| at(v, "/unmapped/missing").as_u64().unwrap_or(0))
        .sum();
    let storm_events = stopped.events.len();
    for v in stopped.events.iter().filter(|v| is_loss(v)) {
        eprintln!("loss record: {}", v["unmapped"]);
    }
    eprintln!(
        "{}",
        stopped
            .stderr
            .lines()
            .filter(|l| l.contains("loss totals"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "busy host: {storm_events} events written, {} of {} workload events missing, {counted} counted lost",
        missing.len(),
        expected.len()
    );
    assert!(
        storm_events > 1000,
        "the storm produced too little to matter"
    );
    assert!(
        missing.len() as u64 <= counted,
        "missing without being counted: {missing:?} ({counted} counted lost); stderr:\n{}",
        stopped.stderr
    );
}
