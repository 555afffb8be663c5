//! 32-bit (ia32) programs: their system calls have other numbers and
//! another entry path (`int 0x80`), which x86_64-only rules and syscall
//! tracepoints never see. A static i386 program built here from
//! `ia32/probe32.S` creates and unlinks a file and connects a socket
//! (with connect and through socketcall); each of its calls must be an
//! event, with its content, marked as a 32-bit call.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::*;
use serde_json::Value;

/// Builds the probe (`ia32/build.sh`: binutils' `as --32`, `ld -m elf_i386`).
fn build_probe(dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ia32/build.sh");
    let out = Command::new("sh")
        .arg(script)
        .arg(dir)
        .output()
        .expect("run ia32/build.sh");
    assert!(
        out.status.success(),
        "ia32/build.sh (binutils installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("probe32")
}

/// Two listeners on consecutive ports (the probe connects to PORT and
/// PORT+1).
fn listeners() -> (u16, [TcpListener; 2]) {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if let Some(next) = port
            .checked_add(1)
            .and_then(|p| TcpListener::bind(("127.0.0.1", p)).ok())
        {
            return (port, [first, next]);
        }
    }
    panic!("no two consecutive free ports");
}

/// Runs the probe against a fresh file and listeners: (pid, file, port).
fn run_probe(bin: &Path, dir: &Path) -> (u32, PathBuf, u16, [TcpListener; 2]) {
    let file = dir.join("made-by-ia32");
    let (port, listeners) = listeners();
    let mut child = Command::new(bin)
        .arg(&file)
        .arg(port.to_string())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "the probe failed a call");
    assert!(!file.exists());
    (pid, file, port, listeners)
}

fn by(pid: u32) -> impl Fn(&Value) -> bool {
    move |v| {
        at(v, "/actor/process/pid") == u64::from(pid) || at(v, "/process/pid") == u64::from(pid)
    }
}

/// Every call of the probe is an event with its content, its two connects
/// (the second through socketcall, to PORT+1) included.
fn assert_probe_seen(
    d: &Daemon,
    pid: u32,
    file: &Path,
    port: u16,
    provider: &str,
    connects: usize,
) {
    let wait = Duration::from_secs(10);
    let path = file.to_str().unwrap();
    let mine = by(pid);
    let exec = d
        .wait_event(wait, |v| is_exec(v) && mine(v))
        .unwrap_or_else(|| {
            panic!(
                "{provider}: no exec of the ia32 probe; stderr:\n{}",
                d.stderr()
            )
        });
    assert_eq!(at(&exec, "/unmapped/process/argv/1"), path);
    assert_eq!(at(&exec, "/unmapped/provider"), provider, "{exec}");
    for activity in ["Create", "Delete"] {
        let v = d
            .wait_event(wait, |v| {
                is_file_event(v) && mine(v) && at(v, "/activity_name") == activity
            })
            .unwrap_or_else(|| {
                panic!(
                    "{provider}: no {activity} by the ia32 probe; stderr:\n{}",
                    d.stderr()
                )
            });
        assert_eq!(at(&v, "/file/path"), path, "{activity}: {v}");
        assert_eq!(at(&v, "/unmapped/call_path"), "ia32", "{activity}: {v}");
        assert_eq!(at(&v, "/unmapped/provider"), provider, "{activity}: {v}");
    }
    let outbound =
        |v: &Value| is_net_event(v) && mine(v) && at(v, "/connection_info/direction") == "Outbound";
    d.wait_event(wait, |v| outbound(v)).unwrap_or_else(|| {
        panic!(
            "{provider}: no connect by the ia32 probe; stderr:\n{}",
            d.stderr()
        )
    });
    // The second one, when expected, may come a moment later.
    let deadline = std::time::Instant::now() + wait;
    let mut seen = d
        .events()
        .into_iter()
        .filter(|v| outbound(v))
        .collect::<Vec<_>>();
    while seen.len() < connects && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = d.events().into_iter().filter(|v| outbound(v)).collect();
    }
    assert_eq!(
        seen.len(),
        connects,
        "{provider}: connects of the ia32 probe: {seen:?}"
    );
    for (c, port) in seen.iter().zip(port..) {
        assert_eq!(at(c, "/dst_endpoint/ip"), "127.0.0.1");
        assert_eq!(at(c, "/dst_endpoint/port"), u64::from(port), "{c}");
        assert_eq!(at(c, "/unmapped/call_path"), "ia32", "{c}");
        assert_eq!(at(c, "/unmapped/provider"), provider, "{c}");
    }
}

#[test]
fn a_32_bit_program_is_seen_by_the_audit_provider() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let bin = build_probe(dir.path());
    let rules_dir = dir.path().join("rules.d");
    let d = Daemon::start_on_audit(&rules_dir);
    let (pid, file, port, _l) = run_probe(&bin, dir.path());
    assert_probe_seen(&d, pid, &file, port, "auditd", 2);
    d.stop();
}

/// The syscall tracepoints never fire for 32-bit calls: the raw sys_exit
/// program (bpf/ia32.bpf.c) must see them, socketcall included.
#[test]
fn a_32_bit_program_is_seen_by_the_ebpf_provider() {
    skip_unless_root!();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let bin = build_probe(dir.path());
    let bus = PrivateBus::start(BusPolicy::Permissive);
    let d = start_on_bus(&bus, &dir.path().join("sensor"), &[]);
    let (pid, file, port, _l) = run_probe(&bin, dir.path());
    assert_probe_seen(&d, pid, &file, port, "ebpf", 2);
    let health = health_json(&bus);
    let hooks: Vec<&str> = health["active_hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // (The compat build adds its name to the hook.)
    assert!(
        hooks
            .iter()
            .any(|h| h.starts_with("raw tracepoint sys_exit")),
        "{hooks:?}"
    );
    let calls = hooks
        .iter()
        .filter(|h| h.starts_with("tail call ia32_calls["))
        .count();
    assert_eq!(calls, 8, "every 32-bit call program is in place: {hooks:?}");
    d.stop();
}

/// A refused 32-bit program, or the dispatcher that enters them all, is a
/// way around eBPF: health says so in `not_covered`, naming the program.
#[test]
fn a_refused_32_bit_program_is_a_way_around_health_names() {
    skip_unless_root!();
    let _g = serial();
    for (broken, named) in [
        ("mdatp_ia32_open", "mdatp_ia32_open"),
        ("mdatp_sys_exit", "mdatp_ia32_net"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bus = PrivateBus::start(BusPolicy::Permissive);
        let d = start_on_bus(&bus, dir.path(), &["--test-break-program", broken]);
        let health = health_json(&bus);
        let gaps: Vec<&str> = health["not_covered"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let want = format!("32-bit (ia32) system calls: program {named} not running");
        assert!(
            gaps.iter().any(|g| g.starts_with(&want)),
            "{broken} broken: {health}"
        );
        d.stop();
    }
}
