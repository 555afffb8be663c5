//! What is known of each live process (thread group), so events can carry
//! their parent's executable and command line. Seeded from /proc at start,
//! then kept current by exec/fork/exit events.
//!
//! An exec storm keeps thousands of exited processes here for the grace
//! period, so an entry is small (48 bytes in the table): what a process
//! runs is one shared [`Image`], the same allocation for a forked child
//! and its parent and for every exec of the same command line
//! ([`Images`]); the entity id is computed once and kept with the entry.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::HashMap;

use crate::argv::Argv;
use crate::clock::{same_start, ticks_to_boot_ns};
use crate::event::SharedStr;
use crate::procfs::ProcSnapshot;

/// How long an exited process stays known: events of its children may
/// still be in flight on other CPUs.
const EXITED_GRACE: Duration = Duration::from_secs(30);

/// What a process runs. Shared: `Arc` clones, never copies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Image {
    pub name: Option<SharedStr>,
    pub exe: Option<SharedStr>,
    pub argv: Option<Argv>,
}

impl Image {
    fn text_bytes(&self) -> usize {
        self.name.as_deref().map_or(0, str::len)
            + self.exe.as_deref().map_or(0, str::len)
            + self.argv.as_ref().map_or(0, Argv::text_bytes)
    }
}

/// Images seen lately, so that the execs of one command line share one
/// allocation. Bounded by entries and by text; starts over when full
/// (an image then lives as long as the processes that hold it).
#[derive(Debug, Default)]
struct Images {
    set: HashSet<Arc<Image>, foldhash::fast::RandomState>,
    bytes: usize,
}

const MAX_IMAGES: usize = 1024;
const MAX_IMAGE_BYTES: usize = 256 << 10;

impl Images {
    fn share(&mut self, image: Image) -> Arc<Image> {
        if let Some(known) = self.set.get(&image) {
            return known.clone();
        }
        let bytes = image.text_bytes();
        if self.set.len() >= MAX_IMAGES || self.bytes + bytes > MAX_IMAGE_BYTES {
            self.set.clear();
            self.bytes = 0;
        }
        let shared = Arc::new(image);
        if bytes <= MAX_IMAGE_BYTES {
            self.bytes += bytes;
            self.set.insert(shared.clone());
        }
        shared
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CachedProcess {
    pub ppid: u32,
    /// Seconds after the cache's epoch at which the exit was seen, plus
    /// one; 0 while the process lives.
    exited: u32,
    pub start_boottime_ns: u64,
    pub image: Arc<Image>,
    /// Computed at the first event that needs it.
    entity_id: Option<SharedStr>,
}

impl CachedProcess {
    fn live(ppid: u32, start_boottime_ns: u64, image: Arc<Image>) -> Self {
        Self {
            ppid,
            exited: 0,
            start_boottime_ns,
            image,
            entity_id: None,
        }
    }

    fn is_live(&self) -> bool {
        self.exited == 0
    }
}

#[derive(Debug)]
pub struct ProcessCache {
    by_pid: HashMap<u32, CachedProcess>,
    images: Images,
    /// What `CachedProcess::exited` counts from.
    epoch: Instant,
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

impl Default for ProcessCache {
    fn default() -> Self {
        Self {
            by_pid: HashMap::default(),
            images: Images::default(),
            epoch: Instant::now(),
            dropped: 0,
            full_of_live_at: None,
            sweep_queue: Vec::new(),
            sweep_began: None,
        }
    }
}

impl ProcessCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// `now` as a `CachedProcess::exited` stamp.
    fn stamp(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX - 1) + 1
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
            self.by_pid.retain(|_, p| p.is_live());
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
            if self.by_pid.contains_key(&p.pid) {
                continue;
            }
            let image = self.images.share(Image {
                name: Some(p.comm.into()),
                exe: p.exe.map(Into::into),
                argv: (!p.argv.is_empty()).then_some(p.argv),
            });
            let start = ticks_to_boot_ns(p.start_ticks);
            self.by_pid
                .insert(p.pid, CachedProcess::live(p.ppid, start, image));
        }
    }

    /// The process `pid` if it is the one that started at `start_boottime_ns`
    /// (a reused pid is another process).
    pub fn get(&self, pid: u32, start_boottime_ns: u64) -> Option<&CachedProcess> {
        self.by_pid
            .get(&pid)
            .filter(|p| same_start(p.start_boottime_ns, start_boottime_ns))
    }

    /// The entity id of the process `pid` started at `start_boottime_ns`,
    /// made by `make` at its first use; None when the cache does not
    /// know the process.
    pub fn entity_id(
        &mut self,
        pid: u32,
        start_boottime_ns: u64,
        make: impl FnOnce() -> SharedStr,
    ) -> Option<SharedStr> {
        let p = self
            .by_pid
            .get_mut(&pid)
            .filter(|p| same_start(p.start_boottime_ns, start_boottime_ns))?;
        Some(p.entity_id.get_or_insert_with(make).clone())
    }

    /// A new image in `pid`; `entity_id` is the process's (an exec keeps
    /// it), when the caller has it.
    pub fn on_exec(
        &mut self,
        pid: u32,
        ppid: u32,
        start_boottime_ns: u64,
        image: Image,
        entity_id: Option<SharedStr>,
    ) {
        if !self.room_for(pid) {
            return;
        }
        let image = self.images.share(image);
        let mut entry = CachedProcess::live(ppid, start_boottime_ns, image);
        entry.entity_id = entity_id;
        self.by_pid.insert(pid, entry);
    }

    /// A forked child runs its parent's image until it execs.
    /// `child_entity_id`: the child's, when the caller has it.
    pub fn on_fork(
        &mut self,
        parent: u32,
        parent_start: u64,
        child: u32,
        child_start: u64,
        child_entity_id: Option<SharedStr>,
    ) {
        if !self.room_for(child) {
            return;
        }
        let image = match self.get(parent, parent_start) {
            Some(p) => p.image.clone(),
            None => Arc::new(Image::default()),
        };
        let mut entry = CachedProcess::live(parent, child_start, image);
        entry.entity_id = child_entity_id;
        self.by_pid.insert(child, entry);
    }

    pub fn on_exit(&mut self, pid: u32, start_boottime_ns: u64, now: Instant) {
        let stamp = self.stamp(now);
        if let Some(p) = self
            .by_pid
            .get_mut(&pid)
            .filter(|p| same_start(p.start_boottime_ns, start_boottime_ns))
        {
            p.exited = stamp;
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
                .filter(|(_, p)| p.is_live())
                .map(|(pid, _)| *pid)
                .collect();
        }
        let stamp = self.stamp(now);
        for _ in 0..budget {
            let Some(pid) = self.sweep_queue.pop() else {
                break;
            };
            let Some(p) = self.by_pid.get_mut(&pid).filter(|p| p.is_live()) else {
                continue;
            };
            let alive = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))
                .ok()
                .and_then(|s| crate::procfs::parse_stat(&s))
                .is_some_and(|(_, _, ticks)| {
                    same_start(ticks_to_boot_ns(ticks), p.start_boottime_ns)
                });
            if !alive {
                p.exited = stamp;
            }
        }
    }

    /// Forgets processes that exited more than the grace period ago.
    /// The table gives its room back once the processes it grew for are
    /// gone (an exec storm grows it to tens of thousands of entries).
    pub fn expire(&mut self, now: Instant) {
        let now = self.stamp(now);
        let grace = EXITED_GRACE.as_secs() as u32;
        self.by_pid
            .retain(|_, p| p.is_live() || now.saturating_sub(p.exited) < grace);
        if self.by_pid.capacity() > 4 * self.by_pid.len().max(1024) {
            self.by_pid.shrink_to(2 * self.by_pid.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Image {
        Image {
            name: Some(name.into()),
            ..Image::default()
        }
    }

    #[test]
    fn the_sweep_forgets_processes_that_are_gone_or_whose_pid_was_reused() {
        let me = std::process::id();
        let snapshot = crate::procfs::snapshot(std::path::Path::new("/proc")).unwrap();
        let mine = snapshot.iter().find(|p| p.pid == me).unwrap().clone();
        let mut c = ProcessCache::new();
        c.seed(vec![mine.clone()]);
        // A pid that does not exist, and this pid with another start.
        c.on_exec(u32::MAX - 7, 1, 1, named("gone"), None);
        c.on_exec(1, 0, 12_345, named("stale"), None);
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
            c.on_exec(
                pid,
                1,
                u64::from(pid),
                Image {
                    argv: Some(big.clone()),
                    ..named("p")
                },
                None,
            );
            if pid > 1 {
                c.on_exit(pid, u64::from(pid), t0);
            }
        }
        assert_eq!(c.len(), MAX_PROCESSES);
        // The next new process makes room by evicting the exited ones.
        let next = MAX_PROCESSES as u32 + 1;
        c.on_fork(1, 1, next, 7, None);
        assert_eq!(c.len(), 2, "pid 1 and the new one");
        assert_eq!(c.table_use().dropped, MAX_PROCESSES as u64 - 1);
        assert!(c.get(1, 1).is_some() && c.get(next, 7).is_some());
        // Full of live processes: a new one is refused and counted.
        for pid in 100_000..100_000 + MAX_PROCESSES as u32 - 2 {
            c.on_exec(pid, 1, 1, named("p"), None);
        }
        assert_eq!(c.len(), MAX_PROCESSES);
        let dropped = c.table_use().dropped;
        c.on_exec(999_999, 1, 1, named("late"), None);
        assert_eq!(c.len(), MAX_PROCESSES);
        assert!(c.get(999_999, 1).is_none());
        assert_eq!(c.table_use().dropped, dropped + 1);
        // A known pid is updated in place even when full.
        c.on_exec(1, 0, 2, named("again"), None);
        assert_eq!(
            c.get(1, 2).and_then(|p| p.image.name.as_deref()),
            Some("again")
        );
    }

    #[test]
    fn seeded_entries_match_only_the_same_start() {
        let mut c = ProcessCache::new();
        c.seed(vec![snap(10, 1, 500, "/usr/bin/dash")]);
        assert_eq!(
            c.get(10, 5_000_000_000)
                .and_then(|p| p.image.exe.as_deref()),
            Some("/usr/bin/dash")
        );
        assert!(c.get(10, 6_000_000_000).is_none(), "reused pid");
    }

    #[test]
    fn fork_inherits_and_exit_expires_after_grace() {
        let mut c = ProcessCache::new();
        c.seed(vec![snap(10, 1, 500, "/usr/bin/dash")]);
        c.on_fork(10, 5_000_000_000, 11, 7_000_000_000, None);
        assert_eq!(
            c.get(11, 7_000_000_000)
                .and_then(|p| p.image.exe.as_deref()),
            Some("/usr/bin/dash")
        );
        let t0 = Instant::now();
        c.on_exit(11, 7_000_000_000, t0);
        c.expire(t0 + Duration::from_secs(1));
        assert!(c.get(11, 7_000_000_000).is_some(), "kept during grace");
        c.expire(t0 + EXITED_GRACE + Duration::from_secs(1));
        assert!(c.get(11, 7_000_000_000).is_none());
    }

    #[test]
    fn execs_of_one_command_line_share_one_image_and_keep_their_entity_id() {
        let mut c = ProcessCache::new();
        let image = |argv: &str| Image {
            name: Some(String::from("true").into()),
            exe: Some(String::from("/usr/bin/true").into()),
            argv: Some([argv].into_iter().collect()),
        };
        c.on_exec(20, 1, 2_000, image("a"), Some("id-20".into()));
        c.on_exec(21, 1, 3_000, image("a"), None);
        c.on_exec(22, 1, 4_000, image("b"), None);
        let (a, b) = (c.get(20, 2_000).unwrap(), c.get(21, 3_000).unwrap());
        assert!(Arc::ptr_eq(&a.image, &b.image), "same content, one image");
        let other = c.get(22, 4_000).unwrap();
        assert!(!Arc::ptr_eq(&a.image, &other.image));
        assert_eq!(other.image.argv.as_ref().unwrap().iter().next(), Some("b"));
        // The id given at exec is kept; another is made once, at first use.
        let never = || -> SharedStr { panic!("id-20 was known") };
        assert_eq!(c.entity_id(20, 2_000, never).as_deref(), Some("id-20"));
        assert_eq!(
            c.entity_id(21, 3_000, || "made".into()).as_deref(),
            Some("made")
        );
        let never = || -> SharedStr { panic!("made once") };
        assert_eq!(c.entity_id(21, 3_000, never).as_deref(), Some("made"));
        // A reused pid is another process: no id from the cache.
        assert!(c.entity_id(21, 9_000_000_000, || "x".into()).is_none());
        // A fork's child runs its parent's image, and keeps its own id.
        c.on_fork(20, 2_000, 23, 5_000, Some("id-23".into()));
        let child = c.get(23, 5_000).unwrap();
        assert!(Arc::ptr_eq(&child.image, &c.get(20, 2_000).unwrap().image));
        assert_eq!(child.entity_id.as_deref(), Some("id-23"));
    }

    #[test]
    fn the_table_gives_its_room_back_when_a_storm_has_expired() {
        let mut c = ProcessCache::new();
        let t0 = Instant::now();
        for pid in 1..=20_000u32 {
            c.on_exec(pid, 1, u64::from(pid) * 1_000_000_000, named("p"), None);
            if pid > 10 {
                c.on_exit(pid, u64::from(pid) * 1_000_000_000, t0);
            }
        }
        let grown = c.by_pid.capacity();
        assert!(grown >= 20_000);
        c.expire(t0 + Duration::from_secs(1));
        assert_eq!(c.len(), 20_000, "all kept during the grace");
        c.expire(t0 + EXITED_GRACE + Duration::from_secs(1));
        assert_eq!(c.len(), 10);
        assert!(c.by_pid.capacity() < grown / 4, "{}", c.by_pid.capacity());
        assert!(c.get(10, 10_000_000_000).is_some());
    }

    #[test]
    fn the_shared_images_stay_within_their_bounds() {
        let mut images = Images::default();
        let long: Argv = [&"x".repeat(4000)].into_iter().collect();
        for i in 0..5_000 {
            let shared = images.share(Image {
                name: Some(format!("p{i}").into()),
                exe: None,
                argv: Some(long.clone()),
            });
            assert_eq!(shared.name.as_deref(), Some(format!("p{i}").as_str()));
            assert!(images.set.len() <= MAX_IMAGES);
            assert!(images.bytes <= MAX_IMAGE_BYTES);
        }
        let held: usize = images.set.iter().map(|i| i.text_bytes()).sum();
        assert_eq!(held, images.bytes);
    }

    #[test]
    fn an_entry_takes_48_bytes_of_the_table() {
        // What the module's doc and ARCHITECTURE promise: an exec storm
        // keeps tens of thousands of these for the grace period.
        assert_eq!(std::mem::size_of::<(u32, CachedProcess)>(), 48);
    }
}
