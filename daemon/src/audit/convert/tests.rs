//! Conversion of recorded audit events (daemon/testdata/audit/*.tsv:
//! "type<TAB>text" per record, captured from this kernel's audit
//! multicast group).

use std::time::Instant;

use super::*;
use crate::audit::assemble::Assembler;

fn load(name: &str) -> Vec<AuditEvent> {
    let path = format!("{}/testdata/audit/{name}.tsv", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("testdata");
    let mut a = Assembler::default();
    let mut out = Vec::new();
    for line in text.lines() {
        let (ty, rest) = line.split_once('\t').expect("tsv");
        let rec = RawAuditRecord {
            ty: ty.parse().expect("type"),
            text: rest.as_bytes().to_vec(),
        };
        out.extend(a.push(rec, Instant::now()));
    }
    out
}

fn one(name: &str) -> Event {
    let evs = load(name);
    assert_eq!(evs.len(), 1, "{name}: one event");
    convert(&evs[0])
        .map(|c| c.event)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn exec_has_argv_exe_and_cwd() {
    let Event::Process(p) = one("exec-echo") else {
        panic!("not a process event")
    };
    assert_eq!(p.activity, ProcessActivity::Exec);
    assert_eq!(
        p.process
            .argv
            .as_ref()
            .map(|a| a.iter().collect::<Vec<_>>()),
        Some(vec!["/bin/echo", "hello", "world"])
    );
    assert_eq!(p.process.exe.as_deref(), Some("/usr/bin/echo"));
    assert_eq!(p.process.cwd.as_deref(), Some("/tmp/capdir"));
    assert!(p.parent.as_ref().is_some_and(|pp| pp.pid > 0));
    assert_eq!(p.origin.provider, Provider::Auditd);
}

#[test]
fn exit_group_carries_the_code() {
    let Event::Process(p) = one("exit-3") else {
        panic!()
    };
    assert_eq!(
        p.activity,
        ProcessActivity::Exit {
            code: 3,
            signal: None,
            core_dumped: false
        }
    );
}

#[test]
fn file_changes_have_absolute_paths() {
    let Event::File(f) = one("rename") else {
        panic!()
    };
    let FileActivity::Rename { to, .. } = &f.activity else {
        panic!("{:?}", f.activity)
    };
    assert_eq!(f.file.path.as_deref(), Some("/tmp/capdir/f1"));
    assert_eq!(to.path.as_deref(), Some("/tmp/capdir/f2"));
    let Event::File(f) = one("chmod") else {
        panic!()
    };
    assert_eq!(f.activity, FileActivity::Chmod { mode: 0o640 });
    assert_eq!(f.file.path.as_deref(), Some("/tmp/capdir/f2"));
    let Event::File(f) = one("unlink") else {
        panic!()
    };
    assert_eq!(f.activity, FileActivity::Delete { directory: false });
    assert_eq!(f.file.path.as_deref(), Some("/tmp/capdir/f2"));
    let Event::File(f) = one("mkdir") else {
        panic!()
    };
    assert!(matches!(f.activity, FileActivity::Mkdir { .. }));
    assert_eq!(
        f.file.path.as_deref(),
        Some("/tmp/capdir"),
        "mkdir -p capdir in /tmp"
    );
    let Event::File(f) = one("open-read") else {
        panic!()
    };
    assert_eq!(f.file.path.as_deref(), Some("/etc/ld.so.cache"));
    assert!(matches!(f.activity, FileActivity::Open { access: 1, .. }));
    assert_eq!(
        f.file.device.map(|d| d.to_string()).as_deref(),
        Some("254:0")
    );
}

#[test]
fn a_refused_connect_has_the_address_and_error() {
    let Event::Network(n) = one("connect-refused") else {
        panic!()
    };
    assert_eq!(n.activity, NetActivity::Connect);
    assert_eq!(n.remote, Some("127.0.0.1:1".parse().expect("addr")));
    assert_eq!(n.error, Some(111));
}

#[test]
fn malformed_records_are_skipped_with_a_reason() {
    let evs = load("malformed");
    assert_eq!(evs.len(), 1);
    assert_eq!(convert(&evs[0]).err(), Some(Skip::Malformed));
    // No audit(...) header: not even assembled.
    assert!(load("no-header").is_empty());
}

#[test]
fn pam_records_become_authentication_events() {
    let rec = RawAuditRecord {
        ty: 1100,
        text: b"audit(1795574700.100:500): pid=4242 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:authentication grantors=? acct=\"mdatp-test\" exe=\"/usr/bin/pamtester\" hostname=vm addr=? terminal=pts/1 res=failed'".to_vec(),
    };
    let evs = Assembler::default().push(rec, Instant::now());
    let Ok(Event::Auth(a)) = convert(&evs[0]).map(|c| c.event) else {
        panic!("not an auth event")
    };
    assert_eq!(a.record_type, "USER_AUTH");
    assert_eq!(a.activity, AuthActivity::Logon);
    assert!(!a.success);
    assert_eq!(a.user.as_deref(), Some("mdatp-test"));
    assert_eq!(a.process.exe.as_deref(), Some("/usr/bin/pamtester"));
    assert_eq!(a.terminal.as_deref(), Some("pts/1"));
    assert_eq!(a.process.pid, 4242);
}

/// A shell trying each PATH entry makes failed execs: no EXECVE record,
/// nothing ran. Not an event (eBPF sees only execs that happened), and
/// not a loss either.
#[test]
fn a_failed_exec_is_not_reported_and_not_lost() {
    let evs = load("exec-failed");
    assert_eq!(evs.len(), 1);
    assert!(matches!(convert(&evs[0]), Err(Skip::NotReported)));
}

/// The allocation-free lookup finds what the parser's own `Body::get`
/// finds, for every field of every recorded record.
#[test]
fn field_lookup_agrees_with_the_parser() {
    let dir = format!("{}/testdata/audit", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let Some((ty, rest)) = line.split_once('\t') else {
                continue;
            };
            let rec = RawAuditRecord {
                ty: ty.parse().unwrap(),
                text: rest.as_bytes().to_vec(),
            };
            let Some(p) = parse(&rec) else { continue };
            for (k, _) in &p.body {
                let name = k.to_string();
                assert_eq!(get(&p.body, &name), p.body.get(&name), "{name} in {line}");
                checked += 1;
            }
            assert_eq!(get(&p.body, "no_such_field"), None);
        }
    }
    assert!(checked > 200, "{checked}");
}

#[test]
fn an_event_at_the_end_of_time_converts_without_overflow() {
    // Found by the fuzz replay: a header whose seconds saturate the
    // milliseconds overflowed again in ms → ns.
    let mut ev = load("exec-echo").remove(0);
    ev.time_ms = u64::MAX;
    assert!(convert(&ev).is_ok());
}

#[test]
fn a_header_time_no_kernel_writes_is_malformed_not_a_panic() {
    // Found by the fuzz replay in linux-audit-parser (1000 × seconds
    // unchecked).
    for header in [
        "audit(99999999999999999.1:7)",
        "audit(1.18446744073709551615:7)",
    ] {
        let ev = AuditEvent {
            serial: 7,
            time_ms: 0,
            records: vec![RawAuditRecord {
                ty: 1300,
                text: format!("{header}: arch=c000003e syscall=59 success=yes exit=0").into_bytes(),
            }],
            incomplete: false,
        };
        assert_eq!(convert(&ev).err(), Some(Skip::Malformed), "{header}");
    }
}

#[test]
fn the_most_negative_exit_is_an_error_not_an_overflow() {
    // The negation of exit=i64::MIN overflowed (found with the fuzzer's
    // overflow checks on the eBPF side's twin, `ret`).
    let mut ev = load("connect-refused").remove(0);
    for r in &mut ev.records {
        let text =
            String::from_utf8_lossy(&r.text).replace("exit=-111", "exit=-9223372036854775808");
        r.text = text.into_bytes();
    }
    let Event::Network(n) = convert(&ev).expect("converts").event else {
        panic!()
    };
    assert_eq!(n.error, Some(i32::MAX));
}
