//! What repeats from record to record, serialized once and copied: a
//! record's class and activity fields, the host's `device` object, and
//! the `actor` of the last record. In a storm nearly every record names
//! the same few processes; writing their actor again (the entity id and
//! executable escaped, the numbers formatted) was 13% of the event loop
//! (docs/PERFORMANCE-PIPELINE.md, "Pre-serialized fragments").
//!
//! The actor is reused only when every field it writes is equal to the
//! memo's (shared strings compare by pointer first, then by content), so
//! a record can never carry another process's identity.

use super::{Class, class_fields};
use crate::event::{ProcessInfo, SharedStr};
use crate::json::{Obj, object_in};

/// Per-writer state: one per pipeline (the hot path), or a throwaway one
/// for tools and tests (`super::write`).
pub struct Fragments {
    /// `device` in full (index 0) and compact (index 1) records.
    device: [Vec<u8>; 2],
    actor: ActorMemo,
    /// The class and activity fields (`super::class_fields`) of each pair
    /// seen, keyed by class, activity id, the activity name's address (a
    /// constant: a pair written with two names is two entries) and
    /// compactness. A few dozen at most: every pair is a constant.
    heads: Vec<(HeadKey, Box<[u8]>)>,
}

type HeadKey = (u64, u64, usize, bool);

impl Fragments {
    pub fn new(hostname: &str) -> Self {
        let device = |compact| {
            let mut b = Vec::new();
            object_in(&mut b, compact, |d| {
                d.str("hostname", hostname)
                    .u64("type_id", 0)
                    .label("type", "Unknown");
            });
            b
        };
        Fragments {
            device: [device(false), device(true)],
            actor: ActorMemo::default(),
            heads: Vec::new(),
        }
    }

    /// The host as OCSF's `device`. OCSF requires a device type; the
    /// sensor does not classify its host.
    pub(super) fn device(&self, o: &mut Obj<'_>) {
        let bytes = &self.device[usize::from(o.is_compact())];
        o.raw_bytes("device", bytes);
    }

    /// A record's first fields: its class and activity.
    pub(super) fn head(&mut self, o: &mut Obj<'_>, class: &Class, activity: (u64, &'static str)) {
        let compact = o.is_compact();
        let key = (class.uid, activity.0, activity.1.as_ptr() as usize, compact);
        let i = match self.heads.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let mut b = Vec::new();
                object_in(&mut b, compact, |h| class_fields(h, class, activity));
                // The fields without the object's braces.
                let fields = b[1..b.len() - 1].to_vec().into_boxed_slice();
                self.heads.push((key, fields));
                self.heads.len() - 1
            }
        };
        o.fields(&self.heads[i].1);
    }

    /// `actor` of a file, network or login event: `write` fills it the
    /// first time, copied while the same process acts.
    pub(super) fn actor(
        &mut self,
        o: &mut Obj<'_>,
        p: &ProcessInfo,
        write: impl FnOnce(&mut Obj<'_>, &ProcessInfo),
    ) {
        let compact = o.is_compact();
        let memo = &mut self.actor;
        if !memo.holds(p, compact) {
            memo.bytes.clear();
            object_in(&mut memo.bytes, compact, |a| {
                a.obj("process", |x| write(x, p));
            });
            memo.key = Some(ActorKey::of(p, compact));
        }
        o.raw_bytes("actor", &memo.bytes);
    }
}

#[derive(Default)]
struct ActorMemo {
    key: Option<ActorKey>,
    bytes: Vec<u8>,
}

/// Everything `actor` writes, compared before the bytes are reused.
struct ActorKey {
    pid: u32,
    tid: Option<u32>,
    entity_id: SharedStr,
    name: Option<SharedStr>,
    exe: Option<SharedStr>,
    uid: Option<u32>,
    compact: bool,
}

impl ActorKey {
    fn of(p: &ProcessInfo, compact: bool) -> Self {
        ActorKey {
            pid: p.pid,
            tid: p.tid,
            entity_id: p.entity_id.clone(),
            name: p.name.clone(),
            exe: p.exe.clone(),
            uid: p.creds.as_ref().map(|c| c.uid),
            compact,
        }
    }
}

impl ActorMemo {
    fn holds(&self, p: &ProcessInfo, compact: bool) -> bool {
        // `Arc<str>`'s equality compares pointers first, then content.
        self.key.as_ref().is_some_and(|k| {
            k.pid == p.pid
                && k.tid == p.tid
                && k.compact == compact
                && k.uid == p.creds.as_ref().map(|c| c.uid)
                && k.entity_id == p.entity_id
                && k.name == p.name
                && k.exe == p.exe
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        CallPath, Credentials, Event, FileActivity, FileEvent, FileInfo, Origin, Provider,
    };
    use crate::ocsf::{write, write_with};
    use crate::sink::Detail;

    fn open_by(p: &ProcessInfo, seq: u64) -> Event {
        Event::File(Box::new(FileEvent {
            time_ns: 1_700_000_000_000_000_000 + seq,
            activity: FileActivity::Open {
                access: 1,
                flags: 0,
                fd: 3,
            },
            file: FileInfo {
                path: Some(format!("/tmp/f{seq}").into()),
                inode: Some(seq),
                ..FileInfo::default()
            },
            error: None,
            process: p.clone(),
            origin: Origin {
                provider: Provider::Ebpf,
                source: "ebpf/cpu0".into(),
                sequence: seq,
                path: CallPath::Native,
            },
        }))
    }

    /// Every way one process's actor can differ from the last one's: a
    /// record must never carry the memo's identity where its own differs.
    #[test]
    fn a_reused_actor_is_byte_for_byte_what_a_fresh_writer_writes() {
        let a = ProcessInfo {
            pid: 100,
            tid: Some(100),
            entity_id: "aaaa-1".into(),
            name: Some("cat".into()),
            exe: Some("/usr/bin/cat".into()),
            creds: Some(Credentials {
                uid: 1000,
                ..Credentials::default()
            }),
            ..ProcessInfo::default()
        };
        let thread = ProcessInfo {
            tid: Some(101),
            ..a.clone()
        };
        // pid reused by a new process: equal pid, other entity id.
        let reused = ProcessInfo {
            entity_id: "aaaa-2".into(),
            ..a.clone()
        };
        let setuid = ProcessInfo {
            creds: Some(Credentials::default()),
            ..a.clone()
        };
        let renamed = ProcessInfo {
            name: Some("kitten".into()),
            ..a.clone()
        };
        let exec = ProcessInfo {
            exe: Some("/usr/bin/tac".into()),
            ..a.clone()
        };
        // Equal content in other allocations: reused, and still right.
        let copy = ProcessInfo {
            entity_id: a.entity_id.to_string().into(),
            exe: Some("/usr/bin/cat".into()),
            ..a.clone()
        };
        let no_creds = ProcessInfo {
            creds: None,
            ..a.clone()
        };
        let sequence = [
            &a, &a, &thread, &a, &reused, &a, &setuid, &renamed, &exec, &copy, &a, &no_creds, &a,
        ];
        let mut fx = Fragments::new("host");
        for detail in [Detail::Full, Detail::Compact, Detail::Full] {
            for (i, p) in sequence.iter().enumerate() {
                let ev = open_by(p, i as u64);
                let mut memo = Vec::new();
                write_with(&ev, &mut fx, detail, &mut memo);
                let mut fresh = Vec::new();
                write(&ev, "host", detail, &mut fresh);
                assert_eq!(
                    String::from_utf8_lossy(&memo),
                    String::from_utf8_lossy(&fresh),
                    "record {i} ({detail:?})"
                );
            }
        }
    }
}
