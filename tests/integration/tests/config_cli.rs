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

/// What the Ansible role and the Puppet module do with a managed profile:
/// `mdatpd validate --as` checks the rendered file in the place it will
/// take, before it replaces the one in force; `mdatp config in-force`
/// says whether the running sensor applies all of it — not before the
/// reload, yes after it, and no (naming the other file) when a later
/// managed profile overrides one of its keys.
#[test]
fn a_profile_is_validated_in_its_place_and_known_in_force_after_the_reload() {
    skip_unless_root!();
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let etc = d.path().join("etc");
    let profile = etc.join("managed/50-fleet.yaml");
    std::fs::create_dir_all(profile.parent().unwrap()).unwrap();
    std::fs::write(&profile, "folding:\n  window_ms: 2000\n").unwrap();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let daemon = start_on_bus(&bus, d.path(), &[]);
    let run = |args: &[&str]| {
        let o = cli_on(&bus, args);
        (o.status.code(), output_text(&o))
    };
    let validate = |candidate: &std::path::Path| {
        let o = std::process::Command::new(mdatp_integration_tests::mdatpd_bin())
            .arg("--config-dir")
            .arg(&etc)
            .arg("--state-dir")
            .arg(d.path().join("state"))
            .args(["validate", "--as"])
            .arg(&profile)
            .arg(candidate)
            .output()
            .unwrap();
        (o.status.code(), output_text(&o))
    };
    let p = profile.display().to_string();

    // A bad candidate is named as the profile it would replace, by key.
    let candidate = d.path().join("rendered.yaml");
    std::fs::write(&candidate, "folding:\n  window_ms: later\n").unwrap();
    let (code, out) = validate(&candidate);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("{p}: folding.window_ms")), "{out}");
    // A good candidate, checked with the other layers of the tree.
    std::fs::write(
        etc.join("managed/10-base.yaml"),
        "exclude:\n  processes: [/usr/bin/backup]\n",
    )
    .unwrap();
    let good = "folding:\n  window_ms: 3000\nexclude:\n  paths: [/srv/scratch]\n";
    std::fs::write(&candidate, good).unwrap();
    let (code, out) = validate(&candidate);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("valid with {}", candidate.display())),
        "{out}"
    );
    // A file that is no layer is refused, not silently checked alone.
    let o = std::process::Command::new(mdatp_integration_tests::mdatpd_bin())
        .arg("--config-dir")
        .arg(&etc)
        .args(["validate", "--as", "/tmp/elsewhere.yaml"])
        .arg(&candidate)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(output_text(&o).contains("not a configuration layer"));
    std::fs::remove_file(etc.join("managed/10-base.yaml")).unwrap();

    // In force as started; not after the file changed, until the reload.
    let (code, out) = run(&["config", "in-force", &p]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), format!("{p}: in force").as_str())
    );
    std::fs::write(&profile, good).unwrap();
    let (code, out) = run(&["config", "in-force", &p]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "folding.window_ms = 2000 (from {p}) instead of 3000"
        )) && out.contains("exclude.paths = [] (from default) instead of [\"/srv/scratch\"]"),
        "{out}"
    );
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        mdatp_integration_tests::wait_until(Duration::from_secs(10), || {
            run(&["config", "in-force", &p]).0 == Some(0)
        }),
        "the profile is not in force after the reload: {}",
        run(&["config", "in-force", &p]).1
    );

    // A later managed profile wins: the earlier one is not all in force.
    let later = etc.join("managed/60-mdm.yaml");
    std::fs::write(&later, "folding:\n  window_ms: 4000\n").unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let mut last = String::new();
    assert!(
        mdatp_integration_tests::wait_until(Duration::from_secs(10), || {
            let (code, out) = run(&["config", "in-force", &p, "--output", "json"]);
            last = out;
            code == Some(1)
        }),
        "{last}"
    );
    let v: serde_json::Value = serde_json::from_str(last.trim()).unwrap();
    assert_eq!(v["in_force"], false, "{v}");
    assert_eq!(
        v["not_in_force"]["folding.window_ms"],
        format!("4000 (from {}) instead of 3000", later.display()),
        "{v}"
    );
    assert!(v["not_in_force"].get("exclude.paths").is_none(), "{v}");
    let (code, out) = run(&["config", "in-force", "/etc/passwd"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not a configuration layer"), "{out}");
}
