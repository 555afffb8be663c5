//! The NATS worker's two paths: publish what the loop queued (what is
//! not acknowledged goes to the spool with its message id), or publish
//! from the spool; and the spool's intake while the server is away.

use std::time::Duration;

use async_nats::jetstream::context::Publish;

use super::Worker;
use super::batch::{Message, group};
use crate::sink::KindCounts;
use crate::sink::queue::Record;

/// Messages in flight before their acknowledgements are awaited.
const WINDOW: usize = 256;

fn kinds_of<'a>(messages: impl IntoIterator<Item = &'a Message>) -> KindCounts {
    let mut k = KindCounts::new();
    for m in messages {
        for (kind, n) in Record::count(&m.events) {
            *k.entry(kind).or_default() += n;
        }
    }
    k
}

impl Worker {
    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}.{}", self.id_prefix, self.seq)
    }

    fn group(&mut self, records: Vec<Record>) -> Vec<Message> {
        let max = self.cfg.batch_events.max(1) as usize;
        let prefix = self.id_prefix.clone();
        let seq = &mut self.seq;
        group(records, max, || {
            *seq += 1;
            format!("{prefix}.{seq}")
        })
    }

    /// Events into the spool, in order: an owed loss record first; what
    /// does not fit is lost and owed.
    pub(super) fn spool_records(&mut self, records: Vec<Record>) {
        if records.is_empty() && self.note.is_empty() {
            return;
        }
        let mut messages = Vec::new();
        if let Some(bytes) = self.note.record() {
            let id = self.next_id();
            messages.push(Message {
                id,
                class: "base_event",
                events: vec![Record { bytes, kind: None }],
            });
        }
        let noted = !messages.is_empty();
        messages.extend(self.group(records));
        self.spool_messages(&messages, noted);
    }

    /// Messages into the spool; those that do not fit are lost (a loss
    /// record, `noted`, is not itself counted as a lost event).
    fn spool_messages(&mut self, messages: &[Message], noted: bool) {
        let written = match self.spool.append(messages) {
            Ok(n) => n,
            Err(e) => {
                log::warn!(
                    "nats output: {}: cannot write the spool: {e}",
                    self.spool_dir.display()
                );
                0
            }
        };
        if noted && written > 0 {
            self.note.delivered();
        }
        let skip = written.max(usize::from(noted));
        let lost = kinds_of(messages.iter().skip(skip));
        if !lost.is_empty() {
            let why = format!(
                "the NATS spool is full ({} at {})",
                self.cfg.spool_max_bytes,
                self.spool_dir.display()
            );
            self.note.add(&lost, &why);
            self.q.lost(&lost, &why);
        }
    }

    /// Publishes messages and awaits their acknowledgements; how many
    /// were acknowledged in order (the rest must be sent again).
    async fn publish(&self, batch: &[Message]) -> (usize, Option<String>) {
        let Some((_, js)) = &self.js else {
            return (0, Some("not connected".into()));
        };
        let mut acks = Vec::with_capacity(batch.len());
        for m in batch {
            let subject = format!("{}.{}", self.cfg.subject_prefix, m.class);
            let mut msg = Publish::build().payload(m.payload()).message_id(&m.id);
            if m.events.len() > 1 {
                msg = msg.header("Mdatp-Events", m.events.len().to_string().as_str());
            }
            match js.send_publish(subject, msg).await {
                Ok(ack) => acks.push(ack),
                Err(e) => return (0, Some(format!("publish to {}: {e}", self.target))),
            }
        }
        for (i, ack) in acks.into_iter().enumerate() {
            if let Err(e) = ack.await {
                return (
                    i,
                    Some(format!("no acknowledgement from {}: {e}", self.target)),
                );
            }
        }
        (batch.len(), None)
    }

    pub(super) async fn publish_queued(&mut self) -> Result<(), String> {
        let records = self.q.take(8 << 20, Duration::ZERO);
        if records.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            return Ok(());
        }
        let messages = self.group(records);
        let mut done = 0;
        for chunk in messages.chunks(WINDOW) {
            let (acked, err) = self.publish(chunk).await;
            self.delivered(&chunk[..acked]);
            done += acked;
            if let Some(e) = err {
                // The rest keeps its ids: a copy the server did store is
                // dropped by the stream's de-duplication.
                self.spool_messages(&messages[done..], false);
                return Err(e);
            }
        }
        Ok(())
    }

    pub(super) async fn publish_spooled(&mut self) -> Result<(), String> {
        let spooled = self
            .spool
            .read(WINDOW)
            .map_err(|e| format!("{}: cannot read the spool: {e}", self.spool_dir.display()))?;
        if spooled.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            return Ok(());
        }
        let (messages, ends): (Vec<Message>, Vec<(u64, u64)>) = spooled.into_iter().unzip();
        let (acked, err) = self.publish(&messages).await;
        if acked > 0 {
            self.delivered(&messages[..acked]);
            self.spool.commit(ends[acked - 1]).map_err(|e| {
                format!("{}: cannot record progress: {e}", self.spool_dir.display())
            })?;
        }
        err.map_or(Ok(()), Err)
    }

    fn delivered(&self, done: &[Message]) {
        if done.is_empty() {
            return;
        }
        let kinds = kinds_of(done);
        let events: u64 = kinds.values().sum();
        self.q.delivered(&kinds);
        self.q.state(|s| {
            *s.counters.entry("acknowledged_messages").or_default() += done.len() as u64;
            *s.counters.entry("acknowledged_events").or_default() += events;
        });
    }
}
