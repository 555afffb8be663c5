//! What the event loop holds per process that came and went: `n` short
//! processes (fork, exec of one program, exit), shaped as the eBPF
//! source's converter makes them (fresh name, executable and command
//! line per process, the parent's shared), through the daemon's
//! pipeline (enrichment, the OCSF writer, a sink that discards). The
//! heap in use (glibc's `mallinfo2`, arenas and mapped blocks) before and after, divided by `n`:
//! the memory an exec storm costs while the exited processes' grace
//! period keeps them. No kernel, no disk, deterministic.

use anyhow::Result;
use mdatpd::clock::HostClock;
use mdatpd::enrich::Enricher;
use mdatpd::event::{
    CallPath, Credentials, Event, Origin, ProcessActivity, ProcessEvent, ProcessInfo, Provider,
    SharedStr,
};
use mdatpd::pipeline::Pipeline;
use mdatpd::process_cache::ProcessCache;
use mdatpd::sink::JsonLines;

/// Bytes the allocator has handed out: from its arenas, and the large
/// blocks it maps on their own (a grown table is one of those).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 reads the allocator's own statistics.
    let m = unsafe { libc::mallinfo2() };
    m.uordblks + m.hblkhd
}

struct Storm {
    origin: Origin,
    parent: ProcessInfo,
    seq: u64,
}

impl Storm {
    fn new() -> Self {
        let creds = Credentials {
            uid: 1000,
            gid: 1000,
            euid: 1000,
            egid: 1000,
            ..Default::default()
        };
        Self {
            origin: Origin {
                provider: Provider::Ebpf,
                source: "ebpf/cpu0".into(),
                sequence: 0,
                path: CallPath::Native,
            },
            parent: ProcessInfo {
                pid: 4_000_000,
                tid: Some(4_000_000),
                start_boot_ns: Some(1_000_000_000),
                name: Some("bash".into()),
                creds: Some(creds),
                cgroup_id: Some(1),
                ..Default::default()
            },
            seq: 0,
        }
    }

    fn event(&mut self, activity: ProcessActivity, process: ProcessInfo) -> Event {
        self.seq += 1;
        let origin = Origin {
            sequence: self.seq,
            ..self.origin.clone()
        };
        let parent = match activity {
            ProcessActivity::Fork => self.parent.clone(),
            _ => ProcessInfo {
                pid: self.parent.pid,
                start_boot_ns: self.parent.start_boot_ns,
                ..Default::default()
            },
        };
        Event::Process(Box::new(ProcessEvent {
            time_ns: self.seq,
            activity,
            process,
            parent: Some(parent),
            origin,
        }))
    }

    /// Fork, exec and exit of process number `i`.
    fn process(&mut self, i: u32, p: &mut Pipeline) {
        let pid = 100_000 + i;
        let start = 2_000_000_000 + u64::from(i) * 1_000;
        let child = ProcessInfo {
            pid,
            tid: Some(pid),
            start_boot_ns: Some(start),
            creds: self.parent.creds.clone(),
            cgroup_id: self.parent.cgroup_id,
            ..Default::default()
        };
        let fork = self.event(ProcessActivity::Fork, child.clone());
        p.submit(fork);
        // What the ring gives per exec: new strings each time.
        let name: SharedStr = String::from("true").into();
        let image = ProcessInfo {
            name: Some(name.clone()),
            exe: Some(String::from("/usr/bin/true").into()),
            argv: Some(["true", "--version"].into_iter().collect()),
            argc: Some(2),
            cwd: Some("/tmp".into()),
            ..child.clone()
        };
        let exec = self.event(ProcessActivity::Exec, image);
        p.submit(exec);
        let exit = self.event(
            ProcessActivity::Exit {
                code: 0,
                signal: None,
                core_dumped: false,
            },
            ProcessInfo {
                name: Some(name),
                ..child
            },
        );
        p.submit(exit);
    }
}

pub fn run(counts: &[u32]) -> Result<()> {
    println!(
        "| processes (fork, exec, exit) | heap held after | bytes per process |\n|---|---|---|"
    );
    for &n in counts {
        let clock = HostClock::from_system()?;
        let mut p = Pipeline::new(
            Enricher::new(clock, ProcessCache::new()),
            Box::new(JsonLines::new(std::io::sink())),
        );
        let mut storm = Storm::new();
        // One process first, so that what every pipeline holds from its
        // first event (buffers, the parent's entry) is not counted.
        storm.process(0, &mut p);
        p.flush();
        let before = heap_in_use();
        for i in 1..=n {
            storm.process(i, &mut p);
            // As the drain does after each batch: the sink's buffer is
            // not what a process leaves behind.
            p.flush();
        }
        let held = heap_in_use().saturating_sub(before);
        println!(
            "| {n} | {:.2} MiB | {:.0} |",
            held as f64 / f64::from(1 << 20),
            held as f64 / f64::from(n)
        );
    }
    Ok(())
}
