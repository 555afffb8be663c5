//! Hot event sources: events per path and per executable since start, so
//! an admin can see what to exclude. Bounded: past the cap, new keys are
//! counted under "<other>".

use std::fmt::Write;
use std::time::Instant;

use foldhash::{HashMap, HashMapExt};

use crate::event::SharedStr;

const MAX_KEYS: usize = 50_000;
const OTHER: &str = "<other>";

#[derive(Debug)]
pub struct HotSources {
    since: Instant,
    // Keys share the event's text (no copy per event); foldhash, not
    // SipHash: two lookups per event showed as ~10% of the pipeline.
    paths: HashMap<SharedStr, u64>,
    executables: HashMap<SharedStr, u64>,
}

impl Default for HotSources {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            paths: HashMap::new(),
            executables: HashMap::new(),
        }
    }
}

fn bump(map: &mut HashMap<SharedStr, u64>, key: &SharedStr, n: u64) {
    if let Some(c) = map.get_mut(key) {
        *c += n;
    } else if map.len() < MAX_KEYS {
        map.insert(key.clone(), n);
    } else {
        *map.entry(OTHER.into()).or_default() += n;
    }
}

impl HotSources {
    pub fn path(&mut self, path: &SharedStr, n: u64) {
        bump(&mut self.paths, path, n);
    }

    pub fn executable(&mut self, exe: &SharedStr, n: u64) {
        bump(&mut self.executables, exe, n);
    }

    /// The top `n` of each table with events/s since start.
    pub fn table(&self, n: usize) -> String {
        let secs = self.since.elapsed().as_secs_f64().max(0.001);
        let mut out = String::new();
        for (title, map) in [("path", &self.paths), ("executable", &self.executables)] {
            let mut rows: Vec<(&SharedStr, &u64)> = map.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let _ = writeln!(
                out,
                "hot sources by {title} (events, events/s over {secs:.0}s):"
            );
            for (k, c) in rows.into_iter().take(n) {
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
}
