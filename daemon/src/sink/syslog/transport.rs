//! Connections to a syslog receiver: the local socket (datagram, or a
//! stream socket where the receiver listens on one), TCP, or TLS.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use crate::sink::{SyslogOutput, SyslogTransport};

/// A write stuck this long (a receiver that stopped reading) drops the
/// connection; its records are sent again on the next one.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub enum Conn {
    /// One record per datagram, no framing.
    Datagram(UnixDatagram),
    /// Octet-counted records on a byte stream.
    Stream(Stream),
}

impl Conn {
    pub fn is_stream(&self) -> bool {
        matches!(self, Conn::Stream(_))
    }
}

/// A stream connection and its socket, for asking whether the collector
/// is still there before a write.
pub struct Stream {
    pub writer: Box<dyn Write + Send>,
    socket: OwnedFd,
}

impl Stream {
    fn new(writer: impl Write + Send + 'static, socket: OwnedFd) -> Self {
        Self {
            writer: Box::new(writer),
            socket,
        }
    }

    /// The collector closed its end or the connection failed: a write now
    /// would still be taken by the kernel and then lost with the
    /// connection, unseen (a collector that died leaves a FIN; the write
    /// after it succeeds, only the one after that fails).
    pub fn peer_closed(&self) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&self.socket, PollFlags::RDHUP)];
        match poll(&mut fds, Some(&Timespec::default())) {
            Ok(0) => false,
            Ok(_) => fds[0]
                .revents()
                .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR),
            Err(_) => false,
        }
    }
}

pub fn connect(cfg: &SyslogOutput) -> io::Result<Conn> {
    match cfg.transport {
        SyslogTransport::Unix => {
            let d = UnixDatagram::unbound()?;
            match d.connect(&cfg.socket) {
                Ok(()) => {
                    d.set_write_timeout(Some(IO_TIMEOUT))?;
                    Ok(Conn::Datagram(d))
                }
                // A receiver listening on a stream socket (syslog-ng's
                // unix-stream source).
                Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                    let s = UnixStream::connect(&cfg.socket)?;
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    let socket = OwnedFd::from(s.try_clone()?);
                    Ok(Conn::Stream(Stream::new(s, socket)))
                }
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", cfg.socket.display()),
                )),
            }
        }
        SyslogTransport::Tcp => {
            let s = tcp(&cfg.address)?;
            let socket = OwnedFd::from(s.try_clone()?);
            Ok(Conn::Stream(Stream::new(s, socket)))
        }
        SyslogTransport::Tls => {
            let tcp = tcp(&cfg.address)?;
            let host = cfg
                .address
                .rsplit_once(':')
                .map_or(cfg.address.as_str(), |(h, _)| h)
                .trim_matches(|c| c == '[' || c == ']');
            let config = crate::sink::tls::client_config(&cfg.tls).map_err(io::Error::other)?;
            let name = crate::sink::tls::server_name(&cfg.tls, host).map_err(io::Error::other)?;
            let mut conn =
                rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
            let mut tcp = tcp;
            // The handshake now, so that a bad certificate is named at
            // connect, not at the first write.
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: TLS: {e}", cfg.address)))?;
            }
            let socket = OwnedFd::from(tcp.try_clone()?);
            Ok(Conn::Stream(Stream::new(
                rustls::StreamOwned::new(conn, tcp),
                socket,
            )))
        }
    }
}

fn tcp(address: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{address}: no address"));
    for a in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = io::Error::new(e.kind(), format!("{a}: {e}")),
        }
    }
    Err(last)
}
