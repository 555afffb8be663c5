//! The auditd provider against the real audit subsystem: fallback with its
//! reason, our keyed rules and nobody else's, switching back and forth
//! live, events from audit records, and PAM login events.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mdatp_integration_tests::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A daemon whose audit rules file, configuration and state live under
/// `dir` (`rules.d`, `etc`, `state`), with `extra` flags.
fn start_in(dir: &Path, extra: &[&str]) -> Daemon {
    let (rules, etc, state) = (dir.join("rules.d"), dir.join("etc"), dir.join("state"));
    let mut args = vec![
        "--audit-rules-dir",
        s(&rules),
        "--config-dir",
        s(&etc),
        "--state-dir",
        s(&state),
    ];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

/// The open (create) event of `path`, written by this test process
/// before; panics with the daemon's log when it does not come.
fn create_seen(d: &Daemon, path: &str, what: &str) -> Value {
    let open = d
        .wait_event(WAIT, |v| {
            v["class_uid"] == 1001 && v["activity_id"] == 1 && at(v, "/file/path") == path
        })
        .unwrap_or_else(|| panic!("no open (create) event {what}; stderr:\n{}", d.stderr()));
    assert_eq!(
        at(&open, "/actor/process/pid"),
        u64::from(std::process::id()),
        "{open}"
    );
    open
}

#[test]
fn every_fallback_names_its_reason_and_loads_only_our_rules() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules.d");
    let debian9 = dir.path().join("os-debian9");
    std::fs::write(&debian9, "ID=debian\nVERSION_ID=\"9\"\n").unwrap();
    // A fleet-wide denylist entry for this very kernel, by configuration.
    let release = nix::sys::utsname::uname().unwrap();
    let denylist_config = dir.path().join("deny.yaml");
    std::fs::write(
        &denylist_config,
        format!(
            "ebpf_kernel_denylist: [\"{}\"]\n",
            release.release().to_string_lossy()
        ),
    )
    .unwrap();
    let ol88 = dir.path().join("os-ol88");
    std::fs::write(&ol88, "ID=\"ol\"\nVERSION_ID=\"8.8\"\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--ebpf-supplementary-event-provider", "disabled"],
            "eBPF provider disabled by configuration",
        ),
        (
            vec![
                "--test-os-release",
                s(&debian9),
                "--test-kernel-release",
                "4.9.0-8-amd64",
            ],
            "Debian kernel 4.9.0-8-amd64 is older than the minimum 4.19",
        ),
        (
            vec![
                "--test-os-release",
                s(&ol88),
                "--test-kernel-release",
                "5.15.0-0.30.20.el8uek.x86_64",
            ],
            "kernel 5.15.0-0.30.20.el8uek.x86_64 is on the eBPF denylist",
        ),
        (vec!["--test-break-program", "all"], "eBPF failed to load"),
        (
            vec!["--config", s(&denylist_config)],
            "is on the configured eBPF denylist",
        ),
    ];
    for (i, (extra, reason)) in cases.into_iter().enumerate() {
        let mut args = vec!["--audit-rules-dir", s(&rules_dir)];
        args.extend(extra);
        let d = Daemon::start(&args);
        let err = d.stderr();
        assert!(err.contains("provider=auditd"), "case {i}: {err}");
        assert!(
            err.contains(reason),
            "case {i}: reason {reason:?} not in:\n{err}"
        );
        let ours = our_audit_rules();
        assert_eq!(
            ours.len(),
            8,
            "case {i}: four rules, each for x86_64 and i386: {ours:?}"
        );
        let file = std::fs::read_to_string(rules_dir.join("mdatp.rules")).expect("rules file");
        assert!(
            file.lines().skip(1).all(|l| l.ends_with("-k mdatp")),
            "{file}"
        );
        if i == 0 {
            // Events come from the audit records, in the same model.
            let v = exec_seen(&d, "audit-provider-exec", WAIT);
            assert_eq!(provider_of(&v), "auditd");
            assert_eq!(at(&v, "/process/file/path"), "/usr/bin/echo");
            assert_eq!(at(&v, "/unmapped/process/argv/0"), "/bin/echo");
        }
        let stopped = d.stop();
        assert!(stopped.status.success());
        assert!(
            our_audit_rules().is_empty(),
            "case {i}: our rules left after shutdown"
        );
        // The file goes with them: nothing for augenrules at the next boot.
        assert!(
            !rules_dir.join("mdatp.rules").exists() && !rules_dir.join(".mdatp.rules.tmp").exists(),
            "case {i}: rules file left after shutdown"
        );
    }
}

#[test]
fn switching_live_keeps_foreign_rules_byte_for_byte() {
    skip_unless_root!();
    let _g = serial();
    let mut audit = AuditState::capture();
    audit.add_foreign(&[
        "-a",
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "chmod",
        "-F",
        "key=foreign-baseline",
    ]);
    audit.add_foreign(&["-w", "/etc/hosts", "-p", "wa", "-k", "foreign-watch"]);
    let foreign_before = audit_rules();
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules.d");
    let cfg = dir.path().join("mdatp.yaml");
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: disabled\n").unwrap();
    let d = Daemon::start(&["--config", s(&cfg), "--audit-rules-dir", s(&rules_dir)]);
    assert!(d.stderr().contains("provider=auditd"));
    let foreign_now = || {
        audit_rules()
            .into_iter()
            .filter(|r| !our_audit_rules().contains(r))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        foreign_now(),
        foreign_before,
        "foreign rules while on auditd"
    );
    assert_eq!(our_audit_rules().len(), 8);
    assert_eq!(provider_of(&exec_seen(&d, "before-switch", WAIT)), "auditd");

    // auditd -> ebpf: our rules and file go, nothing else changes.
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: enabled\n").unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_stderr("provider switched: auditd -> ebpf", LOAD_WAIT);
    assert!(our_audit_rules().is_empty());
    assert!(
        !rules_dir.join("mdatp.rules").exists(),
        "rules file removed"
    );
    assert_eq!(
        audit_rules(),
        foreign_before,
        "exactly the foreign rules remain"
    );
    assert_eq!(
        provider_of(&exec_seen(&d, "after-switch-to-ebpf", WAIT)),
        "ebpf"
    );

    // A broken file is refused; the daemon keeps running as it was.
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: maybe\n").unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_stderr("reload refused", WAIT);
    assert_eq!(
        provider_of(&exec_seen(&d, "after-bad-reload", WAIT)),
        "ebpf"
    );

    // ebpf -> auditd again.
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: disabled\n").unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_stderr("provider switched: ebpf -> auditd", WAIT);
    assert_eq!(our_audit_rules().len(), 8);
    assert_eq!(foreign_now(), foreign_before);
    assert_eq!(
        provider_of(&exec_seen(&d, "after-switch-to-auditd", WAIT)),
        "auditd"
    );
    let stopped = d.stop();
    assert!(stopped.status.success());
    assert_eq!(audit_rules(), foreign_before, "after shutdown");
    // Each activity is reported once, even across the switches.
    assert_each_exec_once(
        &stopped.events,
        &[
            "before-switch",
            "after-switch-to-ebpf",
            "after-switch-to-auditd",
        ],
    );
}

#[test]
fn foreign_rules_survive_with_auditd_running() {
    skip_unless_root!();
    let _g = serial();
    let mut audit = AuditState::capture();
    audit.add_foreign(&[
        "-a",
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "fchmod",
        "-F",
        "key=foreign-hardening",
    ]);
    let before = audit_rules();
    let mut auditd = Command::new("auditd")
        .arg("-n")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("auditd");
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mdatp.yaml");
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: disabled\n").unwrap();
    let d = Daemon::start(&[
        "--config",
        s(&cfg),
        "--audit-rules-dir",
        s(&dir.path().join("rules.d")),
    ]);
    let v = exec_seen(&d, "with-auditd-running", WAIT);
    assert_eq!(
        provider_of(&v),
        "auditd",
        "the multicast copy is read while auditd owns the log"
    );
    let foreign = || {
        let ours = our_audit_rules();
        audit_rules()
            .into_iter()
            .filter(|r| !ours.contains(r))
            .collect::<Vec<_>>()
    };
    assert_eq!(foreign(), before);
    for (setting, switched) in [
        ("enabled", "auditd -> ebpf"),
        ("disabled", "ebpf -> auditd"),
    ] {
        std::fs::write(
            &cfg,
            format!("ebpf_supplementary_event_provider: {setting}\n"),
        )
        .unwrap();
        d.signal(Signal::SIGHUP);
        d.wait_stderr(&format!("provider switched: {switched}"), LOAD_WAIT);
        assert_eq!(
            foreign(),
            before,
            "foreign rules after the switch {switched}"
        );
    }
    d.stop();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(auditd.id() as i32),
        Signal::SIGTERM,
    );
    let _ = auditd.wait();
    assert_eq!(
        audit_rules(),
        before,
        "foreign rules byte-for-byte after shutdown"
    );
}

fn pam_authenticate(user: &str, password: &str) -> bool {
    let mut p = Command::new("pamtester")
        .args(["login", user, "authenticate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pamtester (apt-get install pamtester)");
    use std::io::Write;
    p.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    p.wait().unwrap().success()
}

#[test]
fn pam_logins_are_authentication_events_in_both_modes() {
    skip_unless_root!();
    let _g = serial();
    let audit = AuditState::capture();
    // PAM's records reach the kernel only while auditing is on.
    audit.set_enabled(1);
    let user = TestUser::create("mdatp-login-test");
    user.set_password("S3cret-pw1");
    let dir = tempfile::tempdir().unwrap();
    for mode in ["enabled", "disabled"] {
        let d = Daemon::start(&[
            "--ebpf-supplementary-event-provider",
            mode,
            "--audit-rules-dir",
            s(&dir.path().join("rules.d")),
        ]);
        assert!(pam_authenticate(user.name, "S3cret-pw1"));
        assert!(!pam_authenticate(user.name, "wrong-password"));
        let auth = |status: &'static str| {
            d.wait_event(WAIT, move |v| {
                v["class_uid"] == 3002
                    && at(v, "/user/name") == "mdatp-login-test"
                    && at(v, "/status") == status
            })
            .unwrap_or_else(|| panic!("{mode}: no {status} login event; stderr:\n{}", d.stderr()))
        };
        let ok = auth("Success");
        assert_eq!(at(&ok, "/unmapped/audit_type"), "USER_AUTH");
        assert_eq!(at(&ok, "/activity_name"), "Logon");
        assert_eq!(at(&ok, "/type_uid"), 300201);
        assert_eq!(at(&ok, "/actor/process/file/path"), "/usr/bin/pamtester");
        assert_eq!(at(&ok, "/unmapped/pam_op"), "PAM:authentication");
        let failed = auth("Failure");
        assert_eq!(at(&failed, "/status_id"), 2);
        d.stop();
    }
    assert!(our_audit_rules().is_empty());
}

/// Immutable audit (enabled 2) cannot be undone without a reboot, so the
/// status value is injected; the real immutable test belongs in the VM
/// test of the packaging work.
#[test]
fn immutable_audit_is_reported_with_the_remedy_and_the_daemon_keeps_running() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules.d");
    // auditd provider: rules cannot be loaded.
    let d = Daemon::start(&[
        "--ebpf-supplementary-event-provider",
        "disabled",
        "--test-audit-enabled",
        "2",
        "--audit-rules-dir",
        s(&rules_dir),
    ]);
    let err = d.stderr();
    assert!(err.contains("provider=auditd"), "{err}");
    assert!(err.contains("rules=not loaded"), "{err}");
    assert!(
        err.contains("immutable (enabled 2)") && err.contains("reboot"),
        "{err}"
    );
    assert!(
        our_audit_rules().is_empty(),
        "nothing loaded in immutable mode"
    );
    assert!(!rules_dir.join("mdatp.rules").exists());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        d.stop().status.success(),
        "kept running until asked to stop"
    );

    // eBPF provider with our rules left over from an earlier run: they
    // cannot be removed; the remedy is logged and eBPF runs anyway.
    let mut audit = AuditState::capture();
    audit.add_foreign(&[
        "-a",
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "fchmodat",
        "-F",
        "key=mdatp",
    ]);
    let d = Daemon::start(&[
        "--test-audit-enabled",
        "2",
        "--audit-rules-dir",
        s(&rules_dir),
    ]);
    let err = d.stderr();
    assert!(err.contains("provider=ebpf"), "{err}");
    assert!(
        err.contains("stay loaded until reboot") && err.contains("remove"),
        "{err}"
    );
    assert_eq!(
        our_audit_rules().len(),
        1,
        "left in place, as immutable mode would"
    );
    assert_eq!(provider_of(&exec_seen(&d, "immutable-ebpf", WAIT)), "ebpf");
    d.stop();
}

#[test]
fn a_refused_program_moves_exactly_its_kinds_to_audit() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let (rules_dir, etc) = (dir.path().join("rules.d"), dir.path().join("etc"));
    // Every open program refused by the kernel (a hook that does not exist).
    let mut broken = vec![];
    for p in ["mdatp_openat", "mdatp_open", "mdatp_creat", "mdatp_openat2"] {
        broken.extend(["--test-break-program", p]);
    }
    let d = start_in(dir.path(), &broken);
    let err = d.stderr();
    assert!(err.contains("provider=ebpf+auditd"), "{err}");
    assert!(err.contains("audit_kinds=[file_open]"), "{err}");
    // One rule of ours per ABI, for opens only; the rules file says the same.
    let listed = auditctl(&["-l"]);
    let ours: Vec<&str> = listed.lines().filter(|l| l.contains("key=mdatp")).collect();
    assert_eq!(ours.len(), 2, "{listed}");
    assert!(
        ours.iter()
            .all(|r| r.contains("openat") && !r.contains("unlink") && !r.contains("execve")),
        "{listed}"
    );
    let file = std::fs::read_to_string(rules_dir.join("mdatp.rules")).unwrap();
    assert_eq!(
        file.lines().filter(|l| l.starts_with("-a")).count(),
        2,
        "{file}"
    );

    // An open comes from audit, the delete of the same file from eBPF.
    let f = dir.path().join("mixed-open");
    std::fs::write(&f, b"x").unwrap();
    std::fs::remove_file(&f).unwrap();
    let path = s(&f).to_string();
    let open = create_seen(&d, &path, "from audit");
    assert_eq!(provider_of(&open), "auditd", "{open}");
    let delete = d
        .wait_event(WAIT, |v| {
            v["class_uid"] == 1001 && v["activity_id"] == 4 && at(v, "/file/path") == path.as_str()
        })
        .unwrap_or_else(|| panic!("no delete event; stderr:\n{}", d.stderr()));
    assert_eq!(provider_of(&delete), "ebpf", "{delete}");
    // Exactly one event per action: no kind is served twice.
    let opens = d
        .events()
        .iter()
        .filter(|v| v["class_uid"] == 1001 && at(v, "/file/path") == path.as_str())
        .count();
    assert_eq!(opens, 2, "{:#?}", d.events());

    // A switch to audit and back lifts the refusal (the test flag holds for
    // the first load): opens come from eBPF again and our rules go.
    let dropin = etc.join("conf.d/50-provider.yaml");
    std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    std::fs::write(&dropin, "ebpf_supplementary_event_provider: disabled\n").unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_stderr("provider switched: ebpf -> auditd", WAIT);
    std::fs::remove_file(&dropin).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_stderr("provider switched: auditd -> ebpf", LOAD_WAIT);
    assert!(
        !auditctl(&["-l"]).contains("key=mdatp"),
        "every kind is eBPF's again: no rule of ours"
    );
    let f2 = dir.path().join("lifted-open");
    std::fs::write(&f2, b"x").unwrap();
    let open = create_seen(&d, s(&f2), "after the switch");
    assert_eq!(provider_of(&open), "ebpf", "{open}");
    d.stop();
    let after = auditctl(&["-l"]);
    assert!(!after.contains("key=mdatp"), "rules left behind:\n{after}");
}

/// The 64-bit system call programs run only through the dispatcher on
/// the raw sys_exit tracepoint: when the kernel refuses it, every file
/// and network kind goes to audit (said, with the reason) instead of
/// being counted as served by programs that never run; process events
/// stay eBPF's.
#[test]
fn a_refused_dispatcher_moves_every_file_and_network_kind_to_audit() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let d = start_in(dir.path(), &["--test-break-program", "mdatp_sys_exit"]);
    let err = d.stderr();
    assert!(err.contains("provider=ebpf+auditd"), "{err}");
    assert!(
        err.contains("are not entered: their dispatcher mdatp_sys_exit failed"),
        "{err}"
    );
    let kinds = err
        .split("audit_kinds=[")
        .nth(1)
        .and_then(|t| t.split(']').next())
        .unwrap_or_else(|| panic!("no audit_kinds: {err}"));
    for k in [
        "file_open",
        "file_delete",
        "file_rename",
        "file_chmod",
        "network_connect",
        "network_bind",
    ] {
        assert!(kinds.contains(k), "{k} not in audit_kinds=[{kinds}]");
    }
    assert!(!kinds.contains("process_exec"), "{kinds}");

    let f = dir.path().join("dispatcher-open");
    std::fs::write(&f, b"x").unwrap();
    let open = create_seen(&d, s(&f), "with the dispatcher refused");
    assert_eq!(provider_of(&open), "auditd", "{open}");
    assert_eq!(
        provider_of(&exec_seen(&d, "dispatcher-refused", WAIT)),
        "ebpf"
    );
    d.stop();
    let after = auditctl(&["-l"]);
    assert!(!after.contains("key=mdatp"), "rules left behind:\n{after}");
}

/// 200,000 arguments: one exec spread over hundreds of EXECVE records.
/// Its event comes with the real argc, the arguments up to the bound and
/// the truncation flag, and the next exec is reported at once (the
/// conversion is linear: a quadratic one held the loop for seconds).
#[test]
fn an_exec_with_200k_arguments_is_bounded_and_does_not_stall_the_sensor() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules.d");
    let d = Daemon::start_on_audit(&rules_dir);
    let mut big = Command::new("/bin/true");
    big.arg("mdatp-many-args")
        .args(std::iter::repeat_n("x", 200_000));
    // The argument pages count against a quarter of the stack limit.
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        big.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256 << 20,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_STACK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert!(big.status().unwrap().success());
    // The next exec within 5 s (the quadratic conversion took ~14 s).
    assert!(
        Command::new("/bin/echo")
            .arg("after-the-big-one")
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let v = d
        .wait_event(Duration::from_secs(5), |v| {
            is_exec(v) && at(v, "/unmapped/process/argv/1") == "after-the-big-one"
        })
        .unwrap_or_else(|| panic!("the next exec was not reported within 5 s"));
    let big = d
        .events()
        .into_iter()
        .find(|e| is_exec(e) && at(e, "/unmapped/process/argv/1") == "mdatp-many-args")
        .unwrap_or_else(|| panic!("no event for the big exec; stderr:\n{}", d.stderr()));
    assert_eq!(at(&big, "/unmapped/process/argc"), 200_002);
    assert_eq!(at(&big, "/unmapped/process/argv_truncated"), true);
    let kept = at(&big, "/unmapped/process/argv").as_array().unwrap();
    assert!(kept.len() > 100 && kept.len() < 4096, "{}", kept.len());
    assert!(kept[2..].iter().all(|a| a == "x"));
    assert_eq!(provider_of(&v), "auditd");
    d.stop();
}
