//! uid → user name, cached, looked up off the event loop. A passwd lookup
//! goes through NSS, which on fleet hosts can be LDAP or SSSD: a dead
//! directory server can take seconds per lookup, and the event loop must
//! not wait for it. Lookups run in a resolver thread; the loop waits for
//! an answer at most `WAIT` (local users answer from /etc/passwd in
//! microseconds), and not at all while an earlier lookup is still out —
//! then the event goes without the name, and later events of the uid get
//! it once the answer arrives.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use foldhash::HashMap;

use crate::event::SharedStr;

/// How long the loop waits for a lookup.
const WAIT: Duration = Duration::from_millis(20);
/// Bound of the cache (uids are event data): it starts over when full
/// (an entry is a uid and a short name: about 6 MiB at the cap).
const CAPACITY: usize = 65_536;
/// Bound of the lookups asked and not answered: while a directory is
/// slow, a flood of new uids would otherwise queue one lookup each.
/// Past it, a new uid's events go without the name (counted).
const MAX_PENDING: usize = 1024;

type Lookup = fn(u32) -> Option<String>;

fn nss_lookup(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

pub struct UserNames {
    cache: HashMap<u32, Option<SharedStr>>,
    /// Asked, not answered yet.
    pending: HashSet<u32>,
    ask: Sender<u32>,
    answers: Receiver<(u32, Option<String>)>,
    /// Names forgotten when the cache started over, and lookups not
    /// asked because too many were out.
    dropped: u64,
}

impl Default for UserNames {
    fn default() -> Self {
        Self::with_lookup(nss_lookup)
    }
}

impl UserNames {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_lookup(lookup: Lookup) -> Self {
        let (ask, questions) = channel::<u32>();
        let (tell, answers) = channel();
        // Ends when the sender side (this struct) is dropped.
        let spawned = std::thread::Builder::new()
            .name("mdatp-users".into())
            .spawn(move || {
                for uid in questions {
                    if tell.send((uid, lookup(uid))).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            log::warn!("user name resolver thread: {e}; user names are not reported");
        }
        Self {
            cache: HashMap::default(),
            pending: HashSet::new(),
            ask,
            answers,
            dropped: 0,
        }
    }

    pub fn table_use(&self) -> crate::bounds::TableUse {
        crate::bounds::TableUse {
            name: "user_names",
            entries: self.cache.len() + self.pending.len(),
            cap: CAPACITY + MAX_PENDING,
            dropped: self.dropped,
        }
    }

    fn keep(&mut self, uid: u32, name: Option<String>) {
        self.pending.remove(&uid);
        if self.cache.len() >= CAPACITY {
            self.dropped += self.cache.len() as u64;
            self.cache.clear();
        }
        self.cache.insert(uid, name.map(Into::into));
    }

    pub fn name(&mut self, uid: u32) -> Option<SharedStr> {
        // The hot path: a known uid, no lookup out.
        if self.pending.is_empty()
            && let Some(n) = self.cache.get(&uid)
        {
            return n.clone();
        }
        while let Ok((u, n)) = self.answers.try_recv() {
            self.keep(u, n);
        }
        if let Some(n) = self.cache.get(&uid) {
            return n.clone();
        }
        let busy = !self.pending.is_empty();
        if self.pending.len() >= MAX_PENDING && !self.pending.contains(&uid) {
            self.dropped += 1;
            return None;
        }
        if self.pending.insert(uid) && self.ask.send(uid).is_err() {
            return None;
        }
        if busy {
            // A lookup is slow right now: no event waits behind it.
            return None;
        }
        match self.answers.recv_timeout(WAIT) {
            Ok((u, n)) => {
                self.keep(u, n);
                self.cache.get(&uid).cloned().flatten()
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn slow(uid: u32) -> Option<String> {
        if uid >= 1000 {
            std::thread::sleep(Duration::from_millis(300));
        }
        Some(format!("user{uid}"))
    }

    #[test]
    fn a_slow_directory_never_holds_the_loop() {
        let mut u = UserNames::with_lookup(slow);
        assert_eq!(
            u.name(0).as_deref(),
            Some("user0"),
            "fast: answered at once"
        );
        let t = Instant::now();
        assert_eq!(u.name(1000), None, "slow: not waited for");
        for uid in 1001..1100 {
            assert_eq!(u.name(uid), None);
        }
        assert_eq!(u.name(0).as_deref(), Some("user0"), "cached");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            u.name(1000).as_deref(),
            Some("user1000"),
            "later events get it"
        );
    }

    #[test]
    fn a_flood_of_new_uids_while_the_directory_is_slow_queues_a_bounded_number() {
        let mut u = UserNames::with_lookup(slow);
        for uid in 1000..1000 + 10 * MAX_PENDING as u32 {
            assert_eq!(u.name(uid), None);
        }
        let t = u.table_use();
        assert!(t.entries <= MAX_PENDING, "{t:?}");
        assert_eq!(t.dropped, 9 * MAX_PENDING as u64, "{t:?}");
    }

    #[test]
    fn the_real_lookup_knows_root() {
        assert_eq!(UserNames::new().name(0).as_deref(), Some("root"));
    }
}
