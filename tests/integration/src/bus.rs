//! The D-Bus side of the tests: a private system-like bus, a test user,
//! the daemon started on the bus, and the `mdatp` CLI run against it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Daemon, mdatpd_bin};

/// The `mdatp` CLI next to mdatpd.
pub fn cli_bin() -> PathBuf {
    let bin = mdatpd_bin().with_file_name("mdatp");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

/// Which bus policy a private bus applies to org.mdatp.Sensor1.
pub enum BusPolicy {
    /// The policy file the package ships (dbus/org.mdatp.Sensor1.conf).
    Shipped,
    /// Everything allowed: only the daemon's own uid check protects.
    Permissive,
}

/// A private system-like dbus-daemon, killed on drop.
pub struct PrivateBus {
    child: Child,
    _dir: tempfile::TempDir,
    pub address: String,
}

impl PrivateBus {
    pub fn start(policy: BusPolicy) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("bus.sock");
        let shipped =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dbus/org.mdatp.Sensor1.conf");
        let service_policy = match policy {
            BusPolicy::Shipped => format!("<include>{}</include>", shipped.display()),
            BusPolicy::Permissive => r#"<policy context="default"><allow own="org.mdatp.Sensor1"/><allow send_destination="org.mdatp.Sensor1"/></policy>"#.to_string(),
        };
        let conf = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  {service_policy}
</busconfig>
"#,
            sock = sock.display()
        );
        let conf_path = dir.path().join("bus.conf");
        std::fs::write(&conf_path, conf).expect("write bus config");
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf_path.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (apt-get install dbus)");
        let end = Instant::now() + Duration::from_secs(10);
        while !sock.exists() && Instant::now() < end {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(sock.exists(), "private dbus-daemon did not start");
        PrivateBus {
            child,
            _dir: dir,
            address: format!("unix:path={}", sock.display()),
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local unprivileged account, deleted on drop.
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
}

impl TestUser {
    pub fn create(name: &'static str) -> Self {
        let _ = Command::new("userdel").arg(name).output();
        let ok = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", name])
            .status()
            .expect("useradd");
        assert!(ok.success(), "useradd {name}");
        let uid = nix::unistd::User::from_name(name)
            .expect("getpwnam")
            .expect("user exists")
            .uid
            .as_raw();
        TestUser { name, uid }
    }

    /// Gives the account a password (for PAM logins).
    pub fn set_password(&self, password: &str) {
        use std::io::Write;
        let mut p = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        p.stdin
            .take()
            .expect("stdin")
            .write_all(format!("{}:{password}\n", self.name).as_bytes())
            .expect("write");
        assert!(p.wait().expect("wait").success());
    }

    /// A command that runs as this user (setpriv from util-linux).
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.uid))
            .arg("--clear-groups")
            .arg(program);
        c
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(self.name).output();
    }
}

/// The daemon with its configuration, state, audit rules and logs under
/// `dir`, on the private bus `bus` (so the CLI can read its health).
pub fn start_on_bus(bus: &PrivateBus, dir: &std::path::Path, extra: &[&str]) -> Daemon {
    let sub = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let dirs = [
        ("--config-dir", sub("etc")),
        ("--state-dir", sub("state")),
        ("--audit-rules-dir", sub("rules.d")),
        ("--log-dir", sub("log")),
    ];
    let mut args: Vec<&str> = extra.to_vec();
    for (flag, path) in &dirs {
        args.extend([*flag, path.as_str()]);
    }
    Daemon::start_with_env(&args, &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)])
}

/// `mdatp health --output json` over the private bus.
pub fn health_json(bus: &PrivateBus) -> Value {
    let out = Command::new(cli_bin())
        .args(["health", "--output", "json"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .expect("run mdatp health");
    assert!(
        out.status.success(),
        "mdatp health: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("health JSON")
}

/// `mdatp ARGS` over the private bus.
pub fn cli_on(bus: &PrivateBus, args: &[&str]) -> std::process::Output {
    std::process::Command::new(cli_bin())
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .expect("run mdatp")
}

/// A command's stdout and stderr, for assertions and messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
