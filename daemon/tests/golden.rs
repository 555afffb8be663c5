//! Golden tests of the output contract: for every OCSF class and activity
//! the sensor emits, a recorded input — ring-buffer record bytes built
//! from the ABI structs, or audit records captured from this kernel's
//! multicast group (daemon/testdata/audit) — runs through the real source
//! conversion and pipeline into memory, and the JSON is compared with a
//! committed fixture (daemon/tests/golden/*.json). Volatile fields (wall
//! times, entity ids, which depend on the boot) are normalized. No root.
//!
//! After an intended change of the output: `MDATP_BLESS=1 cargo test -p
//! mdatpd --test golden`, then review the fixtures' diff.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mdatp_bpf::abi::{
    mdatp_access, mdatp_event_header, mdatp_event_type as T, mdatp_exec_event, mdatp_exit_event,
    mdatp_file_fold_event, mdatp_file_op_event, mdatp_file_open_event, mdatp_fork_event,
    mdatp_net_event, mdatp_task_info,
};
use mdatpd::audit::assemble::{Assembler, AuditEvent};
use mdatpd::audit::loss::AuditLoss;
use mdatpd::audit::netlink::RawAuditRecord;
use mdatpd::audit::source::submit;
use mdatpd::clock::HostClock;
use mdatpd::ebpf::EbpfSource;
use mdatpd::enrich::Enricher;
use mdatpd::pipeline::Pipeline;
use mdatpd::process_cache::ProcessCache;
use mdatpd::sink::{Detail, JsonLines};
use serde_json::Value;

/// An in-memory event output.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Memory {
    fn events(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }
}

fn pipeline(out: &Memory, detail: Detail) -> (Pipeline, HostClock) {
    let clock = HostClock::from_system().expect("clock");
    let p = Pipeline::new(
        Enricher::new(clock.clone(), ProcessCache::new()),
        Box::new(JsonLines::new(out.clone())),
    )
    .with_hostname("golden-host")
    .with_detail(detail);
    (p, clock)
}

/// Each fixture in both details: `NAME.json` in full, `NAME-compact.json`
/// compact (docs/EVENTS.md, "Compact records").
const DETAILS: [(Detail, &str); 2] = [(Detail::Full, ""), (Detail::Compact, "-compact")];

/// Wall times and entity ids depend on this boot: replaced by markers.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let volatile_time = matches!(
                    k.as_str(),
                    "time" | "created_time" | "start_time" | "end_time"
                ) || k.ends_with("_ns");
                let entity_id = k == "uid" && x.as_str().is_some_and(|s| s.len() == 36);
                if volatile_time && x.is_u64() {
                    *x = Value::String("<time>".into());
                } else if entity_id {
                    *x = Value::String("<entity id>".into());
                } else {
                    normalize(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn check(name: &str, mut events: Vec<Value>) {
    events.iter_mut().for_each(normalize);
    let got = Value::Array(events);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.json"));
    if std::env::var_os("MDATP_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(&path, text).expect("write fixture");
        return;
    }
    let want: Value = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (MDATP_BLESS=1 writes it)", path.display()))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        got,
        want,
        "{name}: output differs from {}; got:\n{}",
        path.display(),
        serde_json::to_string_pretty(&got).unwrap_or_default()
    );
}

// ---- eBPF: ring-buffer records built from the ABI structs -------------

const BOOT_NS: u64 = 5_000_000_000;

fn bytes_of<S>(s: &S, len: usize) -> Vec<u8> {
    assert!(len <= size_of::<S>());
    // SAFETY: S is a bindgen ABI struct of integers and byte arrays; the
    // first `len` bytes are inside it.
    unsafe { std::slice::from_raw_parts((s as *const S).cast::<u8>(), len) }.to_vec()
}

fn hdr(ty: T, seq: u64, size: usize) -> mdatp_event_header {
    mdatp_event_header {
        type_: ty as u32,
        size: size as u32,
        seq,
        boot_ns: BOOT_NS + seq * 1_000,
        cpu: 0,
        ..Default::default()
    }
}

fn task(pid: u32, comm: &str) -> mdatp_task_info {
    let mut t = mdatp_task_info {
        pid,
        tid: pid,
        ppid: 1,
        loginuid: 1000,
        sessionid: 3,
        start_boottime_ns: 1_000_000_000 + u64::from(pid),
        parent_start_boottime_ns: 10_000_000,
        cgroup_id: 4242,
        ..Default::default()
    };
    for (i, b) in comm.bytes().take(15).enumerate() {
        t.comm[i] = b as std::os::raw::c_char;
    }
    t
}

fn fill(dst: &mut [std::os::raw::c_char], parts: &[&[u8]]) -> usize {
    let mut at = 0;
    for p in parts {
        for b in *p {
            dst[at] = *b as std::os::raw::c_char;
            at += 1;
        }
    }
    at
}

fn exec(seq: u64, pid: u32) -> Vec<u8> {
    let mut e = mdatp_exec_event {
        task: task(pid, "cat"),
        argc: 2,
        ..Default::default()
    };
    let (exe, cwd, argv) = (
        &b"/usr/bin/cat"[..],
        &b"/root"[..],
        &b"cat\0/etc/shadow\0"[..],
    );
    e.exe_len = exe.len() as u16;
    e.cwd_len = cwd.len() as u16;
    e.argv_len = argv.len() as u16;
    let n = fill(&mut e.data, &[exe, cwd, argv]);
    let size = std::mem::offset_of!(mdatp_exec_event, data) + n;
    e.hdr = hdr(T::MDATP_EV_EXEC, seq, size);
    bytes_of(&e, size)
}

fn fork(seq: u64, parent: u32, child: u32) -> Vec<u8> {
    let e = mdatp_fork_event {
        hdr: hdr(T::MDATP_EV_FORK, seq, size_of::<mdatp_fork_event>()),
        parent: task(parent, "bash"),
        child_pid: child,
        child_tid: child,
        child_start_boottime_ns: 1_000_000_000 + u64::from(child),
    };
    bytes_of(&e, size_of::<mdatp_fork_event>())
}

fn exit(seq: u64, pid: u32) -> Vec<u8> {
    let e = mdatp_exit_event {
        hdr: hdr(T::MDATP_EV_EXIT, seq, size_of::<mdatp_exit_event>()),
        task: task(pid, "cat"),
        exit_code: 1,
        ..Default::default()
    };
    bytes_of(&e, size_of::<mdatp_exit_event>())
}

fn open(seq: u64, pid: u32, path: &str, access: u32, flags: u32) -> Vec<u8> {
    let mut e = mdatp_file_open_event {
        task: task(pid, "cat"),
        open_flags: flags,
        access,
        fd: 3,
        path_len: path.len() as u16,
        ..Default::default()
    };
    e.file.ino = 777;
    e.file.dev = (254 << 20) | 1;
    e.file.mnt_id = 28;
    e.file.mode = 0o100640;
    fill(&mut e.path, &[path.as_bytes()]);
    let size = std::mem::offset_of!(mdatp_file_open_event, path) + path.len();
    e.hdr = hdr(T::MDATP_EV_FILE_OPEN, seq, size);
    bytes_of(&e, size)
}

fn fold(seq: u64, pid: u32) -> Vec<u8> {
    let e = mdatp_file_fold_event {
        hdr: hdr(
            T::MDATP_EV_FILE_FOLD,
            seq,
            size_of::<mdatp_file_fold_event>(),
        ),
        task: task(pid, "cat"),
        ino: 777,
        dev: (254 << 20) | 1,
        access: mdatp_access::MDATP_ACCESS_READ,
        count: 41,
        first_ns: BOOT_NS + 10,
        last_ns: BOOT_NS + 20,
        ..Default::default()
    };
    bytes_of(&e, size_of::<mdatp_file_fold_event>())
}

/// A path change: (directory, relative name) pairs resolved by the kernel.
fn file_op(seq: u64, ty: T, first: (&str, &str), second: (&str, &str)) -> Vec<u8> {
    let mut e = mdatp_file_op_event {
        task: task(4100, "mv"),
        mode: 0o750,
        uid: 65534,
        gid: u32::MAX,
        ..Default::default()
    };
    for (r, ino) in [(&mut e.dir1, 100u64), (&mut e.dir2, 200)] {
        r.ino = ino;
        r.dev = (254 << 20) | 1;
        r.mnt_id = 28;
        r.mode = 0o40755;
    }
    let parts = [first.0, first.1, second.0, second.1];
    e.dir1_len = parts[0].len() as u16;
    e.name1_len = parts[1].len() as u16;
    e.dir2_len = parts[2].len() as u16;
    e.name2_len = parts[3].len() as u16;
    let n = fill(&mut e.data, &parts.map(str::as_bytes));
    let size = std::mem::offset_of!(mdatp_file_op_event, data) + n;
    e.hdr = hdr(ty, seq, size);
    bytes_of(&e, size)
}

fn net(seq: u64, ty: T, v6: bool, protocol: u16) -> Vec<u8> {
    let mut e = mdatp_net_event {
        task: task(4200, "curl"),
        protocol,
        family: if v6 { 10 } else { 2 },
        sock_type: if protocol == 17 { 2 } else { 1 },
        local_port: 40000,
        remote_port: 443,
        backlog: if ty == T::MDATP_EV_NET_LISTEN { 128 } else { 0 },
        ..Default::default()
    };
    if v6 {
        e.local_addr[15] = 1;
        e.remote_addr[15] = 1;
    } else {
        e.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        e.remote_addr[..4].copy_from_slice(&[192, 0, 2, 7]);
    }
    e.hdr = hdr(ty, seq, size_of::<mdatp_net_event>());
    bytes_of(&e, size_of::<mdatp_net_event>())
}

/// A connect that returned `-errno`.
fn connect_failed(seq: u64, errno: i32) -> Vec<u8> {
    let mut bytes = net(seq, T::MDATP_EV_NET_CONNECT, false, 6);
    let at = std::mem::offset_of!(mdatp_net_event, ret);
    bytes[at..at + 4].copy_from_slice(&(-errno).to_ne_bytes());
    bytes
}

fn run_ebpf(name: &str, records: &[Vec<u8>]) {
    for (detail, suffix) in DETAILS {
        let out = Memory::default();
        let (mut p, clock) = pipeline(&out, detail);
        let mut source = EbpfSource::new(clock);
        for r in records {
            source.converter().record(r, &mut |ev| p.submit(ev));
        }
        p.flush();
        check(&format!("{name}{suffix}"), out.events());
    }
}

/// The bytes of one open of `path` as written (with its newline).
fn open_record_bytes(detail: Detail, path: &str) -> usize {
    let out = Memory::default();
    let (mut p, clock) = pipeline(&out, detail);
    let mut source = EbpfSource::new(clock);
    let rec = open(1, 4100, path, mdatp_access::MDATP_ACCESS_READ, 0);
    source.converter().record(&rec, &mut |ev| p.submit(ev));
    p.flush();
    out.0.lock().expect("lock").len()
}

/// The compact detail's point, with a path of the benchmark's length:
/// 537 bytes against 834 in full (whose actor here has no executable; a
/// real one adds its path twice). Both bounds can fail: a field added to
/// either detail moves them.
#[test]
fn a_compact_open_record_is_a_third_smaller() {
    let path = "/tmp/.tmpAbCdEf/one.txt";
    let full = open_record_bytes(Detail::Full, path);
    let compact = open_record_bytes(Detail::Compact, path);
    assert!(compact <= 540, "compact open record: {compact} bytes");
    assert!(compact * 3 <= full * 2, "full {full}, compact {compact}");
    eprintln!("open record: full {full} bytes, compact {compact}");
}

#[test]
fn ebpf_process_activity() {
    run_ebpf(
        "ebpf-process",
        &[fork(1, 4000, 4001), exec(2, 4001), exit(3, 4001)],
    );
}

#[test]
fn ebpf_file_system_activity() {
    use mdatp_access::*;
    run_ebpf(
        "ebpf-file",
        &[
            open(1, 4100, "/etc/shadow", MDATP_ACCESS_READ, 0),
            fold(2, 4100),
            open(
                3,
                4100,
                "/tmp/new",
                MDATP_ACCESS_WRITE | MDATP_ACCESS_CREATE,
                0o1101,
            ),
            file_op(4, T::MDATP_EV_FILE_DELETE, ("/tmp", "old"), ("", "")),
            file_op(5, T::MDATP_EV_FILE_RENAME, ("/tmp", "a"), ("/var/tmp", "b")),
            file_op(6, T::MDATP_EV_FILE_MKDIR, ("/tmp", "d"), ("", "")),
            file_op(7, T::MDATP_EV_FILE_CHMOD, ("/tmp", "x"), ("", "")),
            file_op(8, T::MDATP_EV_FILE_CHOWN, ("/tmp", "x"), ("", "")),
            file_op(9, T::MDATP_EV_FILE_LINK, ("/tmp", "x"), ("/tmp", "hard")),
            file_op(
                10,
                T::MDATP_EV_FILE_SYMLINK,
                ("", "/etc/passwd"),
                ("/tmp", "soft"),
            ),
            // A fold whose first open this daemon never saw: no path.
            fold(11, 4999),
        ],
    );
}

#[test]
fn ebpf_network_activity() {
    run_ebpf(
        "ebpf-network",
        &[
            net(1, T::MDATP_EV_NET_CONNECT, false, 6),
            net(2, T::MDATP_EV_NET_ACCEPT, true, 6),
            net(3, T::MDATP_EV_NET_LISTEN, false, 6),
            net(4, T::MDATP_EV_NET_BIND, true, 6),
            net(5, T::MDATP_EV_NET_UDP_SEND, false, 17),
            net(6, T::MDATP_EV_NET_UDP_RECV, true, 17),
            // Refuse, Fail, and a non-blocking connect in progress.
            connect_failed(7, libc::ECONNREFUSED),
            connect_failed(8, libc::EHOSTUNREACH),
            connect_failed(9, libc::EINPROGRESS),
        ],
    );
}

#[test]
fn ebpf_sequence_gap_becomes_a_loss_record() {
    // Records 2..=4 of CPU 0 never arrive.
    run_ebpf("ebpf-loss", &[exit(1, 4001), exit(5, 4002)]);
}

// ---- audit: records captured from the kernel's multicast group --------

fn audit_events(files: &[&str]) -> Vec<AuditEvent> {
    let mut a = Assembler::default();
    let mut out = Vec::new();
    for name in files {
        let path = format!("{}/testdata/audit/{name}.tsv", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("testdata");
        for line in text.lines() {
            let (ty, rest) = line.split_once('\t').expect("tsv");
            // The captures used their own key; the sensor reports its own.
            let rest = rest.replace("key=\"mdatp-capture\"", "key=\"mdatp\"");
            out.extend(a.push(
                RawAuditRecord {
                    ty: ty.parse().expect("type"),
                    text: rest.into_bytes(),
                },
                Instant::now(),
            ));
        }
    }
    out
}

fn run_audit(name: &str, files: &[&str]) {
    for (detail, suffix) in DETAILS {
        let out = Memory::default();
        let (mut p, _) = pipeline(&out, detail);
        let mut loss = AuditLoss::default();
        // No /proc: the recorded processes are not this machine's.
        submit(
            &audit_events(files),
            true,
            None,
            &mut p,
            &mut loss,
            Path::new("/nonexistent"),
        );
        p.flush();
        assert!(
            loss.skipped.is_empty(),
            "{name}: skipped {:?}",
            loss.skipped
        );
        check(&format!("{name}{suffix}"), out.events());
    }
}

#[test]
fn audit_process_activity() {
    run_audit("audit-process", &["exec-echo", "exit-3"]);
}

#[test]
fn audit_file_system_activity() {
    run_audit(
        "audit-file",
        &[
            "open-read",
            "open-create",
            "unlink",
            "rename",
            "mkdir",
            "chmod",
            "chown",
            "link",
            "symlink",
        ],
    );
}

#[test]
fn audit_network_activity() {
    run_audit(
        "audit-network",
        &["connect-refused", "accept", "listen", "bind"],
    );
}

#[test]
fn audit_authentication() {
    run_audit("audit-login", &["login-auth", "login-session"]);
}
