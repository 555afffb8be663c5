use std::fs;

use super::local::{SetError, set};
use super::*;
use crate::provider::EbpfSetting;

fn tree() -> (tempfile::TempDir, ConfigPaths) {
    let t = tempfile::tempdir().expect("tempdir");
    let paths = ConfigPaths::under(t.path());
    fs::create_dir_all(paths.config_dir.join("conf.d")).expect("mkdir");
    fs::create_dir_all(paths.config_dir.join("managed")).expect("mkdir");
    (t, paths)
}

fn write(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

#[test]
fn layers_apply_in_order_and_managed_wins() {
    let (_t, p) = tree();
    write(
        &p.config_dir.join("mdatp.yaml"),
        "folding: {window_ms: 1000}\n",
    );
    write(
        &p.config_dir.join("conf.d/10-a.yaml"),
        "folding: {window_ms: 2000}\n",
    );
    write(
        &p.config_dir.join("conf.d/20-b.yaml"),
        "folding: {window_ms: 3000}\n",
    );
    write(&p.local(), "ebpf_supplementary_event_provider: disabled\n");
    let c = load(&p).expect("valid");
    assert_eq!(c.settings.folding.window_ms, 3000);
    assert_eq!(
        c.settings.ebpf_supplementary_event_provider,
        EbpfSetting::Disabled
    );
    assert_eq!(
        c.sources["folding.window_ms"],
        p.config_dir.join("conf.d/20-b.yaml")
    );
    write(
        &p.config_dir.join("managed/00-policy.yaml"),
        "ebpf_supplementary_event_provider: enabled\n",
    );
    let c = load(&p).expect("valid");
    assert_eq!(
        c.settings.ebpf_supplementary_event_provider,
        EbpfSetting::Enabled
    );
    assert_eq!(
        c.locked["ebpf_supplementary_event_provider"],
        p.config_dir.join("managed/00-policy.yaml")
    );
    let explain = c.explain();
    assert!(
        explain.contains("ebpf_supplementary_event_provider = \"enabled\""),
        "{explain}"
    );
    assert!(explain.contains("[locked by"), "{explain}");
    assert!(
        explain.contains("folding.enabled = true  (default)"),
        "{explain}"
    );
}

#[test]
fn every_problem_in_every_file_is_reported_at_once() {
    let (_t, p) = tree();
    write(&p.config_dir.join("mdatp.yaml"), "folding: [unclosed\n");
    write(
        &p.config_dir.join("conf.d/10-unknown.yaml"),
        "exclude: {pathz: [/x]}\n",
    );
    write(
        &p.config_dir.join("conf.d/20-type.yaml"),
        "folding: {window_ms: soon}\n",
    );
    write(&p.local(), "exclude: {networks: [300.1.1.1/8]}\n");
    let err = load(&p).expect_err("invalid").to_string();
    assert!(err.contains("4 configuration problem(s)"), "{err}");
    assert!(err.contains("mdatp.yaml: not valid YAML"), "{err}");
    assert!(
        err.contains("10-unknown.yaml: exclude.pathz: unknown field `pathz`"),
        "{err}"
    );
    assert!(
        err.contains("20-type.yaml: folding.window_ms: invalid type"),
        "{err}"
    );
    assert!(err.contains("local.yaml: exclude.networks[0]"), "{err}");
}

#[test]
fn a_managed_key_cannot_be_set_locally_until_the_profile_goes() {
    let (_t, p) = tree();
    let managed = p.config_dir.join("managed/50-mdm.yaml");
    write(&managed, "ebpf_supplementary_event_provider: disabled\n");
    match set(
        &p,
        &load(&p).expect("valid tree"),
        "ebpf_supplementary_event_provider",
        "enabled",
    ) {
        Err(SetError::Locked { file, .. }) => assert_eq!(file, managed),
        other => panic!("expected Locked, got {other:?}"),
    }
    fs::remove_file(&managed).expect("rm");
    set(
        &p,
        &load(&p).expect("valid tree"),
        "ebpf_supplementary_event_provider",
        "disabled",
    )
    .expect("unlocked");
    assert_eq!(
        load(&p)
            .expect("valid")
            .settings
            .ebpf_supplementary_event_provider,
        EbpfSetting::Disabled
    );
    set(
        &p,
        &load(&p).expect("valid tree"),
        "folding.window_ms",
        "750",
    )
    .expect("nested key");
    assert_eq!(load(&p).expect("valid").settings.folding.window_ms, 750);
}

#[test]
fn a_bad_local_change_is_refused_and_changes_nothing() {
    let (_t, p) = tree();
    set(
        &p,
        &load(&p).expect("valid tree"),
        "folding.window_ms",
        "750",
    )
    .expect("valid");
    assert!(matches!(
        set(
            &p,
            &load(&p).expect("valid tree"),
            "folding.window_ms",
            "soon"
        ),
        Err(SetError::Invalid(_))
    ));
    assert!(matches!(
        set(&p, &load(&p).expect("valid tree"), "no_such_key", "1"),
        Err(SetError::UnknownKey { .. })
    ));
    assert_eq!(
        load(&p).expect("still valid").settings.folding.window_ms,
        750
    );
}

#[test]
fn a_profile_added_since_the_last_reload_locks_its_key_too() {
    let (_t, p) = tree();
    let running = load(&p).expect("valid tree");
    let managed = p.config_dir.join("managed/60-fleet.yaml");
    write(&managed, "folding:\n  window_ms: 100\n");
    match set(&p, &running, "folding.window_ms", "750") {
        Err(SetError::Locked { file, .. }) => assert_eq!(file, managed),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        !p.local().exists(),
        "a refused change leaves local.yaml as it was"
    );
}

#[test]
fn keys_are_known_from_the_schema_not_from_error_text() {
    let (_t, p) = tree();
    let running = load(&p).expect("valid tree");
    set(&p, &running, "events.file_open", "false").expect("a map entry");
    let running = load(&p).expect("valid tree");
    assert!(matches!(
        set(&p, &running, "folding.nope", "1"),
        Err(SetError::UnknownKey { .. })
    ));
    // A map entry the schema allows but the value check refuses.
    assert!(matches!(
        set(&p, &running, "events.bogus", "false"),
        Err(SetError::Invalid(_))
    ));
    set(
        &p,
        &running,
        "ebpf_kernel_denylist",
        "[\"5.10.0-46-amd64\"]",
    )
    .expect("a list");
}

#[test]
fn a_candidate_stands_for_its_layer_file_whether_or_not_it_exists() {
    let (t, p) = tree();
    write(
        &p.config_dir.join("managed/50-a.yaml"),
        "folding: {window_ms: 5}\n",
    );
    let cand = t.path().join("rendered.yaml");
    write(&cand, "folding: {window_ms: 7}\n");
    for name in [
        "managed/50-a.yaml",
        "managed/40-new.yaml",
        "conf.d/10-x.yaml",
    ] {
        let target = p.config_dir.join(name);
        let with = ConfigPaths {
            candidate: Some(Candidate {
                stands_for: target.clone(),
                read_from: cand.clone(),
            }),
            ..p.clone()
        };
        let c = load(&with).expect("valid");
        // Named as the layer file, never as the stand-in.
        assert!(c.sources.values().all(|s| *s != cand), "{name}");
        let (window, from) = if name == "managed/50-a.yaml" {
            (7, target.clone())
        } else {
            // 50-a.yaml is managed and later (or higher): it still wins.
            (5, p.config_dir.join("managed/50-a.yaml"))
        };
        assert_eq!(c.settings.folding.window_ms, window, "{name}");
        assert_eq!(c.sources["folding.window_ms"], from, "{name}");
    }
    write(&cand, "folding: {window_ms: soon}\n");
    let bad = ConfigPaths {
        candidate: Some(Candidate {
            stands_for: p.config_dir.join("managed/40-new.yaml"),
            read_from: cand.clone(),
        }),
        ..p.clone()
    };
    let e = load(&bad).expect_err("invalid");
    assert_eq!(
        e.0[0].file,
        p.config_dir
            .join("managed/40-new.yaml")
            .display()
            .to_string()
    );
    let nowhere = ConfigPaths {
        candidate: Some(Candidate {
            stands_for: t.path().join("other.yaml"),
            read_from: cand,
        }),
        ..p
    };
    let e = load(&nowhere).expect_err("not a layer");
    assert!(e.0[0].message.contains("not a configuration layer"), "{e}");
}

#[test]
fn not_in_force_names_each_key_the_running_configuration_differs_on() {
    let (_t, p) = tree();
    let profile = p.config_dir.join("managed/50-a.yaml");
    write(
        &profile,
        "folding: {window_ms: 5}\nexclude: {paths: [/srv]}\n",
    );
    let running = load(&p).expect("valid");
    assert!(
        running
            .not_in_force(&p, &profile)
            .expect("layer")
            .is_empty()
    );
    write(
        &profile,
        "folding: {window_ms: 9}\nexclude: {paths: [/srv]}\n",
    );
    let pending = running.not_in_force(&p, &profile).expect("layer");
    assert_eq!(
        pending.keys().collect::<Vec<_>>(),
        ["folding.window_ms"],
        "{pending:?}"
    );
    assert!(pending["folding.window_ms"].starts_with("5 (from "));
    assert!(running.not_in_force(&p, Path::new("/etc/passwd")).is_err());
}

#[test]
fn output_detail_is_full_by_default_compact_when_set_and_checked() {
    let (_t, p) = tree();
    let c = load(&p).expect("defaults");
    assert_eq!(c.settings.output.detail, crate::sink::Detail::Full);
    write(
        &p.config_dir.join("mdatp.yaml"),
        "output: {detail: compact}\n",
    );
    let c = load(&p).expect("compact");
    assert_eq!(c.settings.output.detail, crate::sink::Detail::Compact);
    write(
        &p.config_dir.join("mdatp.yaml"),
        "output: {detail: terse}\n",
    );
    let err = load(&p).expect_err("unknown value").to_string();
    assert!(
        err.contains("output.detail: unknown variant `terse`"),
        "{err}"
    );
}
