//! The NATS JetStream output, on its own thread with its own tokio
//! runtime (the event loop never waits on the server). Each event is
//! published to `<subject_prefix>.<OCSF class>` with a message id
//! (`<host>.<run>.<sequence>`, kept with the event in the spool) and
//! counts as delivered when the stream acknowledged it. While the server
//! is unreachable or refuses, events go to the spool and are published
//! from it, in order, when it is back; beyond the spool they are lost,
//! counted, and reported by a loss record in the stream.

mod batch;
mod publish;
mod spool;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use spool::Spool;

use super::NatsOutput;
use super::loss_note::LossNote;
use super::queue::Queue;
use super::threaded::ThreadedSink;

/// Events in memory between the loop and this thread (beyond: the
/// spool takes them; beyond the spool: lost).
const QUEUE_BYTES: usize = 32 << 20;
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A stream the sensor creates drops a replayed message id this long
/// after the first (the longest outage a replay is de-duplicated over).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

pub fn target(cfg: &NatsOutput) -> String {
    cfg.servers.join(",")
}

pub fn spawn(cfg: &NatsOutput, hostname: &str, state_dir: &Path) -> std::io::Result<ThreadedSink> {
    let spool_dir = state_dir.join(&cfg.spool_dir);
    let (spool, torn) = Spool::open(&spool_dir, cfg.spool_max_bytes.as_u64())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", spool_dir.display())))?;
    let mut note = LossNote::new("nats", hostname);
    if torn > 0 {
        log::warn!(
            "{}: cut {torn} torn record(s) a crash left in the NATS spool (counted lost)",
            spool_dir.display()
        );
        note.add(
            &[(None, torn)].into_iter().collect(),
            "torn in the spool by a crash",
        );
    }
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id_prefix = format!("{}.{run_id}", hostname.replace(['.', ' '], "_"));
    let cfg = cfg.clone();
    ThreadedSink::spawn("nats", hostname, QUEUE_BYTES, move |q| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let worker = Worker {
            q: Arc::clone(&q),
            target: target(&cfg),
            cfg,
            spool,
            spool_dir,
            note,
            id_prefix,
            seq: 0,
            js: None,
            torn,
        };
        match rt {
            Ok(rt) => rt.block_on(worker.run()),
            Err(e) => q.state(|s| s.error = Some(format!("cannot start the NATS runtime: {e}"))),
        }
    })
}

struct Worker {
    q: Arc<Queue>,
    cfg: NatsOutput,
    target: String,
    spool: Spool,
    spool_dir: PathBuf,
    note: LossNote,
    id_prefix: String,
    seq: u64,
    js: Option<(async_nats::Client, jetstream::Context)>,
    torn: u64,
}

impl Worker {
    async fn run(mut self) {
        if self.torn > 0 {
            self.q.lost(
                &[(None, self.torn)].into_iter().collect(),
                "torn in the spool by a crash",
            );
        }
        let mut backoff = Duration::from_millis(100);
        let mut last_error = String::new();
        loop {
            let (stopping, expired) = self.q.stopping();
            self.publish_state();
            if expired
                || (stopping
                    && self.q.snapshot().backlog_events == 0
                    && (!self.connected() || self.spool.is_empty()))
            {
                // What is left waits in the spool for the next start.
                let rest = self.q.drain();
                self.spool_records(rest);
                return;
            }
            if self.js.is_none() {
                match self.connect().await {
                    Ok(c) => {
                        log::info!("nats output: connected to {}", self.target);
                        self.js = Some(c);
                        last_error.clear();
                        backoff = Duration::from_millis(100);
                    }
                    Err(why) => {
                        self.failing(&mut last_error, why);
                        let rest = self.q.take(usize::MAX, Duration::ZERO);
                        self.spool_records(rest);
                        self.sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            if !self.connected() {
                // The client reconnects by itself; meanwhile events wait
                // on disk rather than in its buffer, and nothing waits
                // for acknowledgements that cannot come.
                let rest = self.q.take(usize::MAX, Duration::ZERO);
                self.spool_records(rest);
                if last_error.is_empty() {
                    self.failing(
                        &mut last_error,
                        format!("disconnected from {}", self.target),
                    );
                }
                self.sleep(Duration::from_millis(100)).await;
                continue;
            }
            let result = if self.spool.is_empty() && self.note.is_empty() {
                self.publish_queued().await
            } else {
                // Order: while anything is spooled, new events queue
                // behind it.
                let rest = self.q.take(usize::MAX, Duration::ZERO);
                self.spool_records(rest);
                self.publish_spooled().await
            };
            match result {
                Ok(()) => {
                    if !last_error.is_empty() {
                        log::info!("nats output: {} acknowledges again", self.target);
                        last_error.clear();
                        self.q.state(|s| s.error = None);
                    }
                    backoff = Duration::from_millis(100);
                }
                Err(why) => {
                    self.failing(&mut last_error, why);
                    self.sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn failing(&self, last_error: &mut String, why: String) {
        if why != *last_error {
            log::warn!("nats output: {why} (events wait in the spool)");
            *last_error = why.clone();
        }
        self.q.state(|s| s.error = Some(why));
    }

    fn connected(&self) -> bool {
        self.js
            .as_ref()
            .is_some_and(|(c, _)| c.connection_state() == async_nats::connection::State::Connected)
    }

    fn publish_state(&self) {
        let connected = self.connected();
        let spooled = self.spool.pending_bytes();
        self.q.state(|s| {
            s.connected = connected;
            s.counters.insert("spooled_bytes", spooled);
        });
    }

    /// Sleeps in short steps, so that a stop is seen soon.
    async fn sleep(&self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < until && !self.q.stopping().0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn connect(&self) -> Result<(async_nats::Client, jetstream::Context), String> {
        let what = |e: &dyn std::fmt::Display| {
            let hint = self
                .cfg
                .servers
                .iter()
                .map(|s| crate::unit_network::hint(s))
                .find(|h| !h.is_empty())
                .unwrap_or_default();
            format!("cannot connect to {}: {e}{hint}", self.target)
        };
        let mut opts = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .name("mdatpd");
        if let Some(c) = &self.cfg.credentials_file {
            opts = opts
                .credentials_file(c)
                .await
                .map_err(|e| format!("{}: {e}", c.display()))?;
        }
        if let Some(ca) = &self.cfg.tls.ca_file {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
            if let (Some(c), Some(k)) = (&self.cfg.tls.cert_file, &self.cfg.tls.key_file) {
                opts = opts.add_client_certificate(c.clone(), k.clone());
            }
        }
        let addrs: Vec<async_nats::ServerAddr> = self
            .cfg
            .servers
            .iter()
            .map(|s| s.parse().map_err(|e| format!("{s}: {e}")))
            .collect::<Result<_, _>>()?;
        let client = opts.connect(addrs).await.map_err(|e| what(&e))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_millis(self.cfg.ack_timeout_ms));
        if !self.cfg.stream.is_empty() {
            let config = jetstream::stream::Config {
                name: self.cfg.stream.clone(),
                subjects: vec![format!("{}.>", self.cfg.subject_prefix)],
                storage: jetstream::stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            };
            js.get_or_create_stream(config)
                .await
                .map_err(|e| format!("stream {}: {e}", self.cfg.stream))?;
        }
        Ok((client, js))
    }
}
