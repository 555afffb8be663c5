//! The network part of the kernel-matrix workload
//! (tests/integration/workload/workload.sh), in one process with fixed
//! addresses and ports so that every kernel's events can be compared:
//!
//! mdatp-net-workload PORT
//!   TCP over IPv4: listen on 127.0.0.1:PORT, connect to it, accept
//!   TCP over IPv6: the same on [::1]:PORT+1
//!   UDP over IPv4: bind 127.0.0.1:PORT+2, send one datagram to it from
//!                  127.0.0.1:PORT+3, receive it

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;

fn tcp(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let mut client = TcpStream::connect(addr)?;
    let (mut server, _) = listener.accept()?;
    client.write_all(b"x")?;
    let mut b = [0u8; 1];
    server.read_exact(&mut b)?;
    Ok(())
}

fn udp(server: SocketAddr, client: SocketAddr) -> std::io::Result<()> {
    let rx = UdpSocket::bind(server)?;
    let tx = UdpSocket::bind(client)?;
    tx.send_to(b"x", server)?;
    let mut b = [0u8; 1];
    rx.recv_from(&mut b)?;
    Ok(())
}

fn main() -> ExitCode {
    let Some(port) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: mdatp-net-workload PORT");
        return ExitCode::from(2);
    };
    let v4 = |p: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
    let steps = [
        ("tcp v4", tcp(v4(port))),
        (
            "tcp v6",
            tcp(SocketAddr::from((Ipv6Addr::LOCALHOST, port + 1))),
        ),
        ("udp v4", udp(v4(port + 2), v4(port + 3))),
    ];
    let mut ok = true;
    for (name, r) in steps {
        if let Err(e) = r {
            eprintln!("{name}: {e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
