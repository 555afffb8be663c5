//! The third tier: process exec/fork/exit from the netlink process
//! connector (`NETLINK_CONNECTOR`, `PROC_EVENT_*`), for hosts where
//! neither eBPF nor the audit subsystem can serve process events (audit
//! compiled out or refused, e.g. in a container). The kernel's message
//! names only pids; everything else is read from /proc at once, and what
//! has already gone (a process that exited first) stays unknown, never
//! guessed. Events carry provider `proc_connector`.

mod wire;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_CONNECTOR};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::event::{
    CallPath, Credentials, Event, Origin, ProcessActivity, ProcessEvent, ProcessInfo, Provider,
};
use crate::kind::{EventKind, Served};
use crate::pipeline::Pipeline;
use crate::source::EventSource;
use wire::{ProcEvent, Received};

/// Datagrams read per drain pass (a fork storm must not starve the loop).
const READ_BATCH: usize = 4096;

pub struct ProcConnectorSource {
    sock: Option<AsyncFd<Socket>>,
    /// The process kinds it reports: those no higher tier serves.
    kinds: Vec<EventKind>,
    proc_root: PathBuf,
    buf: Vec<u8>,
    sequence: u64,
    source: Arc<str>,
    /// The kernel's per-CPU message sequence: a jump is messages lost.
    last_seq: BTreeMap<u32, u32>,
    /// Messages lost: sequence gaps, and socket buffer overflows (ENOBUFS,
    /// how many messages unknown: counted once each).
    pub gaps: u64,
    pub overflows: u64,
}

/// Why the connector could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The kernel asks a subscriber for CAP_NET_ADMIN (initial namespace).
    #[error("the netlink process connector refused the subscription: it needs CAP_NET_ADMIN")]
    NeedsNetAdmin,
    #[error("netlink process connector")]
    Io(#[source] io::Error),
}

impl From<io::Error> for ConnectorError {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EPERM) => ConnectorError::NeedsNetAdmin,
            _ => ConnectorError::Io(e),
        }
    }
}

impl Default for ProcConnectorSource {
    fn default() -> Self {
        Self {
            sock: None,
            kinds: Vec::new(),
            proc_root: PathBuf::from("/proc"),
            buf: vec![0u8; 1 << 16],
            sequence: 0,
            source: Arc::from("proc_connector"),
            last_seq: BTreeMap::new(),
            gaps: 0,
            overflows: 0,
        }
    }
}

impl ProcConnectorSource {
    pub fn is_running(&self) -> bool {
        self.sock.is_some()
    }

    pub fn kinds(&self) -> &[EventKind] {
        &self.kinds
    }

    /// Subscribes to process events (the kernel requires CAP_NET_ADMIN
    /// in the initial user namespace for the subscription) and reports
    /// `kinds` (process kinds) from now on.
    pub fn start(&mut self, kinds: Vec<EventKind>) -> Result<(), ConnectorError> {
        self.kinds = kinds;
        if self.sock.is_some() {
            return Ok(());
        }
        let open = || -> io::Result<Socket> {
            let mut sock = Socket::new(NETLINK_CONNECTOR)?;
            sock.bind(&SocketAddr::new(0, wire::CN_IDX_PROC))?;
            sock.set_non_blocking(true)?;
            let _ = sock.set_rx_buf_sz(4 * 1024 * 1024usize);
            sock.send_to(&wire::listen_message(), &SocketAddr::new(0, 0), 0)?;
            Ok(sock)
        };
        let sock = open()?;
        // SAFETY: the socket owns its fd, open and unchanged until the
        // AsyncFd (which owns the socket) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(|e| ConnectorError::Io(e.into()))?;
        self.sock = Some(fd);
        self.last_seq.clear();
        log::info!("process events from the netlink process connector");
        Ok(())
    }

    /// Unsubscribes (closing the socket ends the multicast membership).
    pub fn stop(&mut self, pipeline: &mut Pipeline) {
        if self.sock.is_some() {
            self.drain(pipeline);
            self.sock = None;
            log::info!("netlink process connector closed");
        }
    }

    fn track(&mut self, r: &Received) {
        if let Some(last) = self.last_seq.insert(r.cpu, r.seq) {
            let missing = r.seq.wrapping_sub(last).wrapping_sub(1);
            // A huge jump is a counter reset, not billions lost.
            if missing > 0 && missing < 1 << 30 {
                self.gaps += u64::from(missing);
                log::warn!(
                    "process connector: {missing} message(s) lost on CPU {}",
                    r.cpu
                );
            }
        }
    }

    fn origin(&mut self) -> Origin {
        self.sequence += 1;
        Origin {
            provider: Provider::ProcConnector,
            source: Arc::clone(&self.source),
            sequence: self.sequence,
            path: CallPath::Native,
        }
    }

    fn convert(&mut self, e: ProcEvent, time_ns: u64) -> Option<Event> {
        let kind = match e {
            ProcEvent::Fork { .. } => EventKind::ProcessFork,
            ProcEvent::Exec { .. } => EventKind::ProcessExec,
            ProcEvent::Exit { .. } => EventKind::ProcessExit,
        };
        if !self.kinds.contains(&kind) {
            return None;
        }
        let (activity, process, parent) = match e {
            // Threads are not processes.
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => (
                ProcessActivity::Fork,
                read_brief(&self.proc_root, child_tgid),
                Some(read_brief(&self.proc_root, parent_tgid)),
            ),
            ProcEvent::Exec { pid, tgid } if pid == tgid => {
                let (p, ppid) = read_exec(&self.proc_root, tgid);
                let parent = ppid.map(|pp| read_brief(&self.proc_root, pp));
                (ProcessActivity::Exec, p, parent)
            }
            ProcEvent::Exit { pid, tgid, status } if pid == tgid => (
                ProcessActivity::Exit {
                    code: (status >> 8) & 0xff,
                    signal: (status & 0x7f != 0).then_some(status & 0x7f),
                    core_dumped: status & 0x80 != 0,
                },
                ProcessInfo {
                    pid: tgid,
                    ..Default::default()
                },
                None,
            ),
            _ => return None,
        };
        Some(Event::Process(Box::new(ProcessEvent {
            time_ns,
            activity,
            process,
            parent,
            origin: self.origin(),
        })))
    }
}

/// Name and start time of `pid` from /proc/<pid>/stat (forks: the child
/// runs its parent's image, nothing more is worth reading).
fn read_brief(proc_root: &Path, pid: u32) -> ProcessInfo {
    let mut p = ProcessInfo {
        pid,
        tid: Some(pid),
        ..Default::default()
    };
    if let Some((comm, _, ticks)) =
        std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))
            .ok()
            .and_then(|s| crate::procfs::parse_stat(&s))
    {
        p.name = Some(comm.into());
        p.start_boot_ns = Some(crate::clock::ticks_to_boot_ns(ticks));
    }
    p
}

/// An exec's image from /proc (exe, argv, cwd, credentials) and its
/// parent pid; only the pid when the process is already gone.
fn read_exec(proc_root: &Path, pid: u32) -> (ProcessInfo, Option<u32>) {
    let dir = proc_root.join(pid.to_string());
    let mut p = ProcessInfo {
        pid,
        tid: Some(pid),
        ..Default::default()
    };
    let Some(snap) = crate::procfs::read_process(&dir, pid) else {
        return (p, None);
    };
    p.name = Some(snap.comm.into());
    p.start_boot_ns = Some(crate::clock::ticks_to_boot_ns(snap.start_ticks));
    p.exe = snap.exe.map(Into::into);
    // An unreadable cmdline reads as empty: unknown, not an empty argv.
    if !snap.argv.is_empty() {
        p.argc = Some(snap.argv.len() as u32);
        p.argv = Some(snap.argv);
    }
    p.cwd = std::fs::read_link(dir.join("cwd"))
        .ok()
        .map(|c| c.to_string_lossy().into_owned());
    p.creds = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| creds_of(&s, &dir));
    (p, Some(snap.ppid))
}

/// Real and effective ids from /proc/<pid>/status, audit ids beside it.
fn creds_of(status: &str, dir: &Path) -> Option<Credentials> {
    let ids = |key: &str| -> Option<Vec<u32>> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect()
    };
    let uid = ids("Uid:")?;
    let gid = ids("Gid:")?;
    let audit_id = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|v| *v != u32::MAX)
    };
    Some(Credentials {
        uid: *uid.first()?,
        euid: *uid.get(1)?,
        gid: *gid.first()?,
        egid: *gid.get(1)?,
        user_name: None,
        loginuid: audit_id("loginuid"),
        sessionid: audit_id("sessionid"),
    })
}

/// The kinds the process connector can produce.
pub const PROCESS_KINDS: [EventKind; 3] = [
    EventKind::ProcessExec,
    EventKind::ProcessFork,
    EventKind::ProcessExit,
];

impl EventSource for ProcConnectorSource {
    fn serves(&self, kind: EventKind) -> Served {
        if !PROCESS_KINDS.contains(&kind) {
            return Served::No("the process connector has no record of it".into());
        }
        match self.sock {
            Some(_) if self.kinds.contains(&kind) => Served::Yes,
            Some(_) => Served::No("a higher tier serves it".into()),
            None => Served::No("process connector not running".into()),
        }
    }

    async fn readable(&self) {
        match &self.sock {
            Some(s) => {
                if let Ok(mut g) = s.readable().await {
                    g.clear_ready();
                }
            }
            None => std::future::pending().await,
        }
    }

    fn drain(&mut self, pipeline: &mut Pipeline) -> bool {
        let mut received = Vec::new();
        let Some(sock) = &self.sock else { return false };
        let mut more = true;
        for _ in 0..READ_BATCH {
            match sock.get_ref().recv(&mut &mut self.buf[..], 0) {
                Ok(n) => wire::parse_datagram(&self.buf[..n], &mut received),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.overflows += 1;
                    log::warn!("process connector: socket buffer overflowed, messages lost");
                }
                Err(e) => {
                    log::error!("process connector: {e}");
                    more = false;
                    break;
                }
            }
        }
        // The message's timestamp is CLOCK_MONOTONIC: wall time of reading
        // is what an event without a boot-clock stamp can carry.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        for r in received {
            self.track(&r);
            if let Some(ev) = r.event.and_then(|e| self.convert(e, now)) {
                pipeline.submit(ev);
            }
        }
        pipeline.flush();
        // A full batch: readiness was cleared before it, and the
        // datagrams still queued raise none.
        more
    }

    fn loss_map(&self, m: &mut BTreeMap<String, u64>) {
        for (name, n) in [
            ("proc_connector_gaps", self.gaps),
            ("proc_connector_overflows", self.overflows),
        ] {
            if n > 0 {
                m.insert(name.to_string(), n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_is_read_from_proc_and_a_vanished_process_stays_unknown() {
        let me = std::process::id();
        let (p, ppid) = read_exec(Path::new("/proc"), me);
        assert_eq!(ppid, Some(std::os::unix::process::parent_id()));
        let exe = std::env::current_exe().unwrap();
        assert_eq!(p.exe.as_deref(), Some(exe.to_string_lossy().as_ref()));
        assert_eq!(
            p.argv.as_ref().map(|a| a.len()),
            Some(std::env::args().count())
        );
        assert!(p.start_boot_ns.is_some());
        assert_eq!(
            p.creds.as_ref().map(|c| c.uid),
            Some(nix::unistd::getuid().as_raw())
        );
        let (gone, _) = read_exec(Path::new("/proc"), u32::MAX - 1);
        assert_eq!((gone.exe, gone.argv, gone.creds), (None, None, None));
    }

    #[test]
    fn only_the_kinds_it_was_given_are_reported() {
        let mut s = ProcConnectorSource {
            kinds: vec![EventKind::ProcessFork],
            ..Default::default()
        };
        let me = std::process::id();
        assert!(
            s.convert(ProcEvent::Exec { pid: me, tgid: me }, 1)
                .is_none()
        );
        let fork = ProcEvent::Fork {
            parent_tgid: 1,
            child_pid: me,
            child_tgid: me,
        };
        assert!(s.convert(fork, 1).is_some());
        // A new thread is not a new process.
        let thread = ProcEvent::Fork {
            parent_tgid: me,
            child_pid: me + 1,
            child_tgid: me,
        };
        assert!(s.convert(thread, 1).is_none());
    }

    #[test]
    fn sequence_gaps_per_cpu_are_counted() {
        let mut s = ProcConnectorSource::default();
        let r = |cpu, seq| Received {
            cpu,
            seq,
            event: None,
        };
        for x in [r(0, 5), r(1, 100), r(0, 6), r(0, 9), r(1, 101)] {
            s.track(&x);
        }
        assert_eq!(s.gaps, 2);
    }
}
