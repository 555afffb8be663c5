//! Ring-buffer records → normalized events: decode, per-CPU sequence
//! check (a gap becomes an in-band loss record, with the kernel's drop
//! counters per kind), and the event parts the record carries. Process
//! identity is left for the pipeline's enrichment (`enrich.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use mdatp_bpf::abi::{
    mdatp_exec_flags as xf, mdatp_exit_event, mdatp_fork_event, mdatp_task_flags, mdatp_task_info,
};

use super::decode::{self, ExecRecord, KernelRecord, comm_matches, comm_str};
use super::records;
use crate::clock::HostClock;
use crate::event::{
    Credentials, Device, Event, FileActivity, FileEvent, FileInfo, IoUringEvent, IoUringOp,
    LossDetection, LossRecord, NetEvent, Origin, ProcessActivity, ProcessEvent, ProcessInfo,
    Provider, SharedStr,
};
use crate::kind::EventKind;
use crate::loss::{CounterError, KernelCount, KernelCounters, SeqOutcome, SeqTracker};

const UNSET_ID: u32 = u32::MAX;
const MAX_OPENED_PROCESSES: usize = 65_536;
/// Bound of the path text the opened-file memory holds (paths are up to
/// 4 KiB each and any user can open long ones): past it, the memory
/// starts over and fold records of the files it forgot carry the device
/// and inode without the path until the file is reported again.
const MAX_OPENED_BYTES: usize = 16 << 20;
const OPENED_PER_PROCESS: usize = 2 * mdatp_bpf::abi::mdatp_bounds::MDATP_FOLD_SLOTS as usize;
/// Highest CPU number a record may name before its source name is made
/// per record instead of kept (a corrupt record cannot grow the table).
const MAX_CPU_SOURCES: usize = 8192;
const MAX_COMMS: usize = 65_536;

/// What the eBPF side lost or could not read, besides the kernel's own
/// counters.
#[derive(Debug, Default, Clone)]
pub struct EbpfLoss {
    pub sequence_gaps: u64,
    pub late_records: u64,
    pub decode_errors: u64,
    /// Kernel drops already reported in loss records.
    reported_drops: BTreeMap<EventKind, u64>,
}

impl EbpfLoss {
    /// Kernel drops per kind that no loss record has reported yet; marks
    /// them reported.
    pub fn unreported_drops(
        &mut self,
        kernel: &BTreeMap<EventKind, KernelCount>,
    ) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (kind, c) in kernel {
            let seen = self.reported_drops.entry(*kind).or_default();
            if c.lost() > *seen {
                out.insert(kind.name().to_string(), c.lost() - *seen);
                *seen = c.lost();
            }
        }
        out
    }
}

/// The record → event step of the eBPF source.
pub struct Converter {
    clock: HostClock,
    counters: Option<Box<dyn KernelCounters + Send>>,
    seq: SeqTracker,
    pub loss: EbpfLoss,
    /// "ebpf/cpuN" by CPU, made once.
    cpu_sources: Vec<Arc<str>>,
    /// pid → (dev, ino, path) of recent reported opens, so that a fold
    /// record (device and inode only) can name its file.
    opened: HashMap<u32, Vec<(u32, u64, SharedStr)>>,
    /// Bytes of path text in `opened`.
    opened_bytes: usize,
    /// Paths forgotten because `opened` was full.
    opened_dropped: u64,
    /// Comms forgotten because `comms` was full.
    comms_dropped: u64,
    /// pid → the last comm seen, shared while the kernel's still matches.
    comms: HashMap<u32, SharedStr>,
    /// Which paths a lookup may not touch (network, FUSE, automount).
    mounts: crate::mounts::MountTable,
}

impl Converter {
    /// Without counters until an object starts (`restart`).
    pub fn new(clock: HostClock) -> Self {
        Self {
            clock,
            counters: None,
            seq: SeqTracker::default(),
            loss: EbpfLoss::default(),
            cpu_sources: Vec::new(),
            opened: HashMap::new(),
            opened_bytes: 0,
            opened_dropped: 0,
            comms_dropped: 0,
            comms: HashMap::new(),
            mounts: Default::default(),
        }
    }

    /// A new BPF object (or none): its counters and sequence numbers start
    /// from zero; the totals of what was lost stay.
    pub fn restart(&mut self, counters: Option<Box<dyn KernelCounters + Send>>) {
        self.counters = counters;
        self.loss.reported_drops.clear();
        self.seq = SeqTracker::default();
    }

    /// The kernel's counters per kind.
    pub fn read_counters(&self) -> Result<BTreeMap<EventKind, KernelCount>, CounterError> {
        match &self.counters {
            Some(c) => c.read(),
            None => Err(CounterError::NotRunning),
        }
    }

    /// One ring-buffer record: zero, one or two events (a loss record
    /// before the event when the sequence shows a gap).
    pub fn record(&mut self, bytes: &[u8], out: &mut impl FnMut(Event)) {
        match decode::decode(bytes) {
            Ok(rec) => self.convert(rec, out),
            Err(e) => {
                self.loss.decode_errors += 1;
                log::warn!("dropping undecodable kernel record: {e}");
            }
        }
    }

    fn cpu_source(&mut self, cpu: u32) -> Arc<str> {
        let i = cpu as usize;
        if i >= MAX_CPU_SOURCES {
            return format!("ebpf/cpu{i}").into();
        }
        while self.cpu_sources.len() <= i {
            let n = self.cpu_sources.len();
            self.cpu_sources.push(format!("ebpf/cpu{n}").into());
        }
        self.cpu_sources[i].clone()
    }

    fn convert(&mut self, rec: KernelRecord, out: &mut impl FnMut(Event)) {
        let hdr = *rec.header();
        let source = self.cpu_source(hdr.cpu);
        match self.seq.observe(&source, hdr.seq) {
            SeqOutcome::InOrder => {}
            SeqOutcome::Late => self.loss.late_records += 1,
            SeqOutcome::Gap {
                first_missing,
                missing,
            } => {
                // Saturating: the numbers are the record's (fuzzed: any).
                self.loss.sequence_gaps = self.loss.sequence_gaps.saturating_add(missing);
                let dropped_by_type = match self.read_counters() {
                    Ok(k) => self.loss.unreported_drops(&k),
                    Err(e) => {
                        log::warn!("cannot read kernel loss counters: {e}");
                        Default::default()
                    }
                };
                out(Event::Loss(LossRecord {
                    time_ns: self.clock.boot_to_unix_ns(hdr.boot_ns),
                    provider: Provider::Ebpf,
                    source: source.clone(),
                    detected_by: LossDetection::SequenceGap,
                    first_missing: Some(first_missing),
                    missing,
                    dropped_by_type,
                }));
            }
        }
        let origin = Origin {
            provider: Provider::Ebpf,
            source,
            sequence: hdr.seq,
            path: rec.call_path(),
        };
        let time_ns = self.clock.boot_to_unix_ns(hdr.boot_ns);
        out(self.event(rec, time_ns, origin));
    }

    fn event(&mut self, rec: KernelRecord, time_ns: u64, origin: Origin) -> Event {
        let file = |activity, file, error, process| {
            Event::File(Box::new(FileEvent {
                time_ns,
                activity,
                file,
                error,
                process,
                origin: origin.clone(),
            }))
        };
        match rec {
            KernelRecord::Exec(r) => Event::Process(Box::new(self.exec(r, time_ns, origin))),
            KernelRecord::Fork(f) => Event::Process(Box::new(self.fork(&f, time_ns, origin))),
            KernelRecord::Exit(x) => Event::Process(Box::new(self.exit(&x, time_ns, origin))),
            KernelRecord::Open(r) => {
                let (activity, info) = records::open_event(&r);
                if let Some(path) = &info.path {
                    self.remember_open(r.task.pid, r.file.dev, r.file.ino, path.clone());
                }
                let process = self.task_process(&r.task);
                file(activity, info, None, process)
            }
            KernelRecord::Fold(f) => {
                let info = FileInfo {
                    path: self.opened_path(f.task.pid, f.dev, f.ino),
                    inode: Some(f.ino),
                    device: Some(Device::from_kernel(f.dev)),
                    ..Default::default()
                };
                let activity = FileActivity::OpenFolded {
                    access: f.access,
                    count: f.count,
                    first_ns: self.clock.boot_to_unix_ns(f.first_ns),
                    last_ns: self.clock.boot_to_unix_ns(f.last_ns),
                };
                let process = self.task_process(&f.task);
                file(activity, info, None, process)
            }
            KernelRecord::FileOp(r) => {
                let (mut activity, mut info, error) = records::file_op(&r);
                records::complete_identity(&mut info, &mut self.mounts);
                if let FileActivity::Rename { to, .. } | FileActivity::Link { to, .. } =
                    &mut activity
                {
                    records::complete_identity(to, &mut self.mounts);
                }
                let process = self.task_process(&r.task);
                file(activity, info, error, process)
            }
            KernelRecord::IoUring(u) => {
                let process = self.task_process(&u.task);
                match super::io_uring::op(&u) {
                    Some(op) => Event::IoUring(Box::new(IoUringEvent {
                        time_ns,
                        op,
                        process,
                        origin,
                    })),
                    // An opcode the kernel side reports and this build
                    // does not name: kept, as "other".
                    None => Event::IoUring(Box::new(IoUringEvent {
                        time_ns,
                        op: IoUringOp::Other { opcode: u.op },
                        process,
                        origin,
                    })),
                }
            }
            KernelRecord::Net(n) => {
                let parts = records::net(&n);
                Event::Network(Box::new(NetEvent {
                    time_ns,
                    activity: parts.activity,
                    protocol: parts.protocol,
                    local: parts.local,
                    remote: parts.remote,
                    error: parts.error,
                    process: self.task_process(&n.task),
                    origin,
                }))
            }
        }
    }

    fn fork(&mut self, f: &mdatp_fork_event, time_ns: u64, origin: Origin) -> ProcessEvent {
        let parent = self.task_process(&f.parent);
        let child = ProcessInfo {
            pid: f.child_pid,
            tid: Some(f.child_tid),
            start_boot_ns: Some(f.child_start_boottime_ns),
            creds: parent.creds.clone(),
            cgroup_id: parent.cgroup_id,
            ..Default::default()
        };
        ProcessEvent {
            time_ns,
            activity: ProcessActivity::Fork,
            process: child,
            parent: Some(parent),
            origin,
        }
    }

    fn exit(&mut self, x: &mdatp_exit_event, time_ns: u64, origin: Origin) -> ProcessEvent {
        self.forget_opened(x.task.pid);
        let process = self.task_process(&x.task);
        self.comms.remove(&x.task.pid);
        ProcessEvent {
            time_ns,
            activity: ProcessActivity::Exit {
                code: x.exit_code,
                signal: (x.exit_signal != 0).then_some(x.exit_signal),
                core_dumped: x.core_dumped != 0,
            },
            process,
            parent: Some(parent_of(&x.task)),
            origin,
        }
    }

    fn exec(&mut self, r: ExecRecord, time_ns: u64, origin: Origin) -> ProcessEvent {
        let t = &r.task;
        let mut process = self.task_process(t);
        process.exe =
            (!r.has(xf::MDATP_EXEC_EXE_MISSING)).then(|| String::from_utf8_lossy(&r.exe).into());
        process.exe_truncated = r.has(xf::MDATP_EXEC_EXE_TRUNCATED);
        process.argv = (!r.has(xf::MDATP_EXEC_ARGV_MISSING))
            .then(|| crate::argv::Argv::from_nul_separated(&r.argv));
        process.argv_truncated = r.has(xf::MDATP_EXEC_ARGV_TRUNCATED);
        process.argc = Some(r.argc);
        process.cwd = Some(String::from_utf8_lossy(&r.cwd).into_owned());
        process.cwd_truncated = r.has(xf::MDATP_EXEC_CWD_TRUNCATED);
        ProcessEvent {
            time_ns,
            activity: ProcessActivity::Exec,
            process,
            parent: Some(parent_of(t)),
            origin,
        }
    }

    /// The acting task as the kernel described it.
    fn task_process(&mut self, t: &mdatp_task_info) -> ProcessInfo {
        ProcessInfo {
            pid: t.pid,
            tid: Some(t.tid),
            start_boot_ns: Some(t.start_boottime_ns),
            name: Some(self.comm(t)),
            creds: Some(creds(t)),
            cgroup_id: Some(t.cgroup_id),
            ..Default::default()
        }
    }

    /// The task's comm, shared with earlier events of the same pid while
    /// it reads the same (a thread may rename itself).
    fn comm(&mut self, t: &mdatp_task_info) -> SharedStr {
        if let Some(c) = self.comms.get(&t.pid)
            && comm_matches(&t.comm, c)
        {
            return c.clone();
        }
        if self.comms.len() >= MAX_COMMS {
            self.comms_dropped += self.comms.len() as u64;
            self.comms.clear();
        }
        let name: SharedStr = comm_str(&t.comm).into();
        self.comms.insert(t.pid, name.clone());
        name
    }

    fn remember_open(&mut self, pid: u32, dev: u32, ino: u64, path: SharedStr) {
        if (self.opened.len() >= MAX_OPENED_PROCESSES && !self.opened.contains_key(&pid))
            || self.opened_bytes + path.len() > MAX_OPENED_BYTES
        {
            self.opened_dropped += self.opened.values().map(|l| l.len() as u64).sum::<u64>();
            self.opened.clear();
            self.opened_bytes = 0;
        }
        let list = self.opened.entry(pid).or_default();
        let mut freed = 0;
        list.retain(|(d, i, p)| {
            let same = *d == dev && *i == ino;
            if same {
                freed += p.len();
            }
            !same
        });
        if list.len() >= OPENED_PER_PROCESS {
            freed += list.remove(0).2.len();
        }
        self.opened_bytes = self.opened_bytes + path.len() - freed;
        list.push((dev, ino, path));
    }

    /// A process exited: its opened files go, their bytes with them.
    fn forget_opened(&mut self, pid: u32) {
        if let Some(gone) = self.opened.remove(&pid) {
            self.opened_bytes -= gone.iter().map(|(_, _, p)| p.len()).sum::<usize>();
        }
    }

    /// The opened-file memory's and the comm table's use.
    pub fn table_use(&self, out: &mut Vec<crate::bounds::TableUse>) {
        out.push(crate::bounds::TableUse {
            name: "ebpf_opened_path_bytes",
            entries: self.opened_bytes,
            cap: MAX_OPENED_BYTES,
            dropped: self.opened_dropped,
        });
        out.push(crate::bounds::TableUse {
            name: "ebpf_comms",
            entries: self.comms.len(),
            cap: MAX_COMMS,
            dropped: self.comms_dropped,
        });
    }

    fn opened_path(&self, pid: u32, dev: u32, ino: u64) -> Option<SharedStr> {
        self.opened
            .get(&pid)?
            .iter()
            .find(|(d, i, _)| *d == dev && *i == ino)
            .map(|(_, _, p)| p.clone())
    }

    /// Drops the kernel counted that no sequence gap has reported yet (the
    /// gap shows only once a later record of the same CPU arrives), as a
    /// loss record.
    pub fn counted_drops(&mut self) -> Option<Event> {
        self.counters.as_ref()?;
        let kernel = match self.read_counters() {
            Ok(k) => k,
            Err(e) => {
                log::warn!("cannot read kernel loss counters: {e}");
                return None;
            }
        };
        let dropped_by_type = self.loss.unreported_drops(&kernel);
        if dropped_by_type.is_empty() {
            return None;
        }
        Some(Event::Loss(LossRecord {
            time_ns: self.clock.now_unix_ns(),
            provider: Provider::Ebpf,
            source: "ebpf/kernel".into(),
            detected_by: LossDetection::KernelCounter,
            first_missing: None,
            missing: dropped_by_type.values().sum(),
            dropped_by_type,
        }))
    }
}

fn creds(t: &mdatp_task_info) -> Credentials {
    let audit_ids = t.flags & mdatp_task_flags::MDATP_TASK_NO_AUDIT_IDS == 0;
    Credentials {
        uid: t.uid,
        gid: t.gid,
        euid: t.euid,
        egid: t.egid,
        user_name: None,
        loginuid: (audit_ids && t.loginuid != UNSET_ID).then_some(t.loginuid),
        sessionid: (audit_ids && t.sessionid != UNSET_ID).then_some(t.sessionid),
    }
}

/// The real parent, identified by the kernel (described by enrichment).
fn parent_of(t: &mdatp_task_info) -> ProcessInfo {
    ProcessInfo {
        pid: t.ppid,
        start_boot_ns: Some(t.parent_start_boottime_ns),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_reported_once() {
        let mut l = EbpfLoss::default();
        let mut k = BTreeMap::new();
        let count = |drops| KernelCount {
            emitted: 5,
            ringbuf_drops: drops,
            ..Default::default()
        };
        k.insert(EventKind::ProcessExec, count(3));
        assert_eq!(l.unreported_drops(&k).get("process_exec"), Some(&3));
        assert!(l.unreported_drops(&k).is_empty());
        k.insert(EventKind::ProcessExec, count(4));
        assert_eq!(l.unreported_drops(&k).get("process_exec"), Some(&1));
    }

    #[test]
    fn long_paths_opened_by_many_processes_stay_within_the_byte_cap() {
        let mut c = Converter::new(HostClock::from_system().unwrap());
        let long: SharedStr = "/".repeat(4095).into();
        for pid in 0..20_000u32 {
            for ino in 0..4u64 {
                c.remember_open(pid, 1, ino, long.clone());
            }
            assert!(c.opened_bytes <= MAX_OPENED_BYTES);
        }
        let mut t = Vec::new();
        c.table_use(&mut t);
        assert!(
            t[0].entries <= MAX_OPENED_BYTES && t[0].dropped > 0,
            "{t:?}"
        );
        // What is held is what the count says.
        let held: usize = c.opened.values().flatten().map(|(_, _, p)| p.len()).sum();
        assert_eq!(held, c.opened_bytes);
        // A process that exits gives its bytes back.
        let pid = *c.opened.keys().next().unwrap();
        let before = c.opened_bytes;
        c.forget_opened(pid);
        assert!(c.opened_bytes < before);
        // The same file opened again replaces its entry.
        c.remember_open(7_777_777, 1, 1, "/a".into());
        c.remember_open(7_777_777, 1, 1, "/b".into());
        assert_eq!(c.opened_path(7_777_777, 1, 1).as_deref(), Some("/b"));
        let held: usize = c.opened.values().flatten().map(|(_, _, p)| p.len()).sum();
        assert_eq!(held, c.opened_bytes);
    }
}
