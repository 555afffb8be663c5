//! Process events from the real eBPF programs on the running kernel:
//! exec/fork/exit content, argv bounds, cache seeding, program isolation,
//! and detaching on shutdown.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use mdatp_integration_tests::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn me() -> u64 {
    u64::from(std::process::id())
}

#[test]
fn exec_fork_and_exit_carry_exact_fields() {
    skip_unless_root!();
    let _g = serial();
    let d = Daemon::start(&[]);

    let child = Command::new("/bin/sh")
        .args(["-c", "exec /bin/echo hello world"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let pid = u64::from(child.id());
    let status = child.wait_with_output().expect("wait").status;
    assert!(status.success());

    let exec = d
        .wait_event(WAIT, |v| {
            is_exec(v) && at(v, "/process/pid") == pid && at(v, "/process/name") == "echo"
        })
        .unwrap_or_else(|| {
            panic!(
                "no exec event of /bin/echo (pid {pid}); stderr:\n{}",
                d.stderr()
            )
        });
    let echo = std::fs::canonicalize("/bin/echo").expect("canonicalize /bin/echo");
    assert_eq!(
        at(&exec, "/process/file/path"),
        echo.to_str().expect("utf8")
    );
    assert_eq!(
        at(&exec, "/unmapped/process/argv"),
        &serde_json::json!(["/bin/echo", "hello", "world"])
    );
    assert_eq!(at(&exec, "/unmapped/process/argv_truncated"), false);
    assert_eq!(at(&exec, "/unmapped/process/argc"), 3);
    assert_eq!(at(&exec, "/process/cmd_line"), "/bin/echo hello world");
    // exec keeps the pid; the parent is this test process.
    assert_eq!(at(&exec, "/process/parent_process/pid"), me());
    assert_eq!(at(&exec, "/actor/process/pid"), me());
    let uid = nix::unistd::getuid().as_raw().to_string();
    assert_eq!(at(&exec, "/process/user/uid"), uid.as_str());
    assert_eq!(
        at(&exec, "/unmapped/process/cwd"),
        std::env::current_dir()
            .expect("cwd")
            .to_str()
            .expect("utf8")
    );
    assert_eq!(at(&exec, "/unmapped/provider"), "ebpf");
    assert_eq!(at(&exec, "/type_uid"), 100701);
    // The same process keeps the same entity id from exec to exit.
    let entity = at(&exec, "/process/uid").clone();
    assert!(
        entity.as_str().is_some_and(|s| s.len() == 36),
        "entity id {entity}"
    );

    let fork = d
        .wait_event(WAIT, |v| is_fork(v) && at(v, "/process/pid") == pid)
        .expect("fork event of the spawned shell");
    assert_eq!(at(&fork, "/actor/process/pid"), me());
    assert_eq!(at(&fork, "/process/parent_process/pid"), me());
    assert_eq!(at(&fork, "/process/uid"), &entity);

    let exit = d
        .wait_event(WAIT, |v| is_exit(v) && at(v, "/process/pid") == pid)
        .expect("exit event of echo");
    assert_eq!(at(&exit, "/exit_code"), 0);
    assert_eq!(at(&exit, "/process/uid"), &entity);
    assert_eq!(
        at(&exit, "/process/file/path"),
        echo.to_str().expect("utf8")
    );

    // exit code 3
    let child = Command::new("/bin/sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("spawn");
    let pid3 = u64::from(child.id());
    assert_eq!(
        child.wait_with_output().expect("wait").status.code(),
        Some(3)
    );
    let exit3 = d
        .wait_event(WAIT, |v| is_exit(v) && at(v, "/process/pid") == pid3)
        .expect("exit event of sh -c 'exit 3'");
    assert_eq!(at(&exit3, "/exit_code"), 3);
    assert_eq!(at(&exit3, "/unmapped/exit_signal"), &Value::Null);

    // killed by SIGKILL
    let mut sleeper = Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let spid = u64::from(sleeper.id());
    d.wait_event(WAIT, |v| is_exec(v) && at(v, "/process/pid") == spid)
        .expect("exec of sleep");
    sleeper.kill().expect("SIGKILL sleep");
    assert_eq!(sleeper.wait().expect("wait").signal(), Some(9));
    let killed = d
        .wait_event(WAIT, |v| is_exit(v) && at(v, "/process/pid") == spid)
        .expect("exit event of the killed sleep");
    assert_eq!(at(&killed, "/unmapped/exit_signal"), 9);
    assert_eq!(at(&killed, "/exit_code"), 0);

    let stopped = d.stop();
    assert!(
        stopped.status.success(),
        "mdatpd exit status {}",
        stopped.status
    );
}

#[test]
fn argv_over_the_bound_is_flagged_and_clean() {
    skip_unless_root!();
    let _g = serial();
    let d = Daemon::start(&[]);
    // 100 arguments of 60 bytes: 6,100 bytes of argument area > 4,096.
    let args: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "x".repeat(57)))
        .collect();
    let child = Command::new("/bin/echo")
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn echo");
    let pid = u64::from(child.id());
    child.wait_with_output().expect("wait");
    let exec = d
        .wait_event(WAIT, |v| is_exec(v) && at(v, "/process/pid") == pid)
        .expect("exec of the long echo");
    assert_eq!(at(&exec, "/unmapped/process/argv_truncated"), true);
    assert_eq!(at(&exec, "/unmapped/process/argc"), 101);
    let got: Vec<String> =
        serde_json::from_value(at(&exec, "/unmapped/process/argv").clone()).expect("argv strings");
    let mut expected = vec!["/bin/echo".to_string()];
    expected.extend(args);
    let bytes: usize = got.iter().map(|a| a.len() + 1).sum();
    assert!(
        bytes <= 4096 + 1,
        "argv carries {bytes} bytes, over the bound"
    );
    assert!(got.len() < expected.len());
    let last = got.len() - 1;
    assert_eq!(
        got[..last],
        expected[..last],
        "complete arguments are exact"
    );
    assert!(
        expected[last].starts_with(&got[last]),
        "the cut argument {:?} is a prefix of {:?}",
        got[last],
        expected[last]
    );
    d.stop();
}

#[test]
fn a_process_started_before_the_daemon_is_known_as_parent() {
    skip_unless_root!();
    let _g = serial();
    let mut shell = Command::new("/bin/sh")
        .args(["-c", "read line; /bin/echo seeded-child; exit 0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn shell");
    let shell_pid = u64::from(shell.id());
    let shell_exe = std::fs::read_link(format!("/proc/{shell_pid}/exe")).expect("shell exe");
    // Let the shell exec and block in `read` before the daemon starts.
    std::thread::sleep(Duration::from_millis(200));

    let d = Daemon::start(&[]);
    shell
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("release shell");
    shell.wait().expect("wait shell");
    let exec = d
        .wait_event(WAIT, |v| {
            is_exec(v) && at(v, "/process/parent_process/pid") == shell_pid
        })
        .expect("exec of the shell's child");
    assert_eq!(
        at(&exec, "/unmapped/process/argv"),
        &serde_json::json!(["/bin/echo", "seeded-child"])
    );
    assert_eq!(
        at(&exec, "/process/parent_process/file/path"),
        shell_exe.to_str().expect("utf8")
    );
    assert_eq!(
        at(&exec, "/process/parent_process/cmd_line"),
        "/bin/sh -c read line; /bin/echo seeded-child; exit 0"
    );
    d.stop();
}

#[test]
fn a_refused_program_is_reported_and_the_others_keep_running() {
    skip_unless_root!();
    let _g = serial();
    let d = Daemon::start(&["--test-break-program", "mdatp_fork"]);
    let err = d.stderr();
    assert!(
        err.contains(
            "eBPF program mdatp_fork on raw tracepoint mdatp_nonexistent_sched_process_fork failed"
        ),
        "stderr:\n{err}"
    );
    let child = Command::new("/bin/true").spawn().expect("spawn true");
    let pid = u64::from(child.id());
    child.wait_with_output().expect("wait");
    d.wait_event(WAIT, |v| is_exec(v) && at(v, "/process/pid") == pid)
        .expect("exec events still arrive");
    d.wait_event(WAIT, |v| is_exit(v) && at(v, "/process/pid") == pid)
        .expect("exit events still arrive");
    // Forks have no audit record: with their program refused they come
    // from the netlink process connector (no blind spot), never from eBPF.
    d.wait_event(WAIT, |v| {
        is_fork(v)
            && at(v, "/process/pid") == pid
            && at(v, "/unmapped/provider") == "proc_connector"
    })
    .expect("fork events come from the process connector");
    assert!(
        !d.events()
            .iter()
            .any(|v| is_fork(v) && at(v, "/unmapped/provider") == "ebpf"),
        "fork program was not attached"
    );
    d.stop();
}

#[test]
fn every_program_is_detached_after_shutdown() {
    skip_unless_root!();
    let _g = serial();
    let ours = |names: &[String]| {
        names
            .iter()
            .filter(|n| n.starts_with("mdatp_"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let before = our_bpf_programs_settled();
    let d = Daemon::start(&[]);
    let running = ours(&loaded_bpf_program_names());
    for p in [
        "mdatp_exec",
        "mdatp_fork",
        "mdatp_exit",
        "mdatp_openat",
        "mdatp_connect",
    ] {
        assert!(
            running.iter().any(|n| n == p),
            "{p} loaded while running: {running:?}"
        );
    }
    let stopped = d.stop();
    let err = stopped.stderr;
    assert!(stopped.status.success(), "exit status {}", stopped.status);
    let attached = running.len() - before.len();
    assert!(
        err.contains(&format!("stopped: {attached} hooks detached")),
        "stderr:\n{err}"
    );
    assert_eq!(our_bpf_programs_settled(), before, "programs left behind");
    // Same after SIGINT.
    let d = Daemon::start(&[]);
    d.signal(Signal::SIGINT);
    d.wait_stderr("stopped:", WAIT);
    assert_eq!(
        our_bpf_programs_settled(),
        before,
        "programs left behind after SIGINT"
    );
}
