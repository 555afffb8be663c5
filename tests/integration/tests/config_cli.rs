//! `mdatp config` for automation, against the real daemon on a private
//! bus: `get` names the value's source and lock; `--check` says whether a
//! change would be made and changes nothing; the exit status tells
//! changed (0), unchanged (3: nothing written, nothing reloaded) and
//! refused (1: locked, unknown, invalid); `--output json` for scripts;
//! reading the configuration stays root only.

use std::time::Duration;

use mdatp_integration_tests::{
    BusPolicy, PrivateBus, TestUser, cli_on, output_text, say_skipped, serial, start_on_bus,
};

macro_rules! skip_unless_root {
    () => {
        if !mdatp_integration_tests::is_root() {
            say_skipped();
            return;
        }
    };
}

#[test]
fn get_check_and_set_tell_changed_unchanged_and_refused() {
    skip_unless_root!();
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let managed = d.path().join("etc/managed/50-fleet.yaml");
    std::fs::create_dir_all(managed.parent().unwrap()).unwrap();
    std::fs::write(&managed, "folding:\n  window_ms: 2000\n").unwrap();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let _daemon = start_on_bus(&bus, d.path(), &[]);
    let local = d.path().join("state/local.yaml");
    let run = |args: &[&str]| {
        let o = cli_on(&bus, args);
        (o.status.code(), output_text(&o))
    };

    let (code, out) = run(&["config", "get", "folding.enabled"]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), "folding.enabled = true (default)")
    );
    let (code, out) = run(&["config", "get", "folding.window-ms"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("= 2000") && out.contains(&format!("[locked by {}]", managed.display())),
        "{out}"
    );

    // --check: would change, and nothing changed.
    let (code, out) = run(&["config", "folding.enabled", "--value", "false", "--check"]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), "folding.enabled: true -> false (would change)")
    );
    assert!(!local.exists(), "--check wrote local.yaml");
    let (_, out) = run(&["config", "get", "folding.enabled"]);
    assert!(out.contains("= true (default)"), "{out}");

    // The change, then the same change again: unchanged, exit 3.
    let (code, out) = run(&["config", "folding.enabled", "--value", "false"]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), "folding.enabled: true -> false (changed)")
    );
    let (code, out) = run(&["config", "get", "folding.enabled", "--output", "json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["value"], false, "{v}");
    assert_eq!(v["source"], local.display().to_string(), "{v}");
    assert_eq!(v["key"], "folding.enabled");
    let written = std::fs::metadata(&local).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let (code, out) = run(&[
        "config",
        "folding.enabled",
        "--value",
        "false",
        "--output",
        "json",
    ]);
    assert_eq!(code, Some(3), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["changed"], false, "{v}");
    assert_eq!(
        std::fs::metadata(&local).unwrap().modified().unwrap(),
        written,
        "an unchanged value rewrote local.yaml"
    );
    let (code, _) = run(&["config", "folding.enabled", "--value", "false", "--check"]);
    assert_eq!(code, Some(3));

    // Refused: locked, unknown, invalid — exit 1, naming why, no change.
    let (code, out) = run(&["config", "folding.window-ms", "--value", "100", "--check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("managed by") && out.contains("50-fleet.yaml"),
        "{out}"
    );
    let (code, out) = run(&["config", "no-such-key", "--value", "1"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("no_such_key: not a configuration key"),
        "{out}"
    );
    let (code, out) = run(&["config", "folding.enabled", "--value", "banana", "--check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("folding.enabled"), "{out}");
    let (_, out) = run(&["config", "get", "folding.enabled"]);
    assert!(out.contains("= false"), "{out}");

    // The configuration (the exclusions are an attacker's map) is root's.
    let user = TestUser::create("mdatp-cfg");
    let o = user
        .command(&mdatp_integration_tests::cli_bin())
        .args(["config", "get", "exclude.paths"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("access denied"),
        "{}",
        output_text(&o)
    );
}
