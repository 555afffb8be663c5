//! This host's row of the kernel matrix: the fixed workload
//! (tests/integration/workload/workload.sh) under the suite's daemon with
//! the default provider, every expected event found and its fields kept
//! by tests/integration/workload/matrix.py in target/kernel-matrix/host.json.
//! The guests' rows come from the VM test (phase "workload"); `scripts/dev.sh
//! test` compares all rows field by field and checks docs/KERNELS.md.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_workload_yields_every_expected_event_on_this_kernel() {
    skip_unless_root!();
    let _g = serial();
    let audit = AuditState::capture();
    // PAM's records reach the kernel only while auditing is on.
    audit.set_enabled(1);
    let user = TestUser::create("mdatp-wl");
    user.set_password("Wl-passw0rd");
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let dir = tempfile::tempdir().unwrap();
    let d = start_on_bus(&bus, dir.path(), &[]);
    let net = helper_bin().with_file_name("mdatp-net-workload");
    let probe_dir = dir.path().join("ia32");
    let st = Command::new("sh")
        .arg(repo().join("tests/integration/ia32/build.sh"))
        .arg(&probe_dir)
        .status()
        .unwrap();
    assert!(st.success(), "ia32/build.sh: {st}");
    let probe = probe_dir.join("probe32");
    // Run by bash, as the guests do (the shell's name is in the events).
    let st = Command::new("bash")
        .arg(repo().join("tests/integration/workload/workload.sh"))
        .args(["/tmp/mdatp-wl", s(&net), s(&probe)])
        .status()
        .unwrap();
    assert!(st.success(), "workload.sh: {st}");
    // The login is the workload's last step.
    d.wait_event(Duration::from_secs(20), |v| {
        v["class_uid"] == 3002 && at(v, "/user/name") == "mdatp-wl"
    })
    .unwrap_or_else(|| panic!("no login event; stderr:\n{}", d.stderr()));
    let health = health_json(&bus);

    let out = repo().join("target/kernel-matrix");
    std::fs::create_dir_all(&out).unwrap();
    let events: String = d
        .events()
        .iter()
        .map(|e| format!("{e}\n"))
        .collect::<String>();
    std::fs::write(out.join("host-events.jsonl"), events).unwrap();
    std::fs::write(out.join("host-health.json"), health.to_string()).unwrap();
    let release = nix::sys::utsname::uname().unwrap();
    let check = Command::new("python3")
        .arg(repo().join("tests/integration/workload/matrix.py"))
        .args(["check", "--name", "host", "--kernel"])
        .arg(release.release())
        .arg("--events")
        .arg(out.join("host-events.jsonl"))
        .arg("--health")
        .arg(out.join("host-health.json"))
        .arg("--out")
        .arg(out.join("host.json"))
        .output()
        .unwrap();
    d.stop();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::remove_dir_all("/tmp/mdatp-wl");
}
