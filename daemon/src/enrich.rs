//! Enrichment, the same for every source: a source says who acted (pid,
//! start time on the boot clock, what the record itself carries); this
//! step adds the entity id, the wall-clock start, what the process cache
//! knows (name, executable, command line), user names, and keeps the
//! cache current from process events.

use std::time::Instant;

use foldhash::{HashMap, HashMapExt};

use crate::clock::HostClock;
use crate::event::{Event, ProcessActivity, ProcessInfo, SharedStr};
use crate::process_cache::ProcessCache;

/// Cache entries checked against /proc per housekeeping tick (a stat
/// read each): a pass over 60,000 processes takes a minute.
const SWEEP_PER_TICK: usize = 1024;
use crate::users::UserNames;

/// Bound of the entity id memo; it starts over when full.
const ENTITY_ID_MEMO: usize = 16_384;

pub struct Enricher {
    clock: HostClock,
    cache: ProcessCache,
    users: UserNames,
    /// (pid, start) → entity id: a UUID v5 is a SHA-1 and three
    /// allocations, and the same few processes act again and again.
    entity_ids: HashMap<(u32, u64), SharedStr>,
}

/// How much of the cache's knowledge a process of an event takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Identity only: the record describes the new image (exec).
    Ids,
    /// Name and executable from the cache where the record lacks them.
    Image,
    /// As Image, plus the command line (process and login events print it).
    ImageAndArgv,
}

impl Enricher {
    pub fn new(clock: HostClock, cache: ProcessCache) -> Self {
        Self {
            clock,
            cache,
            users: UserNames::new(),
            entity_ids: HashMap::new(),
        }
    }

    /// Processes that ran before the sources started.
    pub fn seed(&mut self, snapshot: Vec<crate::procfs::ProcSnapshot>) {
        self.cache.seed(snapshot);
    }

    /// Completes every process of `event` and records process changes.
    pub fn enrich(&mut self, event: &mut Event) {
        match event {
            Event::Process(p) => {
                let parent = p.parent.as_mut();
                match p.activity {
                    ProcessActivity::Exec => {
                        self.complete(&mut p.process, Fill::Ids);
                        if let Some(parent) = parent {
                            self.complete(parent, Fill::ImageAndArgv);
                        }
                        let pp = &p.process;
                        self.cache.on_exec(
                            pp.pid,
                            p.parent.as_ref().map(|x| x.pid).unwrap_or(0),
                            pp.start_boot_ns.unwrap_or(0),
                            pp.name.clone().unwrap_or_default(),
                            pp.exe.clone(),
                            pp.argv.clone(),
                        );
                    }
                    ProcessActivity::Fork => {
                        self.complete(&mut p.process, Fill::Ids);
                        if let Some(parent) = parent {
                            self.complete(parent, Fill::ImageAndArgv);
                            // The child runs the parent's image until it execs.
                            let child = &mut p.process;
                            child.name = child.name.take().or_else(|| parent.name.clone());
                            child.exe = child.exe.take().or_else(|| parent.exe.clone());
                            child.argv = child.argv.take().or_else(|| parent.argv.clone());
                            if let (Some(ps), Some(cs)) =
                                (parent.start_boot_ns, child.start_boot_ns)
                            {
                                self.cache.on_fork(parent.pid, ps, child.pid, cs);
                            }
                        }
                    }
                    ProcessActivity::Exit { .. } => {
                        self.complete(&mut p.process, Fill::ImageAndArgv);
                        if let Some(parent) = parent {
                            self.complete(parent, Fill::ImageAndArgv);
                        }
                        if let Some(start) = p.process.start_boot_ns {
                            self.cache.on_exit(p.process.pid, start, Instant::now());
                        }
                    }
                }
            }
            Event::File(f) => self.complete(&mut f.process, Fill::Image),
            Event::Network(n) => self.complete(&mut n.process, Fill::Image),
            Event::Auth(a) => self.complete(&mut a.process, Fill::ImageAndArgv),
            Event::IoUring(u) => self.complete(&mut u.process, Fill::Image),
            Event::Loss(_) => {}
        }
    }

    fn complete(&mut self, p: &mut ProcessInfo, fill: Fill) {
        if let Some(start) = p.start_boot_ns {
            if p.entity_id.is_empty() {
                p.entity_id = self.entity_id(p.pid, start);
            }
            if p.start_time_ns.is_none() {
                p.start_time_ns = Some(self.clock.boot_to_unix_ns(start));
            }
            if fill != Fill::Ids
                && let Some(c) = self.cache.get(p.pid, start)
            {
                if p.name.is_none() {
                    p.name = c.name.clone();
                }
                if p.exe.is_none() {
                    p.exe = c.exe.clone();
                }
                if fill == Fill::ImageAndArgv && p.argv.is_none() {
                    p.argv = c.argv.clone();
                }
            }
        }
        if let Some(c) = p.creds.as_mut().filter(|c| c.user_name.is_none()) {
            c.user_name = self.users.name(c.uid);
        }
    }

    fn entity_id(&mut self, pid: u32, start_boottime_ns: u64) -> SharedStr {
        if let Some(id) = self.entity_ids.get(&(pid, start_boottime_ns)) {
            return id.clone();
        }
        if self.entity_ids.len() >= ENTITY_ID_MEMO {
            self.entity_ids.clear();
        }
        let id: SharedStr = self.clock.entity_id(pid, start_boottime_ns).into();
        self.entity_ids.insert((pid, start_boottime_ns), id.clone());
        id
    }

    /// The process cache's and the user-name cache's use.
    pub fn table_use(&self, out: &mut Vec<crate::bounds::TableUse>) {
        out.push(self.cache.table_use());
        out.push(self.users.table_use());
    }

    /// Periodic housekeeping: mark processes that are gone (a bounded
    /// slice of the cache per call), forget those that exited a while ago.
    pub fn tick(&mut self) {
        let now = Instant::now();
        self.cache
            .sweep(std::path::Path::new("/proc"), now, SWEEP_PER_TICK);
        self.cache.expire(now);
    }
}
