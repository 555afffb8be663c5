//! In-band loss at an output: the events an output could not deliver are
//! reported by a loss record written into that same output, first thing
//! once it accepts events again (a full disk freed, a collector back).
//! Until that record is itself delivered the count is kept.

use std::collections::BTreeMap;

use super::KindCounts;

pub struct LossNote {
    output: &'static str,
    hostname: String,
    lost: BTreeMap<String, u64>,
    why: String,
}

impl LossNote {
    pub fn new(output: &'static str, hostname: &str) -> Self {
        Self {
            output,
            hostname: hostname.to_string(),
            lost: BTreeMap::new(),
            why: String::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lost.is_empty()
    }

    /// Events of these kinds were lost; `why` names the cause.
    pub fn add(&mut self, kinds: &KindCounts, why: &str) {
        for (kind, n) in kinds {
            let name = kind.map_or("other", |k| k.name());
            *self.lost.entry(name.to_string()).or_default() += n;
        }
        if !kinds.is_empty() {
            self.why = why.to_string();
        }
    }

    /// The loss record to deliver before the next events (None when
    /// nothing is owed). Call `delivered` once it was.
    pub fn record(&self) -> Option<Vec<u8>> {
        if self.lost.is_empty() {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut out = Vec::with_capacity(512);
        crate::ocsf::output_loss_record(
            self.output,
            &self.lost,
            &self.why,
            now,
            &self.hostname,
            &mut out,
        );
        Some(out)
    }

    pub fn delivered(&mut self) {
        self.lost.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::EventKind;

    #[test]
    fn a_note_names_each_kind_and_is_kept_until_delivered() {
        let mut n = LossNote::new("nats", "h");
        assert!(n.record().is_none());
        let mut k = KindCounts::new();
        k.insert(Some(EventKind::ProcessExec), 3);
        k.insert(None, 1);
        n.add(&k, "spool full");
        n.add(&k, "spool full");
        let rec = n.record().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&rec).unwrap_or_default();
        assert_eq!(v["unmapped"]["lost_by_type"]["process_exec"], 6);
        assert_eq!(v["unmapped"]["lost_by_type"]["other"], 2);
        assert_eq!(v["unmapped"]["missing"], 8);
        assert_eq!(v["metadata"]["log_name"], "output:nats");
        assert!(n.record().is_some(), "kept until delivered");
        n.delivered();
        assert!(n.record().is_none());
    }
}
