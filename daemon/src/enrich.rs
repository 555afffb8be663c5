//! Enrichment, the same for every source: a source says who acted (pid,
//! start time on the boot clock, what the record itself carries); this
//! step adds the entity id, the wall-clock start, what the process cache
//! knows (name, executable, command line), user names, and keeps the
//! cache current from process events.

use std::time::Instant;

use foldhash::{HashMap, HashMapExt};

use crate::clock::HostClock;
use crate::event::{Event, ProcessActivity, ProcessInfo, SharedStr};
use crate::process_cache::{Image, ProcessCache};

/// Cache entries checked against /proc per housekeeping tick (a stat
/// read each): a pass over 60,000 processes takes a minute.
const SWEEP_PER_TICK: usize = 1024;
use crate::users::UserNames;

/// Bound of the entity id memo for processes the cache does not hold
/// (a full cache); it starts over when full.
const ENTITY_ID_MEMO: usize = 1024;

pub struct Enricher {
    clock: HostClock,
    cache: ProcessCache,
    users: UserNames,
    /// (pid, start) → entity id of processes the cache does not hold: a
    /// UUID v5 is a SHA-1 and three allocations, and the same few
    /// processes act again and again. The cache keeps the others' ids.
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
                            Image {
                                name: Some(pp.name.clone().unwrap_or_default()),
                                exe: pp.exe.clone(),
                                argv: pp.argv.clone(),
                            },
                            known_entity_id(pp),
                        );
                    }
                    ProcessActivity::Fork => {
                        // The child is not cached yet: its id goes into
                        // its entry below, not into the memo.
                        if let Some(start) = p.process.start_boot_ns
                            && p.process.entity_id.is_empty()
                        {
                            p.process.entity_id = self.clock.entity_id(p.process.pid, start).into();
                        }
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
                                let id = known_entity_id(child);
                                self.cache.on_fork(parent.pid, ps, child.pid, cs, id);
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
                let image = &c.image;
                if p.name.is_none() {
                    p.name = image.name.clone();
                }
                if p.exe.is_none() {
                    p.exe = image.exe.clone();
                }
                if fill == Fill::ImageAndArgv && p.argv.is_none() {
                    p.argv = image.argv.clone();
                }
            }
        }
        if let Some(c) = p.creds.as_mut().filter(|c| c.user_name.is_none()) {
            c.user_name = self.users.name(c.uid);
        }
    }

    fn entity_id(&mut self, pid: u32, start_boottime_ns: u64) -> SharedStr {
        let clock = &self.clock;
        let make = || SharedStr::from(clock.entity_id(pid, start_boottime_ns));
        if let Some(id) = self.cache.entity_id(pid, start_boottime_ns, make) {
            return id;
        }
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

/// The entity id an event already carries (empty: not known).
fn known_entity_id(p: &ProcessInfo) -> Option<SharedStr> {
    (!p.entity_id.is_empty()).then(|| p.entity_id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CallPath, FileActivity, FileEvent, FileInfo, Origin, ProcessEvent};

    fn origin() -> Origin {
        Origin {
            provider: crate::event::Provider::Ebpf,
            source: "ebpf/cpu0".into(),
            sequence: 0,
            path: CallPath::Native,
        }
    }

    fn who(pid: u32, start: u64) -> ProcessInfo {
        ProcessInfo {
            pid,
            start_boot_ns: Some(start),
            ..Default::default()
        }
    }

    fn process(activity: ProcessActivity, process: ProcessInfo, parent: ProcessInfo) -> Event {
        Event::Process(Box::new(ProcessEvent {
            time_ns: 1,
            activity,
            process,
            parent: Some(parent),
            origin: origin(),
        }))
    }

    fn acting(e: &Event) -> &ProcessInfo {
        match e {
            Event::Process(p) => &p.process,
            Event::File(f) => &f.process,
            _ => unreachable!(),
        }
    }

    /// A child's life as the sources report it: every event names it by
    /// the same entity id (the clock's), the parent's image comes from
    /// the cache, and after its exec the child runs the new image.
    #[test]
    fn a_process_keeps_one_entity_id_and_its_images_through_fork_exec_and_exit() {
        let clock = HostClock::from_system().unwrap();
        let mut e = Enricher::new(clock.clone(), ProcessCache::new());
        let (ppid, pstart, pid, start) = (700, 5_000_000_000, 701, 6_000_000_000);
        e.cache.on_exec(
            ppid,
            1,
            pstart,
            Image {
                name: Some("bash".into()),
                exe: Some("/usr/bin/bash".into()),
                argv: Some(["bash", "-i"].into_iter().collect()),
            },
            None,
        );
        let exec_image = ProcessInfo {
            name: Some("cat".into()),
            exe: Some("/usr/bin/cat".into()),
            argv: Some(["cat", "/etc/hosts"].into_iter().collect()),
            ..who(pid, start)
        };
        let file = Event::File(Box::new(FileEvent {
            time_ns: 1,
            activity: FileActivity::Open {
                access: 1,
                flags: 0,
                fd: 3,
            },
            file: FileInfo::default(),
            error: None,
            process: who(pid, start),
            origin: origin(),
        }));
        let exit = ProcessActivity::Exit {
            code: 0,
            signal: None,
            core_dumped: false,
        };
        let mut events = vec![
            process(ProcessActivity::Fork, who(pid, start), who(ppid, pstart)),
            process(ProcessActivity::Exec, exec_image, who(ppid, pstart)),
            file,
            process(exit, who(pid, start), who(ppid, pstart)),
        ];
        for ev in &mut events {
            e.enrich(ev);
        }
        let id = clock.entity_id(pid, start);
        for ev in &events {
            assert_eq!(&*acting(ev).entity_id, id, "{ev:?}");
        }
        let Event::Process(fork) = &events[0] else {
            unreachable!()
        };
        let parent = fork.parent.as_ref().unwrap();
        assert_eq!(&*parent.entity_id, clock.entity_id(ppid, pstart));
        assert_eq!(parent.exe.as_deref(), Some("/usr/bin/bash"));
        assert_eq!(fork.process.exe.as_deref(), Some("/usr/bin/bash"));
        for ev in &events[2..] {
            assert_eq!(acting(ev).exe.as_deref(), Some("/usr/bin/cat"), "{ev:?}");
            assert_eq!(acting(ev).name.as_deref(), Some("cat"));
        }
        let argv = acting(&events[3]).argv.as_ref().unwrap();
        assert_eq!(argv.iter().collect::<Vec<_>>(), ["cat", "/etc/hosts"]);
        // A process the cache does not know still gets the clock's id.
        let mut stranger = who(9_999, 7_000_000_000);
        e.complete(&mut stranger, Fill::Image);
        assert_eq!(&*stranger.entity_id, clock.entity_id(9_999, 7_000_000_000));
    }
}
