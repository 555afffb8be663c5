//! The same workload under the eBPF and the auditd provider gives the same
//! normalized events on the fields both can know (docs/EVENTS.md lists
//! what only one provider knows).

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mdatp_integration_tests::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// The workload's sockets, open until its events have been read: under
/// audit the endpoints the records lack are read from the open socket.
// Held for their drop only.
#[allow(dead_code)]
struct Sockets(TcpListener, TcpStream, TcpStream);

/// bind, listen, exec, create/write, rename, delete, connect, accept.
/// Returns the listener port.
fn workload(dir: &Path) -> (u16, Sockets) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert!(
        Command::new("/bin/echo")
            .args(["parity", "workload"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let a = dir.join("created.txt");
    fs::write(&a, b"data").unwrap();
    fs::rename(&a, dir.join("renamed.txt")).unwrap();
    fs::remove_file(dir.join("renamed.txt")).unwrap();
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (a, _) = listener.accept().unwrap();
    (port, Sockets(listener, c, a))
}

/// The comparable view of the workload's events: paths relative to `dir`,
/// the port replaced by a placeholder.
fn view(events: &[Value], dir: &Path, port: u16) -> BTreeSet<String> {
    let d = dir.to_str().unwrap();
    let me = u64::from(std::process::id());
    let rel = |v: &Value| {
        v.as_str()
            .map(|p| p.replace(d, "<dir>"))
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for v in events {
        if is_exec(v) && at(v, "/unmapped/process/argv/1") == "parity" {
            out.insert(format!(
                "exec exe={} argv={} cwd={} uid={}",
                at(v, "/process/file/path"),
                at(v, "/unmapped/process/argv"),
                at(v, "/unmapped/process/cwd"),
                at(v, "/process/user/uid")
            ));
        } else if is_file_event(v)
            && at(v, "/actor/process/pid") == me
            && at(v, "/file/path")
                .as_str()
                .is_some_and(|p| p.starts_with(d))
        {
            out.insert(format!(
                "file {} {} -> {} status={}",
                at(v, "/activity_name"),
                rel(at(v, "/file/path")),
                rel(at(v, "/file_result/path")),
                at(v, "/status")
            ));
        } else if is_net_event(v)
            && at(v, "/actor/process/pid") == me
            && (at(v, "/dst_endpoint/port") == u64::from(port)
                || at(v, "/src_endpoint/port") == u64::from(port))
        {
            // Every network kind of the workload, with both endpoints as
            // far as the event has them; the ephemeral port by name.
            let ep = |side: &str| {
                let p = at(v, &format!("/{side}/port"));
                let p = if p == u64::from(port) {
                    "<port>".to_string()
                } else if p.is_null() {
                    "-".to_string()
                } else {
                    "<ephemeral>".to_string()
                };
                format!("{}:{p}", at(v, &format!("/{side}/ip")))
            };
            out.insert(format!(
                "net {} {} src={} dst={} status={}",
                at(v, "/activity_name"),
                at(v, "/connection_info/direction"),
                ep("src_endpoint"),
                ep("dst_endpoint"),
                at(v, "/status")
            ));
        }
    }
    out
}

/// How the provider under test came to serve the workload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ebpf,
    Auditd,
    /// Started on eBPF, switched to the audit subsystem live (SIGHUP).
    SwitchedToAuditd,
}

fn run_under(mode: Mode) -> BTreeSet<String> {
    let dir = tempfile::Builder::new()
        .prefix("mdatp-parity-")
        .tempdir()
        .unwrap();
    let canon = fs::canonicalize(dir.path()).unwrap();
    let rules = tempfile::tempdir().unwrap();
    let setting =
        |p: &str| format!("folding: {{enabled: false}}\nebpf_supplementary_event_provider: {p}\n");
    let start = if mode == Mode::Ebpf {
        "enabled"
    } else {
        "disabled"
    };
    let start = if mode == Mode::SwitchedToAuditd {
        "enabled"
    } else {
        start
    };
    let cfg = filter_config(rules.path(), &setting(start));
    let d = Daemon::start(&[
        "--audit-rules-dir",
        rules.path().to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    if mode == Mode::SwitchedToAuditd {
        fs::write(&cfg, setting("disabled")).unwrap();
        d.signal(nix::sys::signal::Signal::SIGHUP);
        d.wait_stderr("provider switched: ebpf -> auditd", WAIT);
        // Past the switch's overlap window, so every event is audit's.
        std::thread::sleep(Duration::from_secs(4));
    }
    let began_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        // Audit stamps records with the kernel's coarse clock (a tick behind).
        - 500;
    let (port, sockets) = workload(&canon);
    // The last action of the workload is the accept.
    d.wait_event(WAIT, |v| {
        is_net_event(v)
            && at(v, "/connection_info/direction") == "Inbound"
            && at(v, "/dst_endpoint/port") == u64::from(port)
    })
    .unwrap_or_else(|| panic!("{mode:?}: no accept event; stderr:\n{}", d.stderr()));
    std::thread::sleep(Duration::from_millis(500));
    drop(sockets);
    let stopped = d.stop();
    let provider = if mode == Mode::Ebpf { "ebpf" } else { "auditd" };
    // Under audit, forks (which audit has no record of) come from the
    // process connector; everything else from the provider.
    let expected = |v: &serde_json::Value| {
        if mode != Mode::Ebpf && is_fork(v) {
            "proc_connector"
        } else {
            provider
        }
    };
    let events: Vec<serde_json::Value> = stopped
        .events
        .into_iter()
        .filter(|v| at(v, "/time").as_u64().is_some_and(|t| t >= began_ms))
        .collect();
    let strays: Vec<&serde_json::Value> = events
        .iter()
        .filter(|v| v["class_uid"] != 0 && at(v, "/unmapped/provider") != expected(v))
        .collect();
    assert!(strays.is_empty(), "{mode:?}: {strays:#?}");
    view(&events, &canon, port)
}

#[test]
fn both_providers_report_the_same_workload_alike() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let ebpf = run_under(Mode::Ebpf);
    let auditd = run_under(Mode::Auditd);
    assert_eq!(ebpf, auditd, "eBPF vs auditd view of the same workload");
    let expected = [
        "file \"Create\" <dir>/created.txt ->  status=\"Success\"",
        "file \"Rename\" <dir>/created.txt -> <dir>/renamed.txt status=\"Success\"",
        "file \"Delete\" <dir>/renamed.txt ->  status=\"Success\"",
        "net \"Bind\" \"Unknown\" src=\"127.0.0.1\":<port> dst=null:- status=\"Success\"",
        "net \"Listen\" \"Unknown\" src=\"127.0.0.1\":<port> dst=null:- status=\"Success\"",
        "net \"Open\" \"Outbound\" src=\"127.0.0.1\":<ephemeral> dst=\"127.0.0.1\":<port> status=\"Success\"",
        "net \"Open\" \"Inbound\" src=\"127.0.0.1\":<ephemeral> dst=\"127.0.0.1\":<port> status=\"Success\"",
    ];
    for e in expected {
        assert!(ebpf.contains(e), "{e} missing from {ebpf:#?}");
    }
    assert!(
        ebpf.iter().any(|l| l.starts_with(
            "exec exe=\"/usr/bin/echo\" argv=[\"/bin/echo\",\"parity\",\"workload\"]"
        )),
        "{ebpf:#?}"
    );
}

/// A hardening baseline in the style of the CIS and STIG audit rules (no
/// auid filter, so it bites for root as well): loaded before the sensor,
/// its rules match first and label the records with their own keys.
const BASELINE: &[&str] = &[
    "-w /etc/passwd -p wa -k identity",
    "-w /etc/group -p wa -k identity",
    "-w /etc/shadow -p wa -k identity",
    "-w /etc/gshadow -p wa -k identity",
    "-w /etc/sudoers -p wa -k scope",
    "-w /etc/localtime -p wa -k time-change",
    "-w /var/log/lastlog -p wa -k logins",
    "-w /sbin/modprobe -p x -k modules",
    "-a always,exit -F arch=b64 -S adjtimex,settimeofday,clock_settime -k time-change",
    "-a always,exit -F arch=b64 -S sethostname,setdomainname -k system-locale",
    "-a always,exit -F arch=b64 -S chmod,fchmod,fchmodat -k perm_mod",
    "-a always,exit -F arch=b64 -S chown,fchown,fchownat,lchown -k perm_mod",
    "-a always,exit -F arch=b64 -S setxattr,lsetxattr,fsetxattr,removexattr -k perm_mod",
    "-a always,exit -F arch=b64 -S creat,open,openat,truncate,ftruncate -F exit=-EACCES -k access",
    "-a always,exit -F arch=b64 -S creat,open,openat,truncate,ftruncate -F exit=-EPERM -k access",
    "-a always,exit -F arch=b64 -S openat -F dir=/tmp -k tmp-access",
    "-a always,exit -F arch=b64 -S unlink,unlinkat,rename,renameat -k delete",
    "-a always,exit -F arch=b64 -S execve -k exec",
    "-a always,exit -F arch=b64 -S connect -k network",
    "-a always,exit -F arch=b64 -S mount,umount2 -k mounts",
    "-a always,exit -F arch=b64 -S init_module,finit_module,delete_module -k modules",
];

#[test]
fn a_hardening_baseline_loaded_first_hides_nothing_and_stays_as_it_was() {
    skip_unless_root!();
    let _g = serial();
    let mut audit = AuditState::capture();
    for rule in BASELINE {
        audit.add_foreign(&rule.split_whitespace().collect::<Vec<_>>());
    }
    let baseline = audit_rules();
    assert!(baseline.len() >= BASELINE.len(), "{baseline:#?}");
    let ebpf = run_under(Mode::Ebpf);
    // Every record of the workload now matches a baseline rule first
    // (exec, /tmp, delete, connect): the auditd provider must still
    // report each of them, once — started on it, and switched to it live.
    let auditd = run_under(Mode::Auditd);
    assert_eq!(ebpf, auditd, "eBPF vs auditd under the baseline");
    let switched = run_under(Mode::SwitchedToAuditd);
    assert_eq!(
        ebpf, switched,
        "eBPF vs auditd switched to live, under the baseline"
    );
    assert_eq!(audit_rules(), baseline, "the baseline, byte for byte");
}
