//! What the sensor tells about itself: the hot event sources, its BPF
//! programs' runs and memory, its own resources and bounded tables in
//! health, and a diagnostics archive that a planted file name cannot
//! break (a name whose lower case is longer than itself once made
//! `mdatp diagnostic create` panic while the line was in the log).

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::*;
use nix::sys::signal::Signal;

fn read_archive(archive: &str, f: &str) -> String {
    let o = Command::new("tar")
        .args(["xzf", archive, "-O", &format!("mdatp-diag/{f}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn hot_sources_bpf_statistics_resources_and_a_planted_name() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_on_bus(&bus, dir.path(), &[]);

    // A file any user could name: Kelvin signs and accented letters.
    let planted = dir.path().join("\u{212a}\u{212a}\u{e9}\u{e9}-hot.txt");
    for i in 0..200 {
        let mut f = std::fs::File::create(&planted).unwrap();
        writeln!(f, "{i}").unwrap();
    }
    let planted_s = planted.to_str().unwrap();
    let found = wait_until(Duration::from_secs(15), || {
        let o = cli_on(
            &bus,
            &["diagnostic", "hot-event-sources", "--output", "json"],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v["sources"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| {
                r["kind"] == "path" && r["name"] == planted_s && r["events"].as_u64() >= Some(200)
            })
        })
    });
    let o = cli_on(&bus, &["diagnostic", "hot-event-sources", "--top", "50"]);
    assert!(
        found,
        "the planted file is not a hot path:\n{}",
        output_text(&o)
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains(planted_s) && table.contains("executables by events"),
        "{table}"
    );

    // SIGUSR2 logs the same table, with the planted name, into the log
    // the archive carries: the archive must still be written.
    daemon.signal(Signal::SIGUSR2);
    daemon.wait_stderr("hot sources by path", Duration::from_secs(10));
    let out_dir = dir.path().join("diag-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let o = cli_on(
        &bus,
        &["diagnostic", "create", "--path", out_dir.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let archive = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(read_archive(&archive, "daemon.log").contains(planted_s));
    assert!(read_archive(&archive, "hot-sources.txt").contains(planted_s));
    let objects = read_archive(&archive, "bpf-objects.txt");
    assert!(
        objects.contains("program\t") && objects.contains("map\t"),
        "{objects}"
    );

    // Run counts over a window with execs in it.
    // 20 execs inside a 5 s window (started 0.3 s into it).
    let runner = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..20 {
            run_markers("bpfstat-", i..i + 1);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let o = cli_on(
        &bus,
        &[
            "diagnostic",
            "ebpf-statistics",
            "--seconds",
            "5",
            "--output",
            "json",
        ],
    );
    runner.join().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["note"], "", "{v}");
    let objects = v["objects"].as_array().unwrap();
    let exec = objects
        .iter()
        .find(|o| o["kind"] == "program" && o["name"].as_str().is_some_and(|n| n.contains("exec")))
        .unwrap_or_else(|| panic!("no exec program: {v}"));
    assert!(exec["runs"].as_u64() >= Some(20), "{exec}");
    assert!(exec["avg_ns_per_run"].as_u64() > Some(0), "{exec}");
    let map_bytes: u64 = objects
        .iter()
        .filter(|o| o["kind"] == "map")
        .filter_map(|o| o["memlock_bytes"].as_u64())
        .sum();
    assert!(
        map_bytes > 1 << 20,
        "the ring alone is megabytes: {map_bytes}"
    );
    let o = cli_on(&bus, &["diagnostic", "ebpf-statistics", "--seconds", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("expected 1 to 20"),
        "{}",
        output_text(&o)
    );
    let table = cli_on(&bus, &["diagnostic", "ebpf-statistics", "--seconds", "1"]);
    assert!(
        output_text(&table).contains("avg ns"),
        "{}",
        output_text(&table)
    );

    // Health: the sensor's own resources and its bounded tables.
    let h = health_json(&bus);
    let r = &h["resources"];
    assert!(r["rss_bytes"].as_u64() > Some(1 << 20), "{r}");
    assert!(r["cpu_ms_total"].as_u64().is_some(), "{r}");
    assert_eq!(r["bpf_map_bytes"].as_u64(), Some(map_bytes), "{r}");
    let t = &h["state_tables"];
    assert!(t["process_cache.entries"].as_u64() > Some(10), "{t}");
    assert_eq!(t["process_cache.cap"].as_u64(), Some(65_536), "{t}");
    for name in [
        "user_names",
        "ebpf_opened_path_bytes",
        "hot_path_bytes",
        "switch_duplicates",
    ] {
        assert!(t[format!("{name}.cap")].as_u64() > Some(0), "{name}: {t}");
    }

    // Not for everyone: paths of other users' files, kernel statistics.
    let user = TestUser::create("mdatp-hot-test");
    for args in [
        &["diagnostic", "hot-event-sources"][..],
        &["diagnostic", "ebpf-statistics"][..],
    ] {
        let o = user
            .command(&cli_bin())
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", output_text(&o));
        assert!(
            output_text(&o).contains("access denied"),
            "{}",
            output_text(&o)
        );
    }
    let stopped = daemon.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
}
