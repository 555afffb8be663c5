//! A live switch to eBPF as an admin makes it (`mdatp config
//! ebpf-supplementary-event-provider --value enabled` over a private
//! bus): the programs load on a thread of their own, so the audit rules
//! keep reporting and health keeps answering (saying why) until they are
//! attached; a switch changed back while it loads leaves no program of
//! ours loaded. `--test-switch-load-delay-ms` holds the load for a few
//! seconds so that "while it loads" is a window the test can act in.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mdatp_integration_tests::*;

const WAIT: Duration = Duration::from_secs(15);
const DELAY_MS: &str = "6000";

/// Health's subsystem is `subsystem` and its fallback reason holds
/// `reason` ("" for none).
fn health_says(bus: &PrivateBus, subsystem: &str, reason: &str) {
    let h = health_json(bus);
    assert_eq!(h["supplementary_events_subsystem"], subsystem, "{h}");
    let why = h["fallback_reason"].as_str().unwrap_or("");
    assert!(
        if reason.is_empty() {
            why.is_empty()
        } else {
            why.contains(reason)
        },
        "fallback_reason should say {reason:?}: {h}"
    );
}

fn set_provider(bus: &PrivateBus, value: &str) {
    let out = cli_on(
        bus,
        &[
            "config",
            "ebpf-supplementary-event-provider",
            "--value",
            value,
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
fn events_keep_coming_while_a_switch_loads_and_a_cancelled_one_leaves_nothing() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/mdatp.yaml"),
        "ebpf_supplementary_event_provider: disabled\n",
    )
    .unwrap();
    let d = start_on_bus(&bus, dir.path(), &["--test-switch-load-delay-ms", DELAY_MS]);
    assert_eq!(provider_of(&exec_seen(&d, "before-switch", WAIT)), "auditd");
    assert!(our_bpf_programs_settled().is_empty(), "programs on auditd");

    // The switch: the answer comes at once, the programs load meanwhile.
    set_provider(&bus, "enabled");
    d.wait_stderr("loading the eBPF programs", WAIT);
    health_says(&bus, "auditd", "eBPF programs loading");
    let during = exec_seen(&d, "during-load", WAIT);
    assert_eq!(provider_of(&during), "auditd", "{during}");
    assert!(
        !d.stderr().contains("provider switched: auditd -> ebpf"),
        "the exec was read only after the switch: the loop waited for the load\n{}",
        d.stderr()
    );
    d.wait_stderr("provider switched: auditd -> ebpf", LOAD_WAIT);
    assert_eq!(provider_of(&exec_seen(&d, "after-switch", WAIT)), "ebpf");
    health_says(&bus, "ebpf", "");

    // Back to audit, then a switch to eBPF changed back while it loads.
    set_provider(&bus, "disabled");
    d.wait_stderr("provider switched: ebpf -> auditd", WAIT);
    assert!(
        our_bpf_programs_settled().is_empty(),
        "programs after the switch to audit"
    );
    set_provider(&bus, "enabled");
    wait_until(WAIT, || {
        d.stderr().matches("loading the eBPF programs").count() == 2
    });
    set_provider(&bus, "disabled");
    d.wait_stderr("switch to eBPF cancelled while its programs loaded", WAIT);
    assert_eq!(provider_of(&exec_seen(&d, "after-cancel", WAIT)), "auditd");
    d.wait_stderr(
        "the eBPF programs loaded for a cancelled switch are unloaded",
        LOAD_WAIT,
    );
    assert_eq!(
        our_bpf_programs_settled(),
        Vec::<String>::new(),
        "programs left by the cancelled switch"
    );
    assert_eq!(
        d.stderr()
            .matches("provider switched: auditd -> ebpf")
            .count(),
        1,
        "the cancelled load was attached anyway:\n{}",
        d.stderr()
    );
    health_says(&bus, "auditd", "disabled by configuration");

    let stopped = d.stop();
    assert!(stopped.status.success());
    assert_each_exec_once(
        &stopped.events,
        &[
            "before-switch",
            "during-load",
            "after-switch",
            "after-cancel",
        ],
    );
}
