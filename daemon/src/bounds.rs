//! Every user-space table keyed by event data has a cap, and reports its
//! use: a user who can make events can make keys (pids, uids, paths), so
//! none may grow with them. Health's `state_tables` shows each table's
//! `entries`, `cap` and `dropped` (entries evicted or not kept because
//! the table was full — what they cost is stated where each table is).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableUse {
    pub name: &'static str,
    pub entries: usize,
    pub cap: usize,
    pub dropped: u64,
}

impl TableUse {
    /// `<name>.entries`, `<name>.cap`, `<name>.dropped`.
    pub fn put(&self, into: &mut BTreeMap<String, u64>) {
        into.insert(format!("{}.entries", self.name), self.entries as u64);
        into.insert(format!("{}.cap", self.name), self.cap as u64);
        into.insert(format!("{}.dropped", self.name), self.dropped);
    }
}
