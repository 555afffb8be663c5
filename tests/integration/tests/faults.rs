//! Faults around the sensor that must not stop its events: a hanging
//! auditctl (a wedged audit netlink, a stuck auditd).

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdatp_integration_tests::*;
use nix::sys::signal::Signal;

/// Runs `/bin/echo tag` and returns how long its exec event took.
fn exec_latency(d: &Daemon, tag: &str) -> Option<Duration> {
    let t = Instant::now();
    Command::new("/bin/echo")
        .arg(tag)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    d.wait_event(Duration::from_secs(10), |v| {
        is_exec(v) && at(v, "/unmapped/process/argv/1") == tag
    })
    .map(|_| t.elapsed())
}

#[test]
fn a_hanging_auditctl_never_holds_the_events() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("hang");
    let wrapper = dir.path().join("auditctl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ -e {} ] && exec sleep 600\nexec auditctl \"$@\"\n",
            mark.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("mdatp.yaml");
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: enabled\n").unwrap();
    let d = Daemon::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--audit-rules-dir",
        dir.path().join("rules.d").to_str().unwrap(),
        "--test-auditctl",
        wrapper.to_str().unwrap(),
    ]);
    std::fs::write(&mark, b"").unwrap();
    // 12 s: the periodic audit status read (every 10 s) hangs meanwhile.
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(12);
    let mut i = 0;
    while Instant::now() < until {
        let l = exec_latency(&d, &format!("hung-auditctl-{i}"))
            .unwrap_or_else(|| panic!("exec {i} not reported; stderr:\n{}", d.stderr()));
        worst = worst.max(l);
        i += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        worst < Duration::from_secs(1),
        "an exec took {worst:?} to arrive"
    );
    // A switch to the audit subsystem needs auditctl: it fails within its
    // timeout, says why, and the sensor stays on eBPF.
    std::fs::write(&cfg, "ebpf_supplementary_event_provider: disabled\n").unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_stderr("did not finish within 5 s", Duration::from_secs(20));
    d.wait_stderr("staying on eBPF", Duration::from_secs(20));
    let l = exec_latency(&d, "after-the-failed-switch").expect("events after the failed switch");
    assert!(l < Duration::from_secs(2), "{l:?}");
    std::fs::remove_file(&mark).unwrap();
    let stopped = d.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert!(
        our_audit_rules().is_empty(),
        "no rule of ours is left: {:?}",
        our_audit_rules()
    );
}

/// An NSS module whose passwd lookups take 3 s for uids from 4,242,000:
/// a dead LDAP or SSSD server, as the daemon's user-name lookups see it.
const SLOW_NSS: &str = r#"
#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <unistd.h>
enum nss_status _nss_mdatpslow_getpwuid_r(uid_t uid, struct passwd *pw, char *buf,
                                          size_t len, int *err) {
    (void)pw; (void)buf; (void)len;
    if (uid >= 4242000 && uid < 4243000)
        sleep(3);
    *err = ENOENT;
    return NSS_STATUS_NOTFOUND;
}
"#;

/// The daemon in a private mount namespace whose /etc/nsswitch.conf asks
/// the slow module after the files: the host's own file is not touched.
#[test]
fn a_slow_user_directory_never_holds_the_events() {
    skip_unless_root!();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("slow.c");
    std::fs::write(&src, SLOW_NSS).unwrap();
    let lib = dir.path().join("libnss_mdatpslow.so.2");
    let cc = Command::new("clang-19")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("clang-19 (installed by scripts/dev.sh setup)");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let host = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let mut ours: String = host
        .lines()
        .filter(|l| !l.trim_start().starts_with("passwd:"))
        .map(|l| format!("{l}\n"))
        .collect();
    ours.push_str("passwd: files mdatpslow\n");
    let nss = dir.path().join("nsswitch.conf");
    std::fs::write(&nss, ours).unwrap();
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/nsswitch.conf && exec \"$@\"",
        nss.to_str().unwrap(),
    ];
    let libdir = dir.path().to_str().unwrap();
    // The module is slow where the daemon looks (else this proves nothing).
    let t = Instant::now();
    let probe = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .args(["getent", "passwd", "4242999"])
        .env("LD_LIBRARY_PATH", libdir)
        .output()
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(3),
        "the slow module was not used ({:?}): {}",
        t.elapsed(),
        String::from_utf8_lossy(&probe.stderr)
    );
    let d = Daemon::start_wrapped(&wrapper, &[], &[("LD_LIBRARY_PATH", libdir)]);
    // 40 processes, each of a new slow uid, between root's execs.
    let mut worst = Duration::ZERO;
    for i in 0..40u32 {
        use std::os::unix::process::CommandExt;
        Command::new("/bin/true")
            .arg(format!("slow-uid-{i}"))
            .uid(4_242_000 + i)
            .status()
            .unwrap();
        let l = exec_latency(&d, &format!("root-between-{i}"))
            .unwrap_or_else(|| panic!("exec {i} not reported; stderr:\n{}", d.stderr()));
        worst = worst.max(l);
    }
    assert!(
        worst < Duration::from_secs(1),
        "an exec took {worst:?} to arrive"
    );
    let slow: Vec<_> = d
        .events()
        .into_iter()
        .filter(|v| {
            is_exec(v)
                && at(v, "/process/cmd_line")
                    .as_str()
                    .is_some_and(|c| c.contains("slow-uid-"))
        })
        .collect();
    assert_eq!(slow.len(), 40, "every slow uid's exec is reported");
    for v in &slow {
        let uid: u32 = at(v, "/process/user/uid")
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((4_242_000..4_242_040).contains(&uid), "{v}");
    }
    // Root's name is still known: its lookup never waited behind them.
    let root = d
        .wait_event(Duration::from_secs(5), |v| {
            is_exec(v) && at(v, "/unmapped/process/argv/1") == "root-between-39"
        })
        .unwrap();
    assert_eq!(at(&root, "/process/user/name"), "root", "{root}");
    let stopped = d.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
}

/// A FUSE filesystem that answers everyone but the sensor (hangfs.py),
/// mounted a moment before the events, under an excluded directory, and
/// holding the file a process runs at an excluded executable's path (a
/// bind mount in its own namespace). Deciding those exclusions means
/// looking at the file; the sensor must do it without asking the
/// filesystem, or skip it and report the event.
#[test]
fn a_hung_fuse_filesystem_never_holds_the_events() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    hung_fuse("enabled");
    hung_fuse("disabled");
}

/// Under eBPF the kernel names the file by its real path, so a change
/// under the excluded directory is excluded without a lookup; under the
/// audit subsystem the path comes from the record and is checked for
/// symlinks above it — not on a filesystem that could hang (one mounted
/// a moment ago included), so it is reported.
fn hung_fuse(provider: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let (excluded, bin) = (p("excluded"), p("bin"));
    let mnt = excluded.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("x-excluded");
    std::fs::copy("/bin/dash", &tool).unwrap();
    let cfg = p("mdatp.yaml");
    std::fs::write(
        &cfg,
        format!(
            "exclude:\n  paths: [{}]\n  processes: [{}]\n",
            excluded.display(),
            tool.display()
        ),
    )
    .unwrap();
    let rules = p("rules.d");
    let d = Daemon::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--ebpf-supplementary-event-provider",
        provider,
        "--audit-rules-dir",
        rules.to_str().unwrap(),
    ]);
    // A change under the excluded directory before the mount: the sensor
    // reads its mount table for it, so the FUSE mount below is one it
    // learns of as a change, not at a first read.
    std::fs::write(excluded.join("before"), "x").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid_file = p("sensor.pid");
    std::fs::write(&pid_file, d.pid().to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("faults/hangfs.py");
    // Debian's python, where python3-fusepy is.
    let server = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(&mnt)
        .arg(&pid_file)
        .arg("/bin/dash")
        .spawn()
        .expect("python3 with fusepy (installed by scripts/dev.sh setup)");
    // On every way out: SIGKILL closes /dev/fuse, which aborts the
    // connection and fails what waits on it (a sensor stuck in a request
    // included), then the mount goes.
    struct Server<'a>(std::process::Child, &'a std::path::Path);
    impl Drop for Server<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = Command::new("umount").arg("-l").arg(self.1).status();
        }
    }
    let server = Server(server, &mnt);
    let mounted = wait_until(Duration::from_secs(10), || mnt.join("f").exists());
    assert!(mounted, "hangfs did not mount at {}", mnt.display());

    // 1. Files changed on it, under the excluded directory.
    for i in 0..5 {
        std::fs::write(mnt.join("f"), format!("{i}\n")).unwrap();
    }
    // 2. A process running the FUSE file at the excluded tool's path.
    let out = p("written-by-impostor");
    // It stays alive while the sensor looks at it (sleep, a child).
    let mut impostor = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" \"$1\" && exec \"$1\" -c \"echo x > $2; /bin/sleep 4\"")
        .arg(mnt.join("prog"))
        .arg(&tool)
        .arg(&out)
        .spawn()
        .unwrap();
    let mut worst = Duration::ZERO;
    for i in 0..10 {
        let l = exec_latency(&d, &format!("after-fuse-{i}"))
            .unwrap_or_else(|| panic!("exec {i} not reported; stderr:\n{}", d.stderr()));
        worst = worst.max(l);
        std::thread::sleep(Duration::from_millis(200));
    }
    let hits = std::fs::read_to_string(p("sensor.pid.hit")).unwrap_or_default();
    assert!(
        worst < Duration::from_secs(1),
        "an exec took {worst:?}; sensor requests to the FUSE fs: {hits:?}"
    );
    assert!(
        hits.is_empty(),
        "the sensor asked the hung filesystem {} times",
        hits.lines().count()
    );
    let f = mnt.join("f");
    let on_fuse = d.wait_event(Duration::from_secs(5), |v| {
        is_file_event(v) && at(v, "/file/path") == f.to_str().unwrap()
    });
    assert_eq!(
        on_fuse.is_some(),
        provider == "disabled",
        "{provider}: the change under the excluded directory on FUSE: {on_fuse:?}"
    );
    let by_impostor = d.wait_event(Duration::from_secs(5), |v| {
        is_file_event(v) && at(v, "/file/path") == out.to_str().unwrap()
    });
    assert!(
        by_impostor.is_some_and(
            |v| at(&v, "/actor/process/file/path") == tool.to_str().unwrap()
                || at(&v, "/process/file/path") == tool.to_str().unwrap()
        ),
        "{provider}: the impostor's write is not reported as the excluded tool's"
    );
    assert!(impostor.wait().unwrap().success());
    drop(server);
    let stopped = d.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
}
