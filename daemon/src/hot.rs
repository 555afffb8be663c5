//! Hot event sources: events per path and per executable since start, so
//! an admin can see what to exclude. Bounded by keys and by key bytes
//! (paths are event data, up to 4 KiB each): past either cap, new keys
//! are counted under "<other>".

use std::fmt::Write;
use std::time::Instant;

use foldhash::HashMap;

use crate::event::SharedStr;

const MAX_KEYS: usize = 50_000;
/// Bound of the key text per table: 50,000 keys of 4 KiB would be 200 MiB.
const MAX_KEY_BYTES: usize = 8 << 20;
const OTHER: &str = "<other>";

/// Events per key of one table.
#[derive(Debug, Default)]
struct Counts {
    // Keys share the event's text (no copy per event); foldhash, not
    // SipHash: two lookups per event showed as ~10% of the pipeline.
    by_key: HashMap<SharedStr, u64>,
    key_bytes: usize,
    /// New keys counted under `<other>` because the table was full.
    dropped: u64,
}

impl Counts {
    fn bump(&mut self, key: &SharedStr, n: u64) {
        if let Some(c) = self.by_key.get_mut(key) {
            *c = c.saturating_add(n);
        } else if self.by_key.len() < MAX_KEYS && self.key_bytes + key.len() <= MAX_KEY_BYTES {
            self.key_bytes += key.len();
            self.by_key.insert(key.clone(), n);
        } else {
            self.dropped += 1;
            let c = self.by_key.entry(OTHER.into()).or_default();
            *c = c.saturating_add(n);
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

    /// The top `n` keys of each table, with their counts, highest first:
    /// (`path` or `executable`, key, events).
    pub fn top(&self, n: usize) -> Vec<(&'static str, String, u64)> {
        let mut out = Vec::new();
        for (title, t) in [("path", &self.paths), ("executable", &self.executables)] {
            let mut rows: Vec<(&SharedStr, &u64)> = t.by_key.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            out.extend(
                rows.into_iter()
                    .take(n)
                    .map(|(k, c)| (title, k.to_string(), *c)),
            );
        }
        out
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
        for title in ["path", "executable"] {
            let _ = writeln!(
                out,
                "hot sources by {title} (events, events/s over {secs:.0}s):"
            );
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
    fn long_paths_beyond_the_byte_cap_count_under_other() {
        let mut h = HotSources::default();
        for i in 0..5_000 {
            let p: SharedStr = format!("{i:05}{}", "x".repeat(4000)).into();
            h.path(&p, 1);
        }
        let mut t = Vec::new();
        h.table_use(&mut t);
        assert!(t[0].entries <= MAX_KEY_BYTES, "{t:?}");
        assert!(t[0].dropped > 0, "{t:?}");
        let other = h.top(1_000_000).into_iter().find(|r| r.1 == OTHER);
        assert_eq!(
            other.map(|r| r.2),
            Some(t[0].dropped),
            "every event counted"
        );
    }
}
