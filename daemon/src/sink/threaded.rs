//! The event loop's side of an output that runs on its own thread: it
//! buffers a batch, hands it to the queue at flush, and reports what the
//! worker delivered and lost. Events the queue refuses (the far end too
//! slow or away for long) are lost per kind, and a loss record goes
//! ahead of the next events the queue accepts.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::loss_note::LossNote;
use super::queue::{Queue, Record};
use super::{Flushed, Sink, SinkStatus};
use crate::kind::EventKind;

/// How long a stopping worker may still deliver.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct ThreadedSink {
    name: &'static str,
    queue: Arc<Queue>,
    batch: Vec<Record>,
    note: LossNote,
    thread: Option<JoinHandle<()>>,
    refused: u64,
}

impl ThreadedSink {
    /// `run` is the worker: it takes from the queue until stopped.
    pub fn spawn(
        name: &'static str,
        hostname: &str,
        queue_bytes: usize,
        run: impl FnOnce(Arc<Queue>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let queue = Arc::new(Queue::new(queue_bytes));
        let q = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name(format!("output-{name}"))
            .spawn(move || run(q))?;
        Ok(Self {
            name,
            queue,
            batch: Vec::new(),
            note: LossNote::new(name, hostname),
            thread: Some(thread),
            refused: 0,
        })
    }
}

impl Sink for ThreadedSink {
    fn push(&mut self, record: &[u8], kind: Option<EventKind>) {
        self.batch.push(Record {
            bytes: record.to_vec(),
            kind,
        });
    }

    fn flush(&mut self) -> Flushed {
        let mut out = Flushed::default();
        if !self.batch.is_empty() {
            let mut records = std::mem::take(&mut self.batch);
            let with_note = self.note.record().map(|bytes| {
                records.insert(0, Record { bytes, kind: None });
            });
            let total = records.len();
            let mut refused = self.queue.offer(records);
            if with_note.is_some() {
                if refused.len() < total {
                    self.note.delivered();
                } else {
                    // The note itself was refused: it stays owed, and is
                    // not counted as a lost event.
                    refused.remove(0);
                }
            }
            if !refused.is_empty() {
                let kinds = Record::count(&refused);
                let why = format!("the {} output's backlog is full", self.name);
                if self.refused == 0 {
                    log::warn!("{why}: events are counted lost until it drains");
                }
                self.refused += refused.len() as u64;
                self.note.add(&kinds, &why);
                out.lost = kinds;
                out.error = Some(why);
            } else {
                self.refused = 0;
            }
        }
        let worker_error = out.error.take();
        out.absorb(self.queue.take_outcome());
        out.error = worker_error.or(out.error);
        out
    }

    fn status(&self) -> SinkStatus {
        let s = self.queue.snapshot();
        let mut counters: std::collections::BTreeMap<String, u64> = s
            .state
            .counters
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        counters.insert("backlog_events".into(), s.backlog_events);
        counters.insert("backlog_bytes".into(), s.backlog_bytes);
        counters.insert("connected".into(), u64::from(s.state.connected));
        SinkStatus {
            counters,
            error: s.state.error.or_else(|| {
                (self.refused > 0).then(|| format!("the {} output's backlog is full", self.name))
            }),
        }
    }

    fn close(&mut self) -> Flushed {
        let mut out = self.flush();
        self.queue.stop(STOP_GRACE);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        out.absorb(self.queue.take_outcome());
        out
    }
}

impl Drop for ThreadedSink {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A worker that takes nothing until `open`, then records what it
    /// receives and delivers it.
    type Shared<T> = Arc<Mutex<T>>;

    fn gated() -> (ThreadedSink, Shared<bool>, Shared<Vec<Record>>) {
        let open = Arc::new(Mutex::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (o, g) = (Arc::clone(&open), Arc::clone(&got));
        let sink = ThreadedSink::spawn("test", "h", 1000, move |q| {
            loop {
                let (stopping, _) = q.stopping();
                if *o.lock().unwrap() {
                    let recs = q.take(usize::MAX, Duration::from_millis(10));
                    q.delivered(&Record::count(&recs));
                    g.lock().unwrap().extend(recs);
                } else {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if stopping && q.snapshot().backlog_events == 0 {
                    return;
                }
            }
        })
        .unwrap();
        (sink, open, got)
    }

    #[test]
    fn a_full_backlog_loses_per_kind_and_the_next_accepted_batch_reports_it_first() {
        let (mut sink, open, got) = gated();
        let ev = format!("{{\"class_uid\":1007,\"pad\":\"{}\"}}", "x".repeat(80));
        for _ in 0..20 {
            sink.push(ev.as_bytes(), Some(EventKind::ProcessExec));
        }
        let f = sink.flush();
        let lost = f.lost[&Some(EventKind::ProcessExec)];
        assert!(
            (10..20).contains(&lost),
            "{lost} of 20 refused by a 1000-byte queue"
        );
        assert!(sink.status().error.is_some(), "failing while refusing");
        *open.lock().unwrap() = true;
        std::thread::sleep(Duration::from_millis(100));
        sink.push(ev.as_bytes(), Some(EventKind::ProcessExec));
        sink.flush();
        std::thread::sleep(Duration::from_millis(100));
        let out = sink.close();
        let got = got.lock().unwrap();
        let note_at = got
            .iter()
            .position(|r| r.kind.is_none())
            .expect("a loss record");
        assert_eq!(
            note_at,
            20 - lost as usize,
            "the note comes before the next events"
        );
        let v: serde_json::Value = serde_json::from_slice(&got[note_at].bytes).unwrap();
        assert_eq!(v["unmapped"]["lost_by_type"]["process_exec"], lost);
        assert_eq!(got.len() as u64, 20 - lost + 2);
        assert!(out.lost.is_empty());
    }
}
