//! 32-bit (ia32) programs: their system calls have other numbers and
//! another entry path (`int 0x80`), which x86_64-only rules and syscall
//! tracepoints never see. A static i386 program built here from
//! `ia32/probe32.S` creates and unlinks a file and connects a socket; each
//! of its calls must be an event, with its content.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mdatp_integration_tests::*;
use serde_json::Value;

/// Assembles and links the probe (binutils' `as --32`, `ld -m elf_i386`).
fn build_probe(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("ia32/probe32.S");
    let obj = dir.join("probe32.o");
    let bin = dir.join("probe32");
    let ok = |c: &mut Command| {
        let out = c.output().expect("binutils (as, ld) are installed");
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(Command::new("as").arg("--32").arg("-o").arg(&obj).arg(&src));
    ok(Command::new("ld")
        .args(["-m", "elf_i386", "-o"])
        .arg(&bin)
        .arg(&obj));
    bin
}

/// Runs the probe against a fresh file and listener: (pid, file, port).
fn run_probe(bin: &Path, dir: &Path) -> (u32, PathBuf, u16, TcpListener) {
    let file = dir.join("made-by-ia32");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = Command::new(bin)
        .arg(&file)
        .arg(port.to_string())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "the probe failed a call");
    assert!(!file.exists());
    (pid, file, port, listener)
}

fn by(pid: u32) -> impl Fn(&Value) -> bool {
    move |v| {
        at(v, "/actor/process/pid") == u64::from(pid) || at(v, "/process/pid") == u64::from(pid)
    }
}

/// Every call of the probe is an event with its content.
fn assert_probe_seen(d: &Daemon, pid: u32, file: &Path, port: u16, provider: &str) {
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
    }
    let c = d
        .wait_event(wait, |v| {
            is_net_event(v) && mine(v) && at(v, "/connection_info/direction") == "Outbound"
        })
        .unwrap_or_else(|| {
            panic!(
                "{provider}: no connect by the ia32 probe; stderr:\n{}",
                d.stderr()
            )
        });
    assert_eq!(at(&c, "/dst_endpoint/ip"), "127.0.0.1");
    assert_eq!(at(&c, "/dst_endpoint/port"), u64::from(port));
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
    assert_probe_seen(&d, pid, &file, port, "auditd");
    d.stop();
}
