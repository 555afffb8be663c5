//! Network events from the real eBPF programs: bind, listen, connect,
//! accept over IPv4 and IPv6 loopback, a refused connect, and an excluded
//! network.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use mdatp_integration_tests::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn me() -> u64 {
    u64::from(std::process::id())
}

fn net_event(d: &Daemon, activity: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let act = activity.to_string();
    d.wait_event(WAIT, move |v| {
        is_net_event(v)
            && at(v, "/actor/process/pid") == me()
            && at(v, "/activity_name") == act.as_str()
            && pred(v)
    })
    .unwrap_or_else(|| panic!("no {activity} event; stderr:\n{}", d.stderr()))
}

fn endpoint_is(v: &Value, which: &str, a: &SocketAddr) -> bool {
    at(v, &format!("/{which}/ip")) == a.ip().to_string().as_str()
        && at(v, &format!("/{which}/port")) == u64::from(a.port())
}

fn round_trip(d: &Daemon, bind_to: &str, version: u64) {
    let listener = TcpListener::bind(bind_to).expect("bind");
    let server = listener.local_addr().unwrap();
    let v = net_event(d, "Bind", |v| endpoint_is(v, "src_endpoint", &server));
    assert_eq!(at(&v, "/status"), "Success");
    assert_eq!(at(&v, "/connection_info/protocol_name"), "tcp");
    assert_eq!(at(&v, "/connection_info/protocol_ver_id"), version);
    let v = net_event(d, "Listen", |v| endpoint_is(v, "src_endpoint", &server));
    assert_eq!(at(&v, "/type_uid"), 400107);
    assert!(at(&v, "/unmapped/backlog").as_u64().is_some());

    let client = TcpStream::connect(server).expect("connect");
    let local = client.local_addr().unwrap();
    let (_conn, peer) = listener.accept().expect("accept");
    assert_eq!(peer, local);

    let v = net_event(d, "Open", |v| {
        at(v, "/connection_info/direction") == "Outbound" && endpoint_is(v, "dst_endpoint", &server)
    });
    assert!(endpoint_is(&v, "src_endpoint", &local), "{v:#}");
    assert_eq!(at(&v, "/status"), "Success");
    assert_eq!(at(&v, "/type_uid"), 400101);
    assert_eq!(at(&v, "/actor/process/pid"), me());

    let v = net_event(d, "Open", |v| {
        at(v, "/connection_info/direction") == "Inbound" && endpoint_is(v, "src_endpoint", &local)
    });
    assert!(endpoint_is(&v, "dst_endpoint", &server), "{v:#}");
}

#[test]
fn tcp_over_ipv4_and_ipv6_loopback() {
    skip_unless_root!();
    let _g = serial();
    let d = Daemon::start(&[]);
    round_trip(&d, "127.0.0.1:0", 4);
    round_trip(&d, "[::1]:0", 6);
    d.stop();
}

#[test]
fn a_refused_connect_carries_the_error() {
    skip_unless_root!();
    let _g = serial();
    let d = Daemon::start(&[]);
    // A port that was just free: bind, note, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let err = TcpStream::connect(target).expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let v = net_event(&d, "Refuse", |v| endpoint_is(v, "dst_endpoint", &target));
    assert_eq!(at(&v, "/status"), "Failure");
    assert_eq!(at(&v, "/status_code"), "ECONNREFUSED");
    assert_eq!(at(&v, "/type_uid"), 400105);
    d.stop();
}

#[test]
fn an_excluded_network_is_filtered_in_the_kernel() {
    skip_unless_root!();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = filter_config(dir.path(), "exclude: {networks: [127.0.0.2/32]}\n");
    let d = Daemon::start(&["--filter-config", cfg.to_str().unwrap()]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let excluded: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let included: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Nothing listens on 127.0.0.2:port; the attempt is refused either way.
    let _ = TcpStream::connect(excluded);
    let _ok = TcpStream::connect(included).expect("connect");
    net_event(&d, "Open", |v| endpoint_is(v, "dst_endpoint", &included));
    let stopped = d.stop();
    assert!(
        !stopped
            .events
            .iter()
            .any(|v| is_net_event(v) && endpoint_is(v, "dst_endpoint", &excluded)),
        "an excluded remote reached user space"
    );
    assert!(kernel_counts(&stopped.stderr, "kernel filtered:")["network_connect"] >= 1);
}

#[test]
fn the_first_udp_datagram_of_each_flow_is_reported_once() {
    skip_unless_root!();
    let _g = serial();
    let d = Daemon::start(&[]);
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (sa, ca) = (server.local_addr().unwrap(), client.local_addr().unwrap());
    let mut buf = [0u8; 16];
    for _ in 0..5 {
        client.send_to(b"ping", sa).unwrap();
        let (_, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(from, ca);
    }
    let out = net_event(&d, "Open", |v| {
        at(v, "/connection_info/protocol_name") == "udp"
            && at(v, "/connection_info/direction") == "Outbound"
            && endpoint_is(v, "dst_endpoint", &sa)
    });
    assert!(endpoint_is(&out, "src_endpoint", &ca), "{out:#}");
    assert_eq!(at(&out, "/unmapped/first_datagram"), true);
    let inb = net_event(&d, "Open", |v| {
        at(v, "/connection_info/protocol_name") == "udp"
            && at(v, "/connection_info/direction") == "Inbound"
            && endpoint_is(v, "src_endpoint", &ca)
    });
    assert!(endpoint_is(&inb, "dst_endpoint", &sa), "{inb:#}");
    let stopped = d.stop();
    let flows = stopped
        .events
        .iter()
        .filter(|v| {
            at(v, "/connection_info/protocol_name") == "udp"
                && at(v, "/activity_name") == "Open"
                && (endpoint_is(v, "dst_endpoint", &sa) || endpoint_is(v, "src_endpoint", &ca))
        })
        .count();
    assert_eq!(
        flows, 2,
        "five datagrams each way, one event per flow and direction"
    );
}
