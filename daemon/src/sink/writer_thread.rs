//! The event file's writes on a thread of their own. On the event loop a
//! write(2) that waits on the file system (ext4's block allocation while
//! writeback runs, a journal commit) held the loop, and with it the
//! drain of the kernel's ring: under an open storm the ring's room is
//! tens of milliseconds. Here the loop fills a batch and hands it over;
//! the writer thread writes, rotates, reopens and syncs, and reports what
//! it delivered and lost back, which the next flush returns.
//!
//! Unlike the network outputs (`threaded.rs`), nothing is refused: when
//! `QUEUED_BATCHES` batches wait, the loop waits for the writer (as it
//! waited for write(2) before), so that the kernel's ring, whose drops
//! are counted per kind, stays the one place where a slow disk loses
//! events. The wait is counted (`writer_waits`).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{BATCH_LIMIT, Batch, BatchWriter, Flushed, OutputConfig, Sink, SinkStatus};
use crate::kind::EventKind;

/// Batches that may wait for the writer (each about `HANDOVER_BYTES`):
/// room for a short stall of the disk; the kernel's ring is the buffer
/// for a long one.
const QUEUED_BATCHES: usize = 4;

/// A batch goes to the writer at this size, 64 KiB: up to eight batches
/// exist at once (queued, being written, being filled, spare), so this
/// bounds the thread's buffers to about 0.5 MiB. With 1 MiB batches the
/// daemon's RSS grew by 5-8 MiB under the benchmark's storms, with
/// 256 KiB by up to 3 MiB, above auditd's total (docs/PERFORMANCE.md);
/// the storms' ratios did not change with the size.
const HANDOVER_BYTES: usize = BATCH_LIMIT / 16;

/// Emptied batches kept for reuse (their buffers' capacity).
const SPARE_BATCHES: usize = 2;

enum Job {
    Write(Batch),
    Tick,
    Reconfigure(Box<OutputConfig>),
}

/// What the writer reports back: outcomes since the loop last took
/// them, and the sink's state after its last job.
#[derive(Default)]
struct Shared {
    outcome: Flushed,
    status: SinkStatus,
}

pub struct WriterThread {
    name: &'static str,
    jobs: Option<SyncSender<Job>>,
    spare: Receiver<Batch>,
    batch: Batch,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
    /// Batches the writer could no longer take (it stopped), lost.
    orphaned: Flushed,
    /// Times the loop waited because `QUEUED_BATCHES` were waiting.
    waits: u64,
}

impl WriterThread {
    /// Moves `sink` to a thread named `output-<name>`.
    pub fn spawn<S>(name: &'static str, sink: S) -> std::io::Result<Self>
    where
        S: Sink + BatchWriter + 'static,
    {
        let (jobs, rx) = mpsc::sync_channel(QUEUED_BATCHES);
        let (spare_tx, spare) = mpsc::sync_channel(SPARE_BATCHES);
        let shared = Arc::new(Mutex::new(Shared {
            outcome: Flushed::default(),
            status: sink.status(),
        }));
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("output-{name}"))
            .spawn(move || run(sink, rx, spare_tx, s))?;
        Ok(Self {
            name,
            jobs: Some(jobs),
            spare,
            batch: Batch::default(),
            shared,
            thread: Some(thread),
            orphaned: Flushed::default(),
            waits: 0,
        })
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // A writer that panicked holding the lock left whole values:
        // every change under it is one assignment or absorb.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopped_why(&self) -> String {
        format!("the {} output's writer thread has stopped", self.name)
    }

    /// The filled batch to the writer, waiting while the queue is full.
    fn hand_over(&mut self) {
        let next = self.spare.try_recv().unwrap_or_default();
        let batch = std::mem::replace(&mut self.batch, next);
        let Some(jobs) = &self.jobs else {
            return self.orphan(batch);
        };
        let refused = match jobs.try_send(Job::Write(batch)) {
            Ok(()) => None,
            Err(TrySendError::Full(job)) => {
                self.waits += 1;
                jobs.send(job).err().map(|e| e.0)
            }
            Err(TrySendError::Disconnected(job)) => Some(job),
        };
        if let Some(Job::Write(batch)) = refused {
            self.orphan(batch);
        }
    }

    fn orphan(&mut self, mut batch: Batch) {
        if self.orphaned.error.is_none() {
            log::error!(
                "{}: events are counted as lost from now on",
                self.stopped_why()
            );
        }
        let why = self.stopped_why();
        self.orphaned
            .absorb(batch.settle(Err(std::io::Error::other(why))));
    }

    fn send(&mut self, job: Job) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }
}

/// The writer: one job at a time, in order; at the end of the queue
/// (the loop closed it) the sink's own close.
fn run<S: Sink + BatchWriter>(
    mut sink: S,
    jobs: Receiver<Job>,
    spare: SyncSender<Batch>,
    shared: Arc<Mutex<Shared>>,
) {
    let publish = |sink: &S, f: Flushed| {
        let status = sink.status();
        let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
        g.outcome.absorb(f);
        g.status = status;
    };
    while let Ok(job) = jobs.recv() {
        let f = match job {
            Job::Write(mut batch) => {
                std::mem::swap(&mut sink.pending().batch, &mut batch);
                let f = sink.flush_pending();
                // Back with its buffer, emptied by the write.
                std::mem::swap(&mut sink.pending().batch, &mut batch);
                let _ = spare.try_send(batch);
                f
            }
            Job::Tick => {
                sink.tick();
                Flushed::default()
            }
            Job::Reconfigure(c) => {
                sink.reconfigure(&c);
                Flushed::default()
            }
        };
        publish(&sink, f);
    }
    let f = sink.close();
    publish(&sink, f);
}

impl Sink for WriterThread {
    fn push(&mut self, record: &[u8], kind: Option<EventKind>) {
        self.batch.push(record, kind);
        if self.batch.bytes.len() >= HANDOVER_BYTES {
            self.hand_over();
        }
    }

    /// Hands the batch over; returns what the writer reported since.
    fn flush(&mut self) -> Flushed {
        if !self.batch.is_empty() {
            self.hand_over();
        }
        let mut out = std::mem::take(&mut self.shared().outcome);
        out.absorb(std::mem::take(&mut self.orphaned));
        out
    }

    fn tick(&mut self) {
        self.send(Job::Tick);
    }

    fn reconfigure(&mut self, config: &OutputConfig) {
        self.send(Job::Reconfigure(Box::new(config.clone())));
    }

    fn status(&self) -> SinkStatus {
        let mut s = self.shared().status.clone();
        s.counters.insert("writer_waits".into(), self.waits);
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            s.error = Some(self.stopped_why());
        }
        s
    }

    /// Everything handed over is written (or counted lost) and synced
    /// before this returns.
    fn close(&mut self) -> Flushed {
        if !self.batch.is_empty() {
            self.hand_over();
        }
        self.jobs = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            log::error!("{}", self.stopped_why());
        }
        let mut out = std::mem::take(&mut self.shared().outcome);
        out.absorb(std::mem::take(&mut self.orphaned));
        out
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Write};
    use std::time::Duration;

    use super::super::JsonLines;
    use super::*;

    /// A writer that blocks until `open`, then appends to `out`; fails
    /// every write while `fail`.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<Mutex<bool>>,
        fail: Arc<Mutex<bool>>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            while !*self.open.lock().unwrap() {
                std::thread::sleep(Duration::from_millis(2));
            }
            if *self.fail.lock().unwrap() {
                return Err(io::Error::other("disk full"));
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn record(i: usize) -> Vec<u8> {
        format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(200)).into_bytes()
    }

    #[test]
    fn a_stalled_writer_makes_the_loop_wait_not_lose_and_order_is_kept() {
        let gate = Gate::default();
        let mut w = WriterThread::spawn("test", JsonLines::new(gate.clone())).unwrap();
        // More than the queue holds while the writer is stalled: pushes
        // past QUEUED_BATCHES + 1 batches must wait, from another thread.
        let per_batch = HANDOVER_BYTES / record(0).len() + 1;
        let n = per_batch * (QUEUED_BATCHES + 3);
        let open = Arc::clone(&gate.open);
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            *open.lock().unwrap() = true;
        });
        for i in 0..n {
            w.push(&record(i), Some(EventKind::FileOpen));
        }
        opener.join().unwrap();
        assert!(w.status().counters["writer_waits"] > 0, "the loop waited");
        let mut delivered = w.flush().delivered;
        let out = w.close();
        for (k, v) in out.delivered {
            *delivered.entry(k).or_default() += v;
        }
        assert!(out.lost.is_empty());
        assert_eq!(delivered[&Some(EventKind::FileOpen)], n as u64);
        let text = String::from_utf8(gate.out.lock().unwrap().clone()).unwrap();
        let got: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            got,
            (0..n as u64).collect::<Vec<_>>(),
            "every line, in order"
        );
    }

    #[test]
    fn a_failed_write_is_lost_per_kind_and_reported_at_a_later_flush() {
        let gate = Gate::default();
        *gate.open.lock().unwrap() = true;
        *gate.fail.lock().unwrap() = true;
        let mut w = WriterThread::spawn("test", JsonLines::new(gate.clone())).unwrap();
        for i in 0..3 {
            w.push(&record(i), Some(EventKind::ProcessExec));
        }
        let mut f = w.flush();
        f.absorb(w.close());
        assert_eq!(f.lost[&Some(EventKind::ProcessExec)], 3);
        assert!(f.delivered.is_empty());
        assert_eq!(f.error.as_deref(), Some("disk full"));
    }
}
