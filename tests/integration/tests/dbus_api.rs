//! The D-Bus API and the `mdatp` CLI against a private dbus-daemon with
//! the shipped policy: reading for everyone, changes for root only (bus
//! policy and the daemon's own check), managed-profile locks, signals.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use mdatp_integration_tests::*;

const WAIT: Duration = Duration::from_secs(15);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn cli(bus: &PrivateBus, args: &[&str]) -> Output {
    Command::new(cli_bin())
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap()
}

fn busctl(bus: &PrivateBus, args: &[&str]) -> Output {
    Command::new("busctl")
        .arg(format!("--address={}", bus.address))
        .args(args)
        .output()
        .unwrap()
}

/// busctl arguments of SetConfig on the provider setting (value follows).
const GET_CONFIG: [&str; 6] = [
    "call",
    "org.mdatp.Sensor1",
    "/org/mdatp/Sensor1",
    "org.mdatp.Sensor1",
    "GetConfig",
    "s",
];

const SET_PROVIDER: [&str; 8] = [
    "call",
    "org.mdatp.Sensor1",
    "/org/mdatp/Sensor1",
    "org.mdatp.Sensor1",
    "SetConfig",
    "sv",
    "ebpf_supplementary_event_provider",
    "s",
];

/// SetConfig of the provider setting with busctl, as a script would.
fn set_provider_busctl(bus: &PrivateBus, value: &str) -> Output {
    let mut args = SET_PROVIDER.to_vec();
    args.push(value);
    busctl(bus, &args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn subsystem(bus: &PrivateBus) -> String {
    let o = cli(
        bus,
        &["health", "--field", "supplementary_events_subsystem"],
    );
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn wait_subsystem(bus: &PrivateBus, want: &str) {
    // A switch to eBPF loads its programs first.
    let end = std::time::Instant::now() + LOAD_WAIT;
    while std::time::Instant::now() < end {
        if subsystem(bus) == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("subsystem never became {want}");
}

struct Setup {
    bus: PrivateBus,
    dir: tempfile::TempDir,
    daemon: Daemon,
}

fn setup(policy: BusPolicy) -> Setup {
    setup_with(policy, |_| {})
}

/// `prepare` runs on the temporary tree before the daemon starts.
fn setup_with(policy: BusPolicy, prepare: impl FnOnce(&Path)) -> Setup {
    let bus = PrivateBus::start(policy);
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let daemon = start_on_bus(&bus, dir.path(), &[]);
    Setup { bus, dir, daemon }
}

#[test]
fn cli_and_busctl_read_health_and_switch_providers() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let t = setup(BusPolicy::Shipped);
    let bus = &t.bus;

    let o = cli(bus, &["health"]);
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("supplementary_events_subsystem     ebpf"),
        "{table}"
    );
    let o = cli(bus, &["health", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["healthy"], true);
    // Probed, not guessed: what the sensor's programs use is there.
    let caps = &json["kernel_capabilities"];
    for c in [
        "btf",
        "ring_buffer",
        "raw_tracepoint",
        "bpf_get_current_task_btf",
        "bpf_task_pt_regs",
    ] {
        assert_eq!(caps[c], "yes", "{c}: {caps}");
    }
    for c in ["task_storage", "fentry", "lsm"] {
        assert!(caps[c].is_string(), "{c} probed: {caps}");
    }
    assert!(
        json["active_hooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "raw tracepoint sched_process_exec")
    );
    let o = busctl(
        bus,
        &[
            "get-property",
            "org.mdatp.Sensor1",
            "/org/mdatp/Sensor1",
            "org.mdatp.Sensor1",
            "SupplementaryEventsSubsystem",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "s \"ebpf\"",
        "{}",
        text(&o)
    );

    // Signals: ProviderChanged on a switch, either way.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listen = || {
        let address = bus.address.clone();
        let signal = rt.spawn(async move {
            let conn = zbus::connection::Builder::address(address.as_str())
                .unwrap()
                .build()
                .await
                .unwrap();
            let proxy = mdatp_dbus::Sensor1Proxy::new(&conn).await.unwrap();
            use futures_util_like::next;
            let mut stream = proxy.receive_provider_changed().await.unwrap();
            let sig = next(&mut stream).await.expect("ProviderChanged");
            let args = sig.args().unwrap();
            (
                args.old().to_string(),
                args.new().to_string(),
                args.reason().to_string(),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        signal
    };
    let signal = listen();

    // Switch with the CLI.
    let o = cli(
        bus,
        &[
            "config",
            "ebpf-supplementary-event-provider",
            "--value",
            "disabled",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    wait_subsystem(bus, "auditd");
    let (old, new, reason) = rt
        .block_on(async { tokio::time::timeout(WAIT, signal).await })
        .unwrap()
        .unwrap();
    assert_eq!((old.as_str(), new.as_str()), ("ebpf", "auditd"));
    assert!(reason.contains("disabled"), "{reason}");
    assert_eq!(our_audit_rules().len(), 8);
    let local = std::fs::read_to_string(t.dir.path().join("state/local.yaml")).unwrap();
    assert!(
        local.contains("ebpf_supplementary_event_provider: disabled"),
        "{local}"
    );

    // And back with busctl: the signal comes when the programs, loaded
    // off the event loop, are attached.
    let signal = listen();
    let o = set_provider_busctl(bus, "enabled");
    assert!(o.status.success(), "{}", text(&o));
    wait_subsystem(bus, "ebpf");
    assert!(our_audit_rules().is_empty());
    let (old, new, reason) = rt
        .block_on(async { tokio::time::timeout(LOAD_WAIT, signal).await })
        .unwrap()
        .unwrap();
    assert_eq!((old.as_str(), new.as_str()), ("auditd", "ebpf"));
    assert_eq!(reason, "eBPF enabled");

    // An unprivileged user reads, but may not change: the bus policy says no.
    // (Healthy again within the minute loss is remembered: on a busy
    // host audit records can be lost around a switch, counted.)
    let user = TestUser::create("mdatp-dbus-test");
    let healthy = || {
        let o = user
            .command(&cli_bin())
            .args(["health", "--field", "healthy"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim() == "true"
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(75);
    while !healthy() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        healthy(),
        "healthy after the switch back: {}",
        health_json(bus)["health_issues"]
    );
    let o = user
        .command(&cli_bin())
        .args([
            "config",
            "ebpf-supplementary-event-provider",
            "--value",
            "disabled",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("access denied"), "{}", text(&o));
    assert_eq!(subsystem(bus), "ebpf");
    // Nor read the configuration (the shipped policy refuses GetConfig).
    let o = user
        .command(Path::new("/usr/bin/busctl"))
        .arg(format!("--address={}", bus.address))
        .args(GET_CONFIG)
        .arg("exclude.paths")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).to_lowercase().contains("access denied"),
        "{}",
        text(&o)
    );
    t.daemon.stop();
}

#[test]
fn the_daemon_checks_the_caller_even_under_a_permissive_policy() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let t = setup(BusPolicy::Permissive);
    let user = TestUser::create("mdatp-dbus-test2");
    let o = user
        .command(Path::new("/usr/bin/busctl"))
        .arg(format!("--address={}", t.bus.address))
        .args(SET_PROVIDER)
        .arg("disabled")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(
        msg.contains(&format!(
            "uid {} may read the sensor's health but not change it",
            user.uid
        )),
        "{msg}"
    );
    assert_eq!(subsystem(&t.bus), "ebpf");
    assert!(
        !t.dir.path().join("state/local.yaml").exists(),
        "nothing written"
    );
    // Nor read the configuration: its exclusions are what the sensor does
    // not watch. Root can.
    let get = |cmd: &mut Command| {
        cmd.arg(format!("--address={}", t.bus.address))
            .args(GET_CONFIG)
            .arg("exclude.paths")
            .output()
            .unwrap()
    };
    let o = get(&mut user.command(Path::new("/usr/bin/busctl")));
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!(
            "uid {} may read the sensor's health but not its configuration",
            user.uid
        )),
        "{}",
        text(&o)
    );
    let o = get(&mut Command::new("/usr/bin/busctl"));
    assert!(o.status.success(), "root reads it: {}", text(&o));
    t.daemon.stop();
}

#[test]
fn a_managed_profile_locks_its_keys_until_it_is_removed() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let t = setup(BusPolicy::Shipped);
    let managed = t.dir.path().join("etc/managed/50-mdm.yaml");
    std::fs::create_dir_all(managed.parent().unwrap()).unwrap();
    std::fs::write(&managed, "ebpf_supplementary_event_provider: disabled\n").unwrap();
    let o = busctl(
        &t.bus,
        &[
            "call",
            "org.mdatp.Sensor1",
            "/org/mdatp/Sensor1",
            "org.mdatp.Sensor1",
            "Reload",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    wait_subsystem(&t.bus, "auditd");

    let o = cli(
        &t.bus,
        &[
            "config",
            "ebpf-supplementary-event-provider",
            "--value",
            "enabled",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&format!("is managed by {}", managed.display())),
        "{}",
        text(&o)
    );
    let o = set_provider_busctl(&t.bus, "enabled");
    assert!(!o.status.success());
    assert!(text(&o).contains("managed by"), "{}", text(&o));
    assert_eq!(subsystem(&t.bus), "auditd");

    // Lift the lock: remove the profile, reload, change.
    std::fs::remove_file(&managed).unwrap();
    let o = busctl(
        &t.bus,
        &[
            "call",
            "org.mdatp.Sensor1",
            "/org/mdatp/Sensor1",
            "org.mdatp.Sensor1",
            "Reload",
        ],
    );
    assert!(o.status.success());
    // Without the profile the default (enabled) is back in force: the
    // same value again is unchanged (exit 3) and nothing is rewritten.
    let o = cli(
        &t.bus,
        &[
            "config",
            "ebpf-supplementary-event-provider",
            "--value",
            "enabled",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    wait_subsystem(&t.bus, "ebpf");

    // A daemon that is not running: one line saying so.
    t.daemon.stop();
    let o = cli(&t.bus, &["health"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("mdatpd is not running"), "{}", text(&o));
    // Usage errors exit 2.
    assert_eq!(cli(&t.bus, &["config"]).status.code(), Some(2));
}

/// The one stream helper these tests need, without a futures dependency.
mod futures_util_like {
    use std::future::poll_fn;
    use std::pin::Pin;

    pub async fn next<S: zbus::export::futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }
}

#[test]
fn diagnostic_create_writes_the_archive_without_secrets() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let secret_profile = |d: &Path| {
        let managed = d.join("etc/managed/50-mdm.yaml");
        std::fs::create_dir_all(managed.parent().unwrap()).unwrap();
        std::fs::write(
            &managed,
            "# upload token: s3cr3t-do-not-leak\nfolding: {window_ms: 1500}\n",
        )
        .unwrap();
    };
    let Setup { bus, dir, daemon } = setup_with(BusPolicy::Shipped, secret_profile);
    let managed = dir.path().join("etc/managed/50-mdm.yaml");
    let out_dir = dir.path().join("diag-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let o = cli(&bus, &["diagnostic", "create", "--path", s(&out_dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let archive = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        archive.starts_with(s(&std::fs::canonicalize(&out_dir).unwrap())),
        "{archive}"
    );
    assert!(
        Path::new(&archive)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("mdatp-diag-")
    );
    let list = Command::new("tar")
        .args(["tzf", &archive])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for f in [
        "health.json",
        "config.txt",
        "system.txt",
        "audit.txt",
        "bpf.txt",
        "daemon.log",
    ] {
        assert!(
            list.contains(&format!("mdatp-diag/{f}")),
            "{f} missing from {list}"
        );
    }
    let read = |f: &str| {
        let o = Command::new("tar")
            .args(["xzf", &archive, "-O", &format!("mdatp-diag/{f}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let health: serde_json::Value = serde_json::from_str(&read("health.json")).unwrap();
    assert_eq!(health["supplementary_events_subsystem"], "ebpf");
    assert!(read("config.txt").contains(&format!(
        "folding.window_ms = 1500  ({})  [locked by",
        managed.display()
    )));
    assert!(read("audit.txt").contains("rules keyed mdatp"));
    assert!(read("bpf.txt").contains("mdatp_exec"));
    assert!(read("daemon.log").contains("sensor running"));
    assert!(read("system.txt").contains("Linux"));
    let all = Command::new("tar")
        .args(["xzf", &archive, "-O"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&all.stdout).contains("s3cr3t-do-not-leak"),
        "a secret leaked"
    );
    // Not for everyone.
    let user = TestUser::create("mdatp-diag-test");
    let o = user
        .command(&cli_bin())
        .args(["diagnostic", "create", "--path", "/tmp"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("access denied"), "{}", text(&o));
    daemon.stop();
}

#[test]
fn events_tail_follows_the_event_file() {
    skip_unless_root!();
    let _g = serial();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let daemon = Daemon::start_with_env(
        &["--output", s(&events)],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    let o = cli(&bus, &["health", "--field", "event_sources"]);
    let sources = String::from_utf8_lossy(&o.stdout);
    assert!(
        sources.contains("process_exec=ebpf") && sources.contains("process_fork=ebpf"),
        "{sources}"
    );
    let mut tail = Command::new(cli_bin())
        .args(["events", "tail"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let out = tail.stdout.take().unwrap();
    let l2 = std::sync::Arc::clone(&lines);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(line);
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    Command::new("/bin/echo")
        .arg("tail-me")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let end = std::time::Instant::now() + WAIT;
    let seen = loop {
        let found = lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Process Activity/Launch") && l.contains("/bin/echo tail-me"));
        if found || std::time::Instant::now() > end {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(seen, "tail printed: {:#?}", lines.lock().unwrap());
    daemon.stop();
}
