//! The hand-off between the event loop and an output that runs on its
//! own thread (syslog, NATS): the loop never waits on a network. The
//! queue is bounded in bytes; what does not fit is refused whole, in
//! order (never a gap filled later), and the worker reports what it
//! delivered and lost back through the same lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Flushed, KindCounts};
use crate::kind::EventKind;

/// One serialized event (JSON, no newline) and its kind.
#[derive(Debug, Clone)]
pub struct Record {
    pub bytes: Vec<u8>,
    pub kind: Option<EventKind>,
}

impl Record {
    pub fn count(records: &[Record]) -> KindCounts {
        let mut k = KindCounts::new();
        for r in records {
            *k.entry(r.kind).or_default() += 1;
        }
        k
    }
}

/// What the worker says about its far end (health).
#[derive(Debug, Default, Clone)]
pub struct WorkerState {
    pub connected: bool,
    /// Why events cannot be delivered now; None while they are.
    pub error: Option<String>,
    pub counters: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Record>,
    bytes: usize,
    outcome: Flushed,
    state: WorkerState,
    /// Set by `stop`: deliver what is queued until then, then report
    /// the rest lost.
    deadline: Option<Instant>,
}

pub struct Queue {
    inner: Mutex<Inner>,
    wake: Condvar,
    max_bytes: usize,
}

/// The queue's backlog and the worker's state, for health.
pub struct Snapshot {
    pub backlog_events: u64,
    pub backlog_bytes: u64,
    pub state: WorkerState,
}

impl Queue {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            wake: Condvar::new(),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A worker that panicked holding the lock left consistent data:
        // every change under it is a single push or take.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loop side: queues records in order until one does not fit; that
    /// one and the rest are handed back.
    pub fn offer(&self, records: Vec<Record>) -> Vec<Record> {
        let mut g = self.lock();
        let mut rest = Vec::new();
        for r in records {
            if !rest.is_empty() || g.bytes + r.bytes.len() > self.max_bytes {
                rest.push(r);
                continue;
            }
            g.bytes += r.bytes.len();
            g.queue.push_back(r);
        }
        drop(g);
        self.wake.notify_all();
        rest
    }

    /// Loop side: what the worker delivered and lost since the last call.
    pub fn take_outcome(&self) -> Flushed {
        std::mem::take(&mut self.lock().outcome)
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        Snapshot {
            backlog_events: g.queue.len() as u64,
            backlog_bytes: g.bytes as u64,
            state: g.state.clone(),
        }
    }

    /// Loop side: the worker delivers what it can within `grace`, then
    /// stops.
    pub fn stop(&self, grace: Duration) {
        self.lock().deadline = Some(Instant::now() + grace);
        self.wake.notify_all();
    }

    /// Worker side: whether `stop` was called, and its deadline passed.
    pub fn stopping(&self) -> (bool, bool) {
        let g = self.lock();
        match g.deadline {
            None => (false, false),
            Some(d) => (true, Instant::now() >= d),
        }
    }

    /// Worker side: up to `max_bytes` of records (at least one), waiting
    /// up to `wait` for the first. Empty on timeout or stop.
    pub fn take(&self, max_bytes: usize, wait: Duration) -> Vec<Record> {
        let mut g = self.lock();
        if g.queue.is_empty() && g.deadline.is_none() {
            g = self
                .wake
                .wait_timeout_while(g, wait, |i| i.queue.is_empty() && i.deadline.is_none())
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let mut out = Vec::new();
        let mut size = 0;
        while let Some(r) = g.queue.front() {
            if !out.is_empty() && size + r.bytes.len() > max_bytes {
                break;
            }
            size += r.bytes.len();
            if let Some(r) = g.queue.pop_front() {
                out.push(r);
            }
        }
        g.bytes -= size;
        out
    }

    /// Worker side: records taken but not delivered go back to the front,
    /// in their order.
    pub fn put_back(&self, records: Vec<Record>) {
        let mut g = self.lock();
        for r in records.into_iter().rev() {
            g.bytes += r.bytes.len();
            g.queue.push_front(r);
        }
    }

    /// Worker side: sleeps up to `d`, less if stopped.
    pub fn pause(&self, d: Duration) {
        let g = self.lock();
        if g.deadline.is_none() {
            let _ = self.wake.wait_timeout_while(g, d, |i| i.deadline.is_none());
        }
    }

    /// Worker side: records accepted by the far end.
    pub fn delivered(&self, kinds: &KindCounts) {
        let mut g = self.lock();
        for (k, n) in kinds {
            *g.outcome.delivered.entry(*k).or_default() += n;
        }
    }

    /// Worker side: records that will never be delivered, and why.
    pub fn lost(&self, kinds: &KindCounts, why: &str) {
        let mut g = self.lock();
        for (k, n) in kinds {
            *g.outcome.lost.entry(*k).or_default() += n;
        }
        g.outcome.error = Some(why.to_string());
    }

    pub fn state(&self, f: impl FnOnce(&mut WorkerState)) {
        f(&mut self.lock().state);
    }

    /// Worker side, at stop: everything still queued.
    pub fn drain(&self) -> Vec<Record> {
        let mut g = self.lock();
        g.bytes = 0;
        g.queue.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> Record {
        Record {
            bytes: vec![b'x'; n],
            kind: Some(EventKind::ProcessExec),
        }
    }

    #[test]
    fn what_does_not_fit_is_refused_in_order_and_put_back_keeps_order() {
        let q = Queue::new(100);
        let rest = q.offer(vec![rec(60), rec(50), rec(10)]);
        assert_eq!(
            rest.len(),
            2,
            "the 10-byte one is not slipped in behind a refused one"
        );
        let taken = q.take(1000, Duration::ZERO);
        assert_eq!(taken.len(), 1);
        q.put_back(taken);
        assert_eq!(q.snapshot().backlog_bytes, 60);
        assert!(q.offer(vec![rec(40)]).is_empty());
        let t = q.take(1000, Duration::ZERO);
        assert_eq!(
            t.iter().map(|r| r.bytes.len()).collect::<Vec<_>>(),
            [60, 40]
        );
    }
}
