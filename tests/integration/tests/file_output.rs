//! The event file as shippers see it, with the real daemon: rotation by
//! size, a rename under the sensor followed by SIGHUP, a full disk and
//! space returning, a kill -9 in the middle of a burst. Every line of
//! every file must be whole JSON, and every marked exec must be in the
//! files exactly once or counted as lost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::{
    AuditState, BusPolicy, Daemon, PrivateBus, health_json, marker_counts, our_audit_rules,
    our_bpf_programs_settled, run_markers, say_skipped, serial, start_on_bus, wait_until,
};
use nix::sys::signal::Signal;
use serde_json::Value;

macro_rules! skip_unless_root {
    () => {
        if !mdatp_integration_tests::is_root() {
            say_skipped();
            return;
        }
    };
}

/// Every line of the event file and its rotated and renamed siblings.
fn all_lines(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("events.jsonl"))
        })
        .collect();
    files.sort();
    for f in files {
        // Rotated away between the listing and the read: the next scan
        // finds it under its new name. A compression's .zst.tmp is not
        // a file of events yet.
        if f.extension().is_some_and(|e| e == "tmp") {
            continue;
        }
        let text = if f.extension().is_some_and(|e| e == "zst") {
            let Ok(z) = std::fs::read(&f) else { continue };
            String::from_utf8(zstd::decode_all(&z[..]).expect("a whole zstd file")).expect("UTF-8")
        } else {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            text
        };
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        for l in text.lines() {
            out.push(serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{}: a line that is not JSON ({e}): {l:.200}", f.display())
            }));
        }
    }
    out
}

fn config(dir: &Path, yaml: &str) {
    std::fs::create_dir_all(dir.join("etc/conf.d")).expect("mkdir");
    std::fs::write(dir.join("etc/conf.d/10-output.yaml"), yaml).expect("write config");
}

fn daemon_with_output(dir: &Path, out: &Path, extra: &[&str]) -> Daemon {
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    let (etc, state, out) = (
        s(dir.join("etc")),
        s(dir.join("state")),
        s(out.to_path_buf()),
    );
    let mut args = vec![
        "--config-dir",
        &etc,
        "--state-dir",
        &state,
        "--output",
        &out,
    ];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

/// A sensor whose event file (in the returned directory) rotates at
/// 1 MiB and keeps 100 files; `file_keys`: more `output.file` lines.
fn rotating_sensor(file_keys: &str) -> (tempfile::TempDir, PathBuf, Daemon) {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("log");
    config(
        d.path(),
        &format!("output:\n  file:\n    max_size: 1MiB\n    keep: 100\n{file_keys}"),
    );
    let daemon = daemon_with_output(d.path(), &logs.join("events.jsonl"), &[]);
    (d, logs, daemon)
}

#[test]
fn rotation_and_a_rename_under_the_sensor_lose_and_repeat_nothing() {
    skip_unless_root!();
    let _g = serial();
    let (_d, logs, daemon) = rotating_sensor("");
    let prefix = format!("mdatp-rot-{}-", std::process::id());
    run_markers(&prefix, 0..300);
    // logrotate without copytruncate: rename, then SIGHUP.
    std::fs::rename(logs.join("events.jsonl"), logs.join("events.jsonl-renamed")).unwrap();
    daemon.signal(Signal::SIGHUP);
    run_markers(&prefix, 300..600);
    let complete = wait_until(Duration::from_secs(30), || {
        marker_counts(&all_lines(&logs), &prefix).len() == 600
    });
    let stopped = daemon.stop();
    let counts = marker_counts(&all_lines(&logs), &prefix);
    assert!(complete, "{} of 600 marked execs written", counts.len());
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "written more than once: {repeated:?}");
    assert!(logs.join("events.jsonl.1").exists(), "no rotation at 1 MiB");
    assert!(
        logs.join("events.jsonl").exists(),
        "no new file after the rename"
    );
    // The later markers went to the new files, not into the renamed one.
    let renamed = std::fs::read_to_string(logs.join("events.jsonl-renamed")).unwrap();
    assert!(
        !renamed.contains(&format!("{prefix}599")),
        "written into the renamed file"
    );
    assert!(
        !stopped.stderr.contains("cannot write"),
        "{}",
        stopped.stderr
    );
}

#[test]
fn compressed_rotation_keeps_every_event_once_in_zst_files() {
    skip_unless_root!();
    let _g = serial();
    let (_d, logs, daemon) = rotating_sensor("    compress: zstd\n");
    let prefix = format!("mdatp-zst-{}-", std::process::id());
    run_markers(&prefix, 0..600);
    let complete = wait_until(Duration::from_secs(30), || {
        marker_counts(&all_lines(&logs), &prefix).len() == 600
    });
    let stopped = daemon.stop();
    let counts = marker_counts(&all_lines(&logs), &prefix);
    assert!(complete, "{} of 600 marked execs written", counts.len());
    assert!(counts.values().all(|n| *n == 1), "written more than once");
    let names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "events.jsonl.1.zst"), "{names:?}");
    // Every rotated file was compressed before the stop returned.
    assert!(
        names
            .iter()
            .all(|n| n == "events.jsonl" || n.ends_with(".zst")),
        "{names:?}"
    );
    assert!(
        !stopped.stderr.contains("not compressed"),
        "{}",
        stopped.stderr
    );
}

/// A tmpfs of `size` mounted at `at` for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "mdatp-test",
                at.to_str().unwrap(),
            ])
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn fill(path: &Path) {
    // Until the filesystem says no more.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", path.display()), "bs=64k"])
        .output();
}

#[test]
fn a_full_disk_counts_every_lost_event_and_writing_resumes_with_space() {
    skip_unless_root!();
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let logs = d.path().join("log");
    let _fs = Tmpfs::mount(&logs, "4m");
    let daemon = start_on_bus(
        &bus,
        d.path(),
        &["--output", logs.join("events.jsonl").to_str().unwrap()],
    );
    let prefix = format!("mdatp-full-{}-", std::process::id());
    run_markers(&prefix, 0..5);
    assert!(wait_until(Duration::from_secs(15), || marker_counts(
        &all_lines(&logs),
        &prefix
    )
    .len()
        == 5));

    fill(&logs.join("filler"));
    run_markers(&prefix, 5..40);
    let full = wait_until(Duration::from_secs(20), || {
        let h = health_json(&bus);
        !h["event_output_error"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
            && h["healthy"] == false
    });
    let h = health_json(&bus);
    assert!(full, "health while the disk is full: {h:#}");
    let lost: u64 = h["loss"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("sink_lost."))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    let written = marker_counts(&all_lines(&logs), &prefix);
    let missing = (5..40)
        .filter(|i| !written.contains_key(&format!("{prefix}{i}")))
        .count() as u64;
    assert!(
        missing > 0,
        "the disk was full, yet every marker was written"
    );
    assert!(
        lost >= missing,
        "{missing} marked execs missing, {lost} counted lost: {h:#}"
    );
    assert!(
        h["loss"].get("sink_lost.process_exec").is_some(),
        "loss per kind: {h:#}"
    );

    std::fs::remove_file(logs.join("filler")).unwrap();
    run_markers(&prefix, 40..45);
    let resumed = wait_until(Duration::from_secs(20), || {
        let w = marker_counts(&all_lines(&logs), &prefix);
        (40..45).all(|i| w.contains_key(&format!("{prefix}{i}")))
    });
    assert!(resumed, "writing did not resume once space returned");
    // The loss is in band: a record ahead of the resumed events says
    // how many events of each kind the file could not take.
    let noted: u64 = all_lines(&logs)
        .iter()
        .filter(|l| l["unmapped"]["detected_by"] == "output_failed")
        .map(|l| {
            l["unmapped"]["lost_by_type"]["process_exec"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(
        noted >= missing,
        "{missing} marked execs missing, the file's loss records say {noted}"
    );
    // Health is refreshed every second.
    let cleared = wait_until(Duration::from_secs(5), || {
        health_json(&bus)["event_output_error"] == ""
    });
    assert!(cleared, "{:#}", health_json(&bus));
    drop(daemon);
}

/// Rounds alternate the provider: a kill -9 on the audit subsystem leaves
/// its rules in the kernel (nothing runs at a SIGKILL), and the next start
/// must find and replace them; BPF programs go with the killed process.
#[test]
fn a_kill_in_the_middle_of_a_burst_leaves_only_whole_lines_and_nothing_behind() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let before = our_bpf_programs_settled();
    assert!(
        before.is_empty(),
        "programs of ours before the test: {before:?}"
    );
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("log");
    let out = logs.join("events.jsonl");
    let rules = d.path().join("rules.d");
    for round in 0..4u64 {
        let provider = if round % 2 == 0 {
            "enabled"
        } else {
            "disabled"
        };
        let daemon = daemon_with_output(
            d.path(),
            &out,
            &[
                "--ebpf-supplementary-event-provider",
                provider,
                "--audit-rules-dir",
                rules.to_str().unwrap(),
            ],
        );
        let mut burst = Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 3000 ]; do /bin/true x$i; i=$((i+1)); done",
            ])
            .spawn()
            .expect("burst");
        std::thread::sleep(Duration::from_millis(400 + 300 * round));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon.pid() as i32),
            Signal::SIGKILL,
        )
        .expect("kill -9");
        let _ = burst.wait();
        drop(daemon);
        if provider == "disabled" {
            assert!(
                !our_audit_rules().is_empty(),
                "round {round}: the kill left no rule to clean up (the test would prove nothing)"
            );
        }
    }
    // The next start cuts a torn last line, if the kill left one, and
    // replaces the rules the killed audit round left.
    let daemon = daemon_with_output(
        d.path(),
        &out,
        &["--audit-rules-dir", rules.to_str().unwrap()],
    );
    run_markers("after-the-kills-", 0..5);
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let lines = all_lines(&logs);
    assert!(
        lines.len() > 100,
        "only {} lines after four bursts",
        lines.len()
    );
    assert_eq!(
        marker_counts(&lines, "after-the-kills-").len(),
        5,
        "events after the restarts"
    );
    assert!(
        our_audit_rules().is_empty(),
        "rules left: {:?}",
        our_audit_rules()
    );
    let left = our_bpf_programs_settled();
    assert!(left.is_empty(), "programs left: {left:?}");
}

/// `output.detail: compact` with the real sensor: an open keeps what OCSF
/// requires and the identities (the opener's pid, entity id and user, the
/// file's path, inode and device) without the captions; a reload back to
/// `full` brings them back at once. The records are archived for the
/// OCSF schema check like every test's.
#[test]
fn compact_records_keep_identity_and_a_reload_restores_full_ones() {
    skip_unless_root!();
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    config(d.path(), "output: {detail: compact}\n");
    let etc = d.path().join("etc");
    let state = d.path().join("state");
    let daemon = Daemon::start(&[
        "--config-dir",
        etc.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let open_by_cat = |daemon: &Daemon, f: &Path| {
        std::fs::write(f, b"x").unwrap();
        let child = Command::new("cat").arg(f).output().unwrap();
        assert!(child.status.success());
        daemon
            .wait_event(Duration::from_secs(10), |v| {
                v["class_uid"] == 1001
                    && v["activity_id"] == 14
                    && v.pointer("/file/path").and_then(Value::as_str) == f.to_str()
            })
            .unwrap_or_else(|| panic!("no open of {}", f.display()))
    };
    let f = d.path().join("compact-target");
    let v = open_by_cat(&daemon, &f);
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&f).unwrap());
    let text = v.to_string();
    for gone in [
        "class_name",
        "activity_name",
        "parent_folder",
        "\"status\"",
        "open_flags",
        "time_ns",
    ] {
        assert!(!text.contains(gone), "{gone} in a compact record: {text}");
    }
    assert!(v.pointer("/actor/process/file").is_none(), "{text}");
    assert!(v["actor"]["process"]["pid"].as_u64().unwrap() > 0, "{text}");
    assert_eq!(
        v["actor"]["process"]["uid"].as_str().unwrap().len(),
        36,
        "{text}"
    );
    assert_eq!(v["actor"]["process"]["user"]["uid"], "0", "{text}");
    assert_eq!(v["unmapped"]["file"]["inode"], ino, "{text}");
    assert!(v["unmapped"]["file"]["device"].is_string(), "{text}");
    assert_eq!(v["unmapped"]["provider"], "ebpf", "{text}");
    assert_eq!(v["status_id"], 1, "{text}");
    assert!(text.len() < 600, "{} bytes: {text}", text.len());

    config(d.path(), "output: {detail: full}\n");
    daemon.signal(Signal::SIGHUP);
    daemon.wait_stderr("configuration reloaded", Duration::from_secs(10));
    let v = open_by_cat(&daemon, &d.path().join("full-target"));
    assert_eq!(v["class_name"], "File System Activity", "{v}");
    assert_eq!(v["activity_name"], "Open", "{v}");
    assert!(v.pointer("/actor/process/file/path").is_some(), "{v}");
    daemon.stop();
}
