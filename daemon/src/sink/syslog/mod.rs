//! The syslog output: RFC 5424 records to the local syslog socket or to a
//! collector over TCP or TLS, from its own thread. A record is delivered
//! when the socket took it (a datagram sent, a stream write returned);
//! syslog has no acknowledgement, so what a TCP collector had in flight
//! when it died is not known (docs/OUTPUTS.md). A stream write that fails
//! sends its records again on the next connection: at least once.

mod frame;
mod transport;

pub use frame::class_name;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use frame::Header;
use transport::Conn;

use super::queue::{Queue, Record};
use super::threaded::ThreadedSink;
use super::{KindCounts, SyslogOutput, SyslogTransport};

/// Records per write on a stream.
const WRITE_BYTES: usize = 256 * 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the records go, for health and messages.
pub fn target(cfg: &SyslogOutput) -> String {
    match cfg.transport {
        SyslogTransport::Unix => format!("unix:{}", cfg.socket.display()),
        SyslogTransport::Tcp => format!("tcp:{}", cfg.address),
        SyslogTransport::Tls => format!("tls:{}", cfg.address),
    }
}

pub fn spawn(cfg: &SyslogOutput, hostname: &str) -> std::io::Result<ThreadedSink> {
    let header = Header::new(cfg.facility.code(), hostname, &cfg.app_name);
    let cfg = cfg.clone();
    let bytes = usize::try_from(cfg.backlog_max_bytes.as_u64()).unwrap_or(usize::MAX);
    ThreadedSink::spawn("syslog", hostname, bytes, move |q| {
        Worker {
            q,
            target: target(&cfg),
            cfg,
            header,
        }
        .run()
    })
}

struct Worker {
    q: Arc<Queue>,
    cfg: SyslogOutput,
    target: String,
    header: Header,
}

/// A send that failed part way: how many records went, and why.
struct SendError {
    sent: usize,
    error: std::io::Error,
}

impl Worker {
    fn run(self) {
        let mut conn: Option<Conn> = None;
        let mut backoff = Duration::from_millis(100);
        let mut last_error = String::new();
        loop {
            let (stopping, expired) = self.q.stopping();
            if expired {
                let rest = self.q.drain();
                if !rest.is_empty() {
                    self.q.lost(
                        &Record::count(&rest),
                        &format!("stopped before {} took them", self.target),
                    );
                }
                return;
            }
            if conn.is_none() {
                match transport::connect(&self.cfg) {
                    Ok(c) => {
                        if !last_error.is_empty() {
                            log::info!("syslog output: connected to {}", self.target);
                            last_error.clear();
                        }
                        backoff = Duration::from_millis(100);
                        conn = Some(c);
                        self.q.state(|s| {
                            s.connected = true;
                            s.error = None;
                            *s.counters.entry("connects").or_default() += 1;
                        });
                    }
                    Err(e) => {
                        let why = format!(
                            "cannot connect to {}: {e}{}",
                            self.target,
                            crate::unit_network::hint(&self.cfg.address)
                        );
                        if why != last_error {
                            log::warn!("syslog output: {why} (events wait in the backlog)");
                            last_error = why.clone();
                        }
                        self.q.state(|s| {
                            s.connected = false;
                            s.error = Some(why.clone());
                        });
                        if stopping {
                            // No collector to wait for at stop.
                            let rest = self.q.drain();
                            if !rest.is_empty() {
                                self.q.lost(&Record::count(&rest), &why);
                            }
                            return;
                        }
                        self.q.pause(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let batch = self.q.take(WRITE_BYTES, Duration::from_millis(500));
            if batch.is_empty() {
                if stopping {
                    return;
                }
                continue;
            }
            let Some(c) = conn.as_mut() else { continue };
            match self.send(c, &batch) {
                Ok(oversize) => {
                    let mut delivered = Record::count(&batch);
                    if !oversize.is_empty() {
                        for (k, n) in &oversize {
                            if let Some(d) = delivered.get_mut(k) {
                                *d -= n;
                            }
                        }
                        self.q.lost(
                            &oversize,
                            "a record larger than the local socket's datagram limit",
                        );
                    }
                    self.q.delivered(&delivered);
                    self.q.state(|s| {
                        *s.counters.entry("records_sent").or_default() += batch.len() as u64
                    });
                }
                Err(SendError { sent, error }) => {
                    let (done, rest) = batch.split_at(sent);
                    self.q.delivered(&Record::count(done));
                    self.q.put_back(rest.to_vec());
                    let why = format!("writing to {}: {error}", self.target);
                    log::warn!("syslog output: {why}; reconnecting");
                    last_error = why.clone();
                    conn = None;
                    self.q.state(|s| {
                        s.connected = false;
                        s.error = Some(why);
                        *s.counters.entry("write_errors").or_default() += 1;
                    });
                }
            }
        }
    }

    /// Sends a batch; on success, the kinds of records dropped because
    /// no datagram can carry them.
    fn send(&self, conn: &mut Conn, batch: &[Record]) -> Result<KindCounts, SendError> {
        let now = SystemTime::now();
        let mut oversize = KindCounts::new();
        match conn {
            Conn::Datagram(d) => {
                let mut buf = Vec::with_capacity(4096);
                for (i, r) in batch.iter().enumerate() {
                    buf.clear();
                    self.header.record(&r.bytes, now, &mut buf);
                    match d.send(&buf) {
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                            *oversize.entry(r.kind).or_default() += 1;
                        }
                        Err(error) => return Err(SendError { sent: i, error }),
                    }
                }
            }
            Conn::Stream(s) => {
                if s.peer_closed() {
                    // Reconnect first: this batch would be lost unseen.
                    return Err(SendError {
                        sent: 0,
                        error: std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "the collector closed the connection",
                        ),
                    });
                }
                let mut buf = Vec::with_capacity(WRITE_BYTES + 4096);
                for r in batch {
                    self.header.framed(&r.bytes, now, &mut buf);
                }
                // Unknown how much a failed write left with the peer: the
                // whole batch is sent again (at least once).
                s.writer
                    .write_all(&buf)
                    .and_then(|()| s.writer.flush())
                    .map_err(|error| SendError { sent: 0, error })?;
            }
        }
        debug_assert!(conn.is_stream() || batch.len() >= oversize.values().sum::<u64>() as usize);
        Ok(oversize)
    }
}

use std::io::Write;
