//! Where serialized events go: JSON Lines on stdout or in a rotating
//! file, RFC 5424 syslog, NATS JetStream — several at once (`Outputs`).
//! An event counts as delivered only once its output has accepted it
//! (written, sent, acknowledged); every event an output could not
//! deliver is lost, per kind, and reported in band by that output.

mod file;
mod loss_note;
mod nats;
mod outputs;
mod queue;
mod settings;
mod syslog;
mod threaded;
mod tls;
mod writer_thread;

pub use file::FileSink;
pub use nats::spawn as spawn_nats;
pub use outputs::{OpenError, OutputContext, OutputKind, OutputReport, Outputs};
pub use settings::{
    Compression, Detail, FileOutput, FsyncPolicy, NatsOutput, OutputConfig, PageCache,
    SyslogFacility, SyslogOutput, SyslogTransport, TlsSettings,
};
pub use syslog::{class_name, spawn as spawn_syslog};

use std::collections::BTreeMap;
use std::io::{self, Stdout, Write};

use crate::kind::EventKind;

/// Flush inside `push` past this many buffered bytes (bounds memory).
const BATCH_LIMIT: usize = 1 << 20;

/// Events of one batch per kind (`None`: records of no kind, such as
/// loss records).
pub type KindCounts = BTreeMap<Option<EventKind>, u64>;

/// What happened to the events pushed since the last flush.
#[derive(Debug, Default)]
pub struct Flushed {
    pub delivered: KindCounts,
    pub lost: KindCounts,
    /// The write error, when a batch was lost.
    pub error: Option<String>,
}

impl Flushed {
    fn absorb(&mut self, other: Flushed) {
        for (k, n) in other.delivered {
            *self.delivered.entry(k).or_default() += n;
        }
        for (k, n) in other.lost {
            *self.lost.entry(k).or_default() += n;
        }
        if other.error.is_some() {
            self.error = other.error;
        }
    }
}

/// A sink's state for health: counters and the error while failing.
#[derive(Debug, Default, Clone)]
pub struct SinkStatus {
    pub counters: BTreeMap<String, u64>,
    /// The last write error while writes fail; None while they succeed.
    pub error: Option<String>,
}

pub trait Sink: Send {
    /// Buffers one serialized event (a JSON object, without the newline).
    fn push(&mut self, record: &[u8], kind: Option<EventKind>);
    /// Writes what is buffered, in one write per batch.
    fn flush(&mut self) -> Flushed;
    /// Once a second: the fsync policy, a file renamed or removed.
    fn tick(&mut self) {}
    /// SIGHUP or Reload: reopen, and take new settings.
    fn reconfigure(&mut self, _config: &OutputConfig) {}
    fn status(&self) -> SinkStatus {
        SinkStatus::default()
    }
    /// At stop: what is buffered delivered (or counted lost), and
    /// everything written forced to the disk.
    fn close(&mut self) -> Flushed {
        self.flush()
    }
}

/// Whole records waiting for the next write, with their kinds.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    kinds: KindCounts,
}

impl Batch {
    fn push(&mut self, record: &[u8], kind: Option<EventKind>) {
        self.bytes.extend_from_slice(record);
        self.bytes.push(b'\n');
        *self.kinds.entry(kind).or_default() += 1;
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The batch's outcome, and the batch emptied.
    fn settle(&mut self, result: io::Result<()>) -> Flushed {
        self.bytes.clear();
        let kinds = std::mem::take(&mut self.kinds);
        match result {
            Ok(()) => Flushed {
                delivered: kinds,
                ..Flushed::default()
            },
            Err(e) => Flushed {
                lost: kinds,
                error: Some(e.to_string()),
                ..Flushed::default()
            },
        }
    }
}

/// The batch being filled, and the outcome of batches written early
/// (past `BATCH_LIMIT`) that the next flush reports.
#[derive(Default)]
struct Pending {
    batch: Batch,
    early: Flushed,
}

/// A sink that writes whole batches: push and flush are the same for all.
trait BatchWriter {
    fn pending(&mut self) -> &mut Pending;
    /// Writes `pending().batch` and settles it.
    fn write_batch(&mut self) -> Flushed;

    fn push_record(&mut self, record: &[u8], kind: Option<EventKind>) {
        let p = self.pending();
        p.batch.push(record, kind);
        if p.batch.bytes.len() >= BATCH_LIMIT {
            let f = self.write_batch();
            self.pending().early.absorb(f);
        }
    }

    fn flush_pending(&mut self) -> Flushed {
        let mut out = std::mem::take(&mut self.pending().early);
        if !self.pending().batch.is_empty() {
            out.absorb(self.write_batch());
        }
        out
    }
}

/// JSON Lines into any writer (stdout, a test's buffer), one write of
/// whole lines per batch.
pub struct JsonLines<W: Write + Send> {
    out: W,
    pending: Pending,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            pending: Pending::default(),
        }
    }
}

impl<W: Write + Send> BatchWriter for JsonLines<W> {
    fn pending(&mut self) -> &mut Pending {
        &mut self.pending
    }

    fn write_batch(&mut self) -> Flushed {
        let batch = &mut self.pending.batch;
        let result = self
            .out
            .write_all(&batch.bytes)
            .and_then(|()| self.out.flush());
        batch.settle(result)
    }
}

impl JsonLines<Stdout> {
    pub fn stdout() -> Self {
        Self::new(io::stdout())
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn push(&mut self, record: &[u8], kind: Option<EventKind>) {
        self.push_record(record, kind);
    }

    fn flush(&mut self) -> Flushed {
        self.flush_pending()
    }
}

impl Sink for Box<dyn Sink + Send> {
    fn push(&mut self, record: &[u8], kind: Option<EventKind>) {
        (**self).push(record, kind)
    }
    fn flush(&mut self) -> Flushed {
        (**self).flush()
    }
    fn tick(&mut self) {
        (**self).tick()
    }
    fn reconfigure(&mut self, config: &OutputConfig) {
        (**self).reconfigure(config)
    }
    fn status(&self) -> SinkStatus {
        (**self).status()
    }
    fn close(&mut self) -> Flushed {
        (**self).close()
    }
}
