//! De-duplication across a provider switch (make-before-break): while
//! both providers run, what the old one reported is remembered, and the
//! new one's copy of it is dropped as a duplicate.

use std::collections::HashSet;
use std::time::Instant;

use crate::event::{Event, Provider};

/// Bound of the keys a switch remembers (each up to a path's length).
/// Past it the old provider's events are no longer remembered, so the
/// new provider's copies of them are reported twice: a duplicate is
/// better than a hidden event. Counted (`dropped`).
pub const MAX_KEYS: usize = 65_536;

pub struct SwitchOverlap {
    old: Provider,
    until: Instant,
    seen: HashSet<String>,
    dropped: u64,
}

/// What identifies the same activity seen by both providers.
fn key(event: &Event) -> Option<String> {
    Some(match event {
        Event::Process(p) => format!(
            "p/{}/{:?}/{:?}",
            p.process.pid,
            std::mem::discriminant(&p.activity),
            p.process.exe
        ),
        Event::File(f) => format!(
            "f/{}/{:?}/{:?}",
            f.process.pid,
            std::mem::discriminant(&f.activity),
            f.file.path
        ),
        Event::Network(n) => format!("n/{}/{:?}/{:?}", n.process.pid, n.activity, n.remote),
        // Only eBPF sees io_uring: never two of them.
        Event::Auth(_) | Event::IoUring(_) | Event::Loss(_) => return None,
    })
}

impl SwitchOverlap {
    pub fn new(old: Provider, until: Instant) -> Self {
        Self {
            old,
            until,
            seen: HashSet::new(),
            dropped: 0,
        }
    }

    pub fn until(&self) -> Instant {
        self.until
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Old-provider events not remembered because the set was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether `event` is the new provider's copy of one the old provider
    /// reported; the old provider's events are remembered.
    pub fn is_duplicate(&mut self, event: &Event) -> bool {
        let Some(k) = key(event) else {
            return false;
        };
        self.check(event.provider(), k)
    }

    fn check(&mut self, provider: Provider, key: String) -> bool {
        if provider != self.old {
            return self.seen.contains(&key);
        }
        if self.seen.len() < MAX_KEYS {
            self.seen.insert(key);
        } else {
            self.dropped += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_during_a_switch_stays_within_the_cap_and_duplicates_are_reported() {
        let mut o = SwitchOverlap::new(Provider::Auditd, Instant::now());
        for i in 0..2 * MAX_KEYS {
            assert!(!o.check(Provider::Auditd, format!("f/{i}")));
        }
        assert_eq!(o.len(), MAX_KEYS);
        assert_eq!(o.dropped(), MAX_KEYS as u64);
        assert!(o.check(Provider::Ebpf, "f/0".into()), "remembered: dropped");
        assert!(
            !o.check(Provider::Ebpf, format!("f/{}", MAX_KEYS + 1)),
            "not remembered: reported twice, not hidden"
        );
    }
}
