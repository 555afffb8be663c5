//! Delivery off the host with the real daemon and real receivers:
//! syslog into Debian's rsyslogd over a unix socket (turned on live) and
//! over TLS through a collector outage; NATS JetStream into Debian's
//! nats-server killed in the middle of a stream, and a spool kept across
//! a restart of the sensor. Every marked exec must arrive — exactly once
//! for NATS (message ids), at least once for syslog over TCP — and
//! health must say where each output stands.

#[path = "outputs/servers.rs"]
mod servers;

use std::path::Path;
use std::time::Duration;

use mdatp_integration_tests::{
    BusPolicy, PrivateBus, at, health_json, is_exec, marker_counts, run_markers, say_skipped,
    serial, start_on_bus, wait_until,
};
use nix::sys::signal::Signal;
use servers::{NatsServer, Rsyslog, make_certs};

macro_rules! skip_unless_root {
    () => {
        if !mdatp_integration_tests::is_root() {
            say_skipped();
            return;
        }
    };
}

fn config(dir: &Path, yaml: &str) {
    std::fs::create_dir_all(dir.join("etc/conf.d")).expect("mkdir");
    std::fs::write(dir.join("etc/conf.d/10-output.yaml"), yaml).expect("write config");
}

fn counter(h: &serde_json::Value, key: &str) -> u64 {
    h["output_counters"][key].as_u64().unwrap_or(0)
}

#[test]
fn syslog_turned_on_live_reaches_rsyslog_over_a_unix_socket_as_rfc5424() {
    skip_unless_root!();
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("log.sock");
    let rsyslog = Rsyslog::start(
        d.path(),
        &format!(
            r#"module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{}" UseSpecialParser="off" ParseHostname="on" RateLimit.Interval="0")"#,
            sock.display()
        ),
    );
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()),
        "rsyslogd made no socket"
    );
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let daemon = start_on_bus(&bus, d.path(), &[]);
    assert!(health_json(&bus)["outputs"].get("syslog").is_none());

    // Turned on by a drop-in and SIGHUP, as an admin would.
    config(
        d.path(),
        &format!(
            "output:\n  syslog:\n    enabled: true\n    transport: unix\n    socket: {}\n    facility: local3\n",
            sock.display()
        ),
    );
    daemon.signal(Signal::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || {
            health_json(&bus)["outputs"]["syslog"]
                .as_str()
                .is_some_and(|s| s.starts_with("ok: unix:"))
        }),
        "{:#}",
        health_json(&bus)
    );
    let prefix = format!("mdatp-syslog-{}-", std::process::id());
    run_markers(&prefix, 0..200);
    let all = wait_until(Duration::from_secs(20), || {
        let recs: Vec<_> = rsyslog.records().into_iter().map(|r| r.3).collect();
        marker_counts(&recs, &prefix).len() == 200
    });
    let recs = rsyslog.records();
    let json: Vec<_> = recs.iter().map(|r| r.3.clone()).collect();
    assert!(
        all,
        "{} of 200 marked execs reached rsyslog",
        marker_counts(&json, &prefix).len()
    );
    let (msgid, app, pri, ev) = recs
        .iter()
        .find(|r| {
            is_exec(&r.3)
                && at(&r.3, "/process/cmd_line")
                    .as_str()
                    .unwrap_or("")
                    .contains(&prefix)
        })
        .expect("a marked exec");
    assert_eq!(msgid, "process_activity");
    assert_eq!(app, "mdatp");
    assert_eq!(*pri, 19 * 8 + 6, "local3.info");
    assert!(at(ev, "/process/pid").as_u64().is_some(), "{ev:#}");
    // The file output (stdout here) got the same events.
    assert_eq!(marker_counts(&daemon.events(), &prefix).len(), 200);
    let h = health_json(&bus);
    assert!(counter(&h, "syslog.delivered") >= 200, "{h:#}");
    assert_eq!(counter(&h, "syslog.lost"), 0, "{h:#}");
    assert_eq!(counter(&h, "syslog.connected"), 1, "{h:#}");
}

#[test]
fn syslog_over_tls_waits_out_a_collector_outage_and_loses_nothing() {
    skip_unless_root!();
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let certs = make_certs(d.path());
    let port = servers::free_port();
    let inputs = format!(
        r#"global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")"#,
        ca = certs.ca.display(),
        cert = certs.cert.display(),
        key = certs.key.display()
    );
    let mut rsyslog = Rsyslog::start(d.path(), &inputs);
    config(
        d.path(),
        &format!(
            "output:\n  syslog:\n    enabled: true\n    transport: tls\n    address: 127.0.0.1:{port}\n    tls:\n      ca_file: {}\n",
            certs.ca.display()
        ),
    );
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let _daemon = start_on_bus(&bus, d.path(), &[]);
    assert!(
        wait_until(Duration::from_secs(20), || counter(
            &health_json(&bus),
            "syslog.connected"
        ) == 1),
        "{:#}",
        health_json(&bus)
    );
    let prefix = format!("mdatp-tls-{}-", std::process::id());
    run_markers(&prefix, 0..100);
    assert!(wait_until(Duration::from_secs(20), || {
        let recs: Vec<_> = rsyslog.records().into_iter().map(|r| r.3).collect();
        marker_counts(&recs, &prefix).len() == 100
    }));

    // The collector goes away: events wait, health says so.
    rsyslog.kill();
    run_markers(&prefix, 100..300);
    let failing = wait_until(Duration::from_secs(20), || {
        let h = health_json(&bus);
        h["healthy"] == false
            && h["outputs"]["syslog"]
                .as_str()
                .is_some_and(|s| s.starts_with("failing: tls:127.0.0.1"))
    });
    assert!(failing, "{:#}", health_json(&bus));

    // Back on the same port: everything arrives, none counted lost.
    let _rsyslog = Rsyslog::start(&d.path().join("again"), &inputs);
    let all = wait_until(Duration::from_secs(40), || {
        let mut recs: Vec<_> = rsyslog.records().into_iter().map(|r| r.3).collect();
        recs.extend(_rsyslog.records().into_iter().map(|r| r.3));
        marker_counts(&recs, &prefix).len() == 300
    });
    let h = health_json(&bus);
    let mut recs: Vec<_> = rsyslog.records().into_iter().map(|r| r.3).collect();
    recs.extend(_rsyslog.records().into_iter().map(|r| r.3));
    assert!(
        all,
        "{} of 300 marked execs reached rsyslog: {h:#}",
        marker_counts(&recs, &prefix).len()
    );
    assert_eq!(counter(&h, "syslog.lost"), 0, "{h:#}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            health_json(&bus)["outputs"]["syslog"]
                .as_str()
                .is_some_and(|s| s.starts_with("ok:"))
        }),
        "{:#}",
        health_json(&bus)
    );
}

const STREAM: &str = "MDATP_TEST";

fn nats_config(dir: &Path, nats: &NatsServer) {
    config(
        dir,
        &format!(
            "output:\n  nats:\n    enabled: true\n    servers: [{}]\n    stream: {STREAM}\n    subject_prefix: mdatp.test\n",
            nats.url()
        ),
    );
}

fn exactly_once(nats: &NatsServer, prefix: &str, n: usize) -> Result<(), String> {
    let msgs = nats.messages(STREAM, "mdatp.test.process_activity");
    let counts = marker_counts(&msgs, prefix);
    let missing: Vec<usize> = (0..n)
        .filter(|i| !counts.contains_key(&format!("{prefix}{i}")))
        .collect();
    let repeated: Vec<_> = counts.iter().filter(|(_, c)| **c != 1).collect();
    if missing.is_empty() && repeated.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} missing (first {:?}), repeated {:?}",
            missing.len(),
            missing.first(),
            repeated.iter().take(5).collect::<Vec<_>>()
        ))
    }
}

#[test]
fn nats_killed_in_the_middle_of_a_stream_gets_every_event_exactly_once() {
    skip_unless_root!();
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(d.path());
    nats_config(d.path(), &nats);
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let _daemon = start_on_bus(&bus, d.path(), &[]);
    let prefix = format!("mdatp-nats-{}-", std::process::id());
    const N: usize = 1500;
    let marks = {
        let prefix = prefix.clone();
        std::thread::spawn(move || {
            for c in 0..15 {
                run_markers(&prefix, c * 100..(c + 1) * 100);
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    nats.kill();
    let spooled = wait_until(Duration::from_secs(20), || {
        let h = health_json(&bus);
        counter(&h, "nats.spooled_bytes") > 0 && h["healthy"] == false
    });
    assert!(spooled, "{:#}", health_json(&bus));
    std::thread::sleep(Duration::from_secs(2));
    nats.restart();
    marks.join().expect("markers");
    let done = wait_until(Duration::from_secs(60), || {
        exactly_once(&nats, &prefix, N).is_ok()
    });
    let h = health_json(&bus);
    assert!(
        done,
        "{}: {h:#}",
        exactly_once(&nats, &prefix, N).unwrap_err()
    );
    assert_eq!(counter(&h, "nats.lost"), 0, "{h:#}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            let h = health_json(&bus);
            counter(&h, "nats.spooled_bytes") == 0
                && h["outputs"]["nats"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("ok:"))
        }),
        "{:#}",
        health_json(&bus)
    );
}

#[test]
fn the_nats_spool_outlives_a_restart_of_the_sensor() {
    skip_unless_root!();
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(d.path());
    nats_config(d.path(), &nats);
    let bus = PrivateBus::start(BusPolicy::Shipped);
    let daemon = start_on_bus(&bus, d.path(), &[]);
    let prefix = format!("mdatp-spool-{}-", std::process::id());
    run_markers(&prefix, 0..100);
    assert!(wait_until(Duration::from_secs(20), || exactly_once(
        &nats, &prefix, 100
    )
    .is_ok()));
    nats.kill();
    run_markers(&prefix, 100..400);
    assert!(wait_until(Duration::from_secs(20), || {
        marker_counts(&daemon.events(), &prefix).len() == 400
    }));
    // Stopped while the server is away: the spool keeps the events.
    let stopped = daemon.stop();
    assert!(
        !stopped.stderr.contains("stopped before") && !stopped.stderr.contains("spool is full"),
        "{}",
        stopped.stderr
    );
    nats.restart();
    let _daemon = start_on_bus(&bus, d.path(), &[]);
    let done = wait_until(Duration::from_secs(40), || {
        exactly_once(&nats, &prefix, 400).is_ok()
    });
    assert!(done, "{}", exactly_once(&nats, &prefix, 400).unwrap_err());
}
