//! Hot event sources: events per path and per executable since start, so
//! an admin can see what to exclude. Each table keeps at most `MAX_KEYS`
//! keys and `MAX_KEY_BYTES` of key text (paths are event data, up to 4 KiB
//! each); when a new key would pass either, the table keeps its busiest
//! half and counts the rest under "<other>" (a lossy top-k: a source busy
//! enough to matter stays, one that arrives late still gets in, and the
//! memory stays small however many distinct files a host touches).

use std::fmt::Write;
use std::time::Instant;

use foldhash::HashMap;

use crate::event::SharedStr;

const MAX_KEYS: usize = 4_096;
/// Bound of the key text per table.
const MAX_KEY_BYTES: usize = 1 << 20;
const OTHER: &str = "<other>";

/// Events per key of one table.
#[derive(Debug, Default)]
struct Counts {
    // Keys share the event's text (no copy per event); foldhash, not
    // SipHash: two lookups per event showed as ~10% of the pipeline.
    by_key: HashMap<SharedStr, u64>,
    key_bytes: usize,
    /// Keys dropped by compaction (their events are in `other`).
    dropped: u64,
    /// Events of dropped keys.
    other: u64,
    /// The most events a dropped key had: a key counted again after its
    /// drop may have had up to this many more.
    floor: u64,
}

impl Counts {
    fn bump(&mut self, key: &SharedStr, n: u64) {
        if let Some(c) = self.by_key.get_mut(key) {
            *c = c.saturating_add(n);
            return;
        }
        if self.by_key.len() >= MAX_KEYS || self.key_bytes + key.len() > MAX_KEY_BYTES {
            self.compact();
        }
        self.key_bytes += key.len();
        self.by_key.insert(key.clone(), n);
    }

    /// Keeps the busiest keys within half of each cap; the others' events
    /// go to `other`. Runs once per `MAX_KEYS / 2` new keys at most.
    fn compact(&mut self) {
        let mut rows: Vec<(SharedStr, u64)> = self.by_key.drain().collect();
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.1));
        self.key_bytes = 0;
        for (k, c) in rows {
            let fits =
                self.by_key.len() < MAX_KEYS / 2 && self.key_bytes + k.len() <= MAX_KEY_BYTES / 2;
            if fits {
                self.key_bytes += k.len();
                self.by_key.insert(k, c);
            } else {
                self.dropped += 1;
                self.other = self.other.saturating_add(c);
                self.floor = self.floor.max(c);
            }
        }
    }
}

#[derive(Debug)]
pub struct HotSources {
    since: Instant,
    paths: Counts,
    executables: Counts,
}

impl Default for HotSources {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            paths: Counts::default(),
            executables: Counts::default(),
        }
    }
}

impl HotSources {
    pub fn path(&mut self, path: &SharedStr, n: u64) {
        self.paths.bump(path, n);
    }

    pub fn executable(&mut self, exe: &SharedStr, n: u64) {
        self.executables.bump(exe, n);
    }

    /// Both tables' use, by key bytes (the binding cap for long paths).
    pub fn table_use(&self, out: &mut Vec<crate::bounds::TableUse>) {
        for (name, t) in [
            ("hot_path_bytes", &self.paths),
            ("hot_executable_bytes", &self.executables),
        ] {
            out.push(crate::bounds::TableUse {
                name,
                entries: t.key_bytes,
                cap: MAX_KEY_BYTES,
                dropped: t.dropped,
            });
        }
    }

    /// The top `n` keys of each table, with their counts, highest first,
    /// and `<other>` (the dropped keys' events) where there are any:
    /// (`path` or `executable`, key, events).
    pub fn top(&self, n: usize) -> Vec<(&'static str, String, u64)> {
        let mut out = Vec::new();
        for (title, t) in [("path", &self.paths), ("executable", &self.executables)] {
            let mut rows: Vec<(&str, u64)> = t.by_key.iter().map(|(k, c)| (&**k, *c)).collect();
            if t.other > 0 {
                rows.push((OTHER, t.other));
            }
            rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            out.extend(
                rows.into_iter()
                    .take(n)
                    .map(|(k, c)| (title, k.to_string(), c)),
            );
        }
        out
    }

    /// Per table: the most events a key dropped from it had (0: nothing
    /// dropped, every count exact; else a count may be short by this).
    pub fn uncertainty(&self) -> [(&'static str, u64); 2] {
        [
            ("path", self.paths.floor),
            ("executable", self.executables.floor),
        ]
    }

    /// Seconds since counting began.
    pub fn seconds(&self) -> f64 {
        self.since.elapsed().as_secs_f64().max(0.001)
    }

    /// The top `n` of each table with events/s since start.
    pub fn table(&self, n: usize) -> String {
        let secs = self.seconds();
        let mut out = String::new();
        let rows = self.top(n);
        for (title, floor) in self.uncertainty() {
            let _ = writeln!(
                out,
                "hot sources by {title} (events, events/s over {secs:.0}s):"
            );
            if floor > 0 {
                let _ = writeln!(
                    out,
                    "  (quieter {title}s were folded into {OTHER}: a count may be short by up to {floor})"
                );
            }
            for (_, k, c) in rows.iter().filter(|r| r.0 == title) {
                let _ = writeln!(out, "  {c:>10} {:>10.1}/s  {k}", *c as f64 / secs);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_by_count() {
        let mut h = HotSources::default();
        h.path(&"/a".into(), 1);
        h.path(&"/b".into(), 5);
        h.executable(&"/bin/x".into(), 2);
        let t = h.table(10);
        let a = t.find("/a").expect("a");
        let b = t.find("/b").expect("b");
        assert!(b < a, "{t}");
        assert!(t.contains("/bin/x"));
    }

    #[test]
    fn long_paths_stay_within_the_byte_cap_and_every_event_is_counted() {
        let mut h = HotSources::default();
        for i in 0..5_000 {
            let p: SharedStr = format!("{i:05}{}", "x".repeat(4000)).into();
            h.path(&p, 1);
        }
        let mut t = Vec::new();
        h.table_use(&mut t);
        assert!(t[0].entries <= MAX_KEY_BYTES, "{t:?}");
        assert!(t[0].dropped > 0, "{t:?}");
        let total: u64 = h
            .top(usize::MAX)
            .into_iter()
            .filter(|r| r.0 == "path")
            .map(|r| r.2)
            .sum();
        assert_eq!(total, 5_000, "every event counted");
    }

    /// A source that turns busy after 100,000 distinct quiet ones is at
    /// the top, with its events counted since it last entered the table.
    #[test]
    fn a_late_busy_source_reaches_the_top_past_many_quiet_ones() {
        let mut h = HotSources::default();
        for i in 0..100_000 {
            h.path(&format!("/quiet/{i}").into(), 1);
        }
        let busy: SharedStr = "/var/log/busy".into();
        for i in 0..50_000 {
            h.path(&busy, 1);
            h.path(&format!("/more/{i}").into(), 1);
        }
        let top: Vec<_> = h.top(2).into_iter().filter(|r| r.1 != OTHER).collect();
        assert_eq!(top[0].1, "/var/log/busy", "{top:?}");
        let [(_, floor), _] = h.uncertainty();
        assert!(top[0].2 + floor >= 50_000, "{top:?} floor {floor}");
        assert!(h.paths.by_key.len() <= MAX_KEYS);
        assert!(h.table(3).contains("may be short by up to"));
    }
}
