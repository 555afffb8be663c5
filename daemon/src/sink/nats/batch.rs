//! NATS messages: events of one OCSF class, up to `batch_events` per
//! message (JSON Lines when more than one), each message with its own id
//! (`<host>.<run>.<sequence>`). Batching is what lets a two-core host
//! publish 100k events/s with an acknowledgement for every message; with
//! `batch_events: 1` each event is its own message.

use super::super::class_name;
use super::super::queue::Record;

/// NATS servers refuse payloads over 1 MiB by default.
pub const MAX_PAYLOAD: usize = 512 << 10;

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub class: &'static str,
    pub events: Vec<Record>,
}

impl Message {
    pub fn size(&self) -> usize {
        self.events.iter().map(|e| e.bytes.len() + 1).sum()
    }

    /// One event as is; several as JSON Lines.
    pub fn payload(&self) -> bytes::Bytes {
        if let [one] = self.events.as_slice() {
            return bytes::Bytes::copy_from_slice(&one.bytes);
        }
        let mut out = Vec::with_capacity(self.size());
        for e in &self.events {
            out.extend_from_slice(&e.bytes);
            out.push(b'\n');
        }
        out.into()
    }
}

/// Records into messages: grouped by class (order kept within a class,
/// which is all a subject can show), at most `max_events` and about
/// `MAX_PAYLOAD` bytes each; ids in creation order.
pub fn group(
    records: Vec<Record>,
    max_events: usize,
    mut next_id: impl FnMut() -> String,
) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    // The open message of each class (an index into out).
    let mut open: Vec<(&'static str, usize, usize)> = Vec::new();
    for r in records {
        let class = class_name(&r.bytes);
        let slot = open.iter().position(|o| o.0 == class);
        let fits = slot.is_some_and(|s| {
            let (_, i, size) = open[s];
            out[i].events.len() < max_events && size + r.bytes.len() < MAX_PAYLOAD
        });
        match (slot, fits) {
            (Some(s), true) => {
                let (_, i, size) = &mut open[s];
                *size += r.bytes.len() + 1;
                out[*i].events.push(r);
            }
            _ => {
                let size = r.bytes.len() + 1;
                out.push(Message {
                    id: next_id(),
                    class,
                    events: vec![r],
                });
                let entry = (class, out.len() - 1, size);
                match slot {
                    Some(s) => open[s] = entry,
                    None => open.push(entry),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::EventKind;

    fn rec(class: u32, n: usize) -> Record {
        Record {
            bytes: format!("{{\"class_uid\":{class},\"n\":{n}}}").into_bytes(),
            kind: Some(EventKind::ProcessExec),
        }
    }

    #[test]
    fn messages_hold_one_class_in_order_and_at_most_max_events() {
        let recs = vec![
            rec(1007, 0),
            rec(1001, 1),
            rec(1007, 2),
            rec(1007, 3),
            rec(1001, 4),
        ];
        let mut seq = 0;
        let msgs = group(recs, 2, || {
            seq += 1;
            format!("h.1.{seq}")
        });
        let shape: Vec<(&str, String, usize)> = msgs
            .iter()
            .map(|m| (m.class, m.id.clone(), m.events.len()))
            .collect();
        assert_eq!(
            shape,
            [
                ("process_activity", "h.1.1".into(), 2),
                ("file_system_activity", "h.1.2".into(), 2),
                ("process_activity", "h.1.3".into(), 1),
            ]
        );
        assert_eq!(
            &msgs[0].payload()[..],
            b"{\"class_uid\":1007,\"n\":0}\n{\"class_uid\":1007,\"n\":2}\n"
        );
        assert_eq!(&msgs[2].payload()[..], b"{\"class_uid\":1007,\"n\":3}");
    }
}
