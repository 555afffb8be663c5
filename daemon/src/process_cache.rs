//! What is known of each live process (thread group), so events can carry
//! their parent's executable and command line. Seeded from /proc at start,
//! then kept current by exec/fork/exit events.

use std::time::{Duration, Instant};

use foldhash::HashMap;

use crate::argv::Argv;
use crate::clock::{same_start, ticks_to_boot_ns};
use crate::event::SharedStr;
use crate::procfs::ProcSnapshot;

/// How long an exited process stays known: events of its children may
/// still be in flight on other CPUs.
const EXITED_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct CachedProcess {
    pub pid: u32,
    pub ppid: u32,
    pub start_boottime_ns: u64,
    pub name: Option<SharedStr>,
    pub exe: Option<SharedStr>,
    pub argv: Option<Argv>,
    exited_at: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct ProcessCache {
    by_pid: HashMap<u32, CachedProcess>,
    /// Entries evicted before their grace ended, or not kept, because
    /// the cache was full.
    dropped: u64,
    /// When a full cache was last scanned for exited processes and none
    /// was found: a flood of new processes into a cache full of live ones
    /// must not cost a scan of the whole cache each.
    full_of_live_at: Option<Instant>,
    /// Pids still to check in the current sweep pass.
    sweep_queue: Vec<u32>,
    /// When the current (or last) sweep pass began.
    sweep_began: Option<Instant>,
}

/// A sweep pass begins at most this often (each entry costs a stat read).
const SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// Bound of the cache. An entry is a few hundred bytes plus its argv
/// (at most 4 KiB of text from eBPF, `Argv` keeps it in one block), so
/// the worst case is about 300 MiB — 65,536 live processes each with a
/// 4 KiB command line, which cost their owner far more kernel memory.
/// When full, exited processes go first (their children's events lose
/// the parent's name after that, not the process's own); a new process
/// that still finds no room is not kept, and its events are enriched
/// from what the record carries. Both are counted (`dropped`).
pub const MAX_PROCESSES: usize = 65_536;

impl ProcessCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    pub fn table_use(&self) -> crate::bounds::TableUse {
        crate::bounds::TableUse {
            name: "process_cache",
            entries: self.by_pid.len(),
            cap: MAX_PROCESSES,
            dropped: self.dropped,
        }
    }

    /// Whether `pid` may be (re)inserted: the cache has room, or makes
    /// it by evicting every exited process.
    fn room_for(&mut self, pid: u32) -> bool {
        if self.by_pid.len() < MAX_PROCESSES || self.by_pid.contains_key(&pid) {
            return true;
        }
        let now = Instant::now();
        let scanned_lately = self
            .full_of_live_at
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1));
        if !scanned_lately {
            let before = self.by_pid.len();
            self.by_pid.retain(|_, p| p.exited_at.is_none());
            self.dropped += (before - self.by_pid.len()) as u64;
            if self.by_pid.len() < MAX_PROCESSES {
                self.full_of_live_at = None;
                return true;
            }
            self.full_of_live_at = Some(now);
        }
        self.dropped += 1;
        false
    }

    /// Adds what /proc showed; an entry already learned from an event is
    /// newer and is kept.
    pub fn seed(&mut self, snapshot: Vec<ProcSnapshot>) {
        for p in snapshot {
            if !self.room_for(p.pid) {
                continue;
            }
            self.by_pid.entry(p.pid).or_insert(CachedProcess {
                pid: p.pid,
                ppid: p.ppid,
                start_boottime_ns: ticks_to_boot_ns(p.start_ticks),
                name: Some(p.comm.into()),
                exe: p.exe.map(Into::into),
                argv: (!p.argv.is_empty()).then_some(p.argv),
                exited_at: None,
            });
        }
    }

    /// The process `pid` if it is the one that started at `start_boottime_ns`
    /// (a reused pid is another process).
    pub fn get(&self, pid: u32, start_boottime_ns: u64) -> Option<&CachedProcess> {
        self.by_pid
            .get(&pid)
            .filter(|p| same_start(p.start_boottime_ns, start_boottime_ns))
    }

    pub fn on_exec(
        &mut self,
        pid: u32,
        ppid: u32,
        start_boottime_ns: u64,
        name: SharedStr,
        exe: Option<SharedStr>,
        argv: Option<Argv>,
    ) {
        if !self.room_for(pid) {
            return;
        }
        self.by_pid.insert(
            pid,
            CachedProcess {
                pid,
                ppid,
                start_boottime_ns,
                name: Some(name),
                exe,
                argv,
                exited_at: None,
            },
        );
    }

    /// A forked child runs its parent's image until it execs.
    pub fn on_fork(&mut self, parent: u32, parent_start: u64, child: u32, child_start: u64) {
        if !self.room_for(child) {
            return;
        }
        let inherited = self.get(parent, parent_start).cloned();
        self.by_pid.insert(
            child,
            CachedProcess {
                pid: child,
                ppid: parent,
                start_boottime_ns: child_start,
                name: inherited.as_ref().and_then(|p| p.name.clone()),
                exe: inherited.as_ref().and_then(|p| p.exe.clone()),
                argv: inherited.and_then(|p| p.argv),
                exited_at: None,
            },
        );
    }

    pub fn on_exit(&mut self, pid: u32, start_boottime_ns: u64, now: Instant) {
        if let Some(p) = self
            .by_pid
            .get_mut(&pid)
            .filter(|p| same_start(p.start_boottime_ns, start_boottime_ns))
        {
            p.exited_at = Some(now);
        }
    }

    /// Checks up to `budget` live entries against `proc_root`: one whose
    /// process is gone, or whose pid now belongs to a process started at
    /// another time, is marked exited. Sources without exit events for
    /// every process (the audit subsystem sees exit_group only, not a
    /// process killed by a signal) would otherwise keep it forever; with
    /// the sweep the cache holds the live processes plus the grace period.
    /// Bounded per call, so a host with many processes does not hold the
    /// event loop: a pass takes len / budget calls, and begins at most
    /// once a minute.
    pub fn sweep(&mut self, proc_root: &std::path::Path, now: Instant, budget: usize) {
        if self.sweep_queue.is_empty() {
            if self
                .sweep_began
                .is_some_and(|t| now.duration_since(t) < SWEEP_PERIOD)
            {
                return;
            }
            self.sweep_began = Some(now);
            self.sweep_queue = self
                .by_pid
                .iter()
                .filter(|(_, p)| p.exited_at.is_none())
                .map(|(pid, _)| *pid)
                .collect();
        }
        for _ in 0..budget {
            let Some(pid) = self.sweep_queue.pop() else {
                break;
            };
            let Some(p) = self.by_pid.get_mut(&pid).filter(|p| p.exited_at.is_none()) else {
                continue;
            };
            let alive = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))
                .ok()
                .and_then(|s| crate::procfs::parse_stat(&s))
                .is_some_and(|(_, _, ticks)| {
                    same_start(ticks_to_boot_ns(ticks), p.start_boottime_ns)
                });
            if !alive {
                p.exited_at = Some(now);
            }
        }
    }

    /// Forgets processes that exited more than the grace period ago.
    pub fn expire(&mut self, now: Instant) {
        self.by_pid.retain(|_, p| match p.exited_at {
            Some(t) => now.duration_since(t) < EXITED_GRACE,
            None => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_forgets_processes_that_are_gone_or_whose_pid_was_reused() {
        let me = std::process::id();
        let snapshot = crate::procfs::snapshot(std::path::Path::new("/proc")).unwrap();
        let mine = snapshot.iter().find(|p| p.pid == me).unwrap().clone();
        let mut c = ProcessCache::new();
        c.seed(vec![mine.clone()]);
        // A pid that does not exist, and this pid with another start.
        c.on_exec(u32::MAX - 7, 1, 1, "gone".into(), None, None);
        c.on_exec(1, 0, 12_345, "stale".into(), None, None);
        let now = Instant::now();
        for _ in 0..3 {
            c.sweep(std::path::Path::new("/proc"), now, 1);
        }
        c.expire(now + EXITED_GRACE + Duration::from_secs(1));
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c.get(me, ticks_to_boot_ns(mine.start_ticks)).is_some());
    }

    fn snap(pid: u32, ppid: u32, ticks: u64, exe: &str) -> ProcSnapshot {
        ProcSnapshot {
            pid,
            ppid,
            start_ticks: ticks,
            comm: "c".into(),
            exe: Some(exe.into()),
            argv: [exe].into_iter().collect(),
        }
    }

    #[test]
    fn a_flood_of_processes_stays_within_the_cap_exited_ones_going_first() {
        let mut c = ProcessCache::new();
        let t0 = Instant::now();
        let big: Argv = Argv::from_nul_separated(&b"x\0".repeat(2048));
        // Live processes fill the cache; each exits except pid 1.
        for pid in 1..=MAX_PROCESSES as u32 {
            c.on_exec(pid, 1, u64::from(pid), "p".into(), None, Some(big.clone()));
            if pid > 1 {
                c.on_exit(pid, u64::from(pid), t0);
            }
        }
        assert_eq!(c.len(), MAX_PROCESSES);
        // The next new process makes room by evicting the exited ones.
        let next = MAX_PROCESSES as u32 + 1;
        c.on_fork(1, 1, next, 7);
        assert_eq!(c.len(), 2, "pid 1 and the new one");
        assert_eq!(c.table_use().dropped, MAX_PROCESSES as u64 - 1);
        assert!(c.get(1, 1).is_some() && c.get(next, 7).is_some());
        // Full of live processes: a new one is refused and counted.
        for pid in 100_000..100_000 + MAX_PROCESSES as u32 - 2 {
            c.on_exec(pid, 1, 1, "p".into(), None, None);
        }
        assert_eq!(c.len(), MAX_PROCESSES);
        let dropped = c.table_use().dropped;
        c.on_exec(999_999, 1, 1, "late".into(), None, None);
        assert_eq!(c.len(), MAX_PROCESSES);
        assert!(c.get(999_999, 1).is_none());
        assert_eq!(c.table_use().dropped, dropped + 1);
        // A known pid is updated in place even when full.
        c.on_exec(1, 0, 2, "again".into(), None, None);
        assert_eq!(c.get(1, 2).and_then(|p| p.name.as_deref()), Some("again"));
    }

    #[test]
    fn seeded_entries_match_only_the_same_start() {
        let mut c = ProcessCache::new();
        c.seed(vec![snap(10, 1, 500, "/usr/bin/dash")]);
        assert_eq!(
            c.get(10, 5_000_000_000).and_then(|p| p.exe.as_deref()),
            Some("/usr/bin/dash")
        );
        assert!(c.get(10, 6_000_000_000).is_none(), "reused pid");
    }

    #[test]
    fn fork_inherits_and_exit_expires_after_grace() {
        let mut c = ProcessCache::new();
        c.seed(vec![snap(10, 1, 500, "/usr/bin/dash")]);
        c.on_fork(10, 5_000_000_000, 11, 7_000_000_000);
        assert_eq!(
            c.get(11, 7_000_000_000).and_then(|p| p.exe.as_deref()),
            Some("/usr/bin/dash")
        );
        let t0 = Instant::now();
        c.on_exit(11, 7_000_000_000, t0);
        c.expire(t0 + Duration::from_secs(1));
        assert!(c.get(11, 7_000_000_000).is_some(), "kept during grace");
        c.expire(t0 + EXITED_GRACE + Duration::from_secs(1));
        assert!(c.get(11, 7_000_000_000).is_none());
    }
}
