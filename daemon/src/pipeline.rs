//! Kernel records → normalized, enriched events → OCSF → sink, with every
//! loss counted on the way.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use foldhash::{HashMap, HashMapExt};
use mdatp_bpf::abi::{mdatp_exec_flags as xf, mdatp_task_flags, mdatp_task_info};

use crate::audit::assemble::AuditEvent;
use crate::audit::convert as audit_convert;
use crate::clock::HostClock;
use crate::decode::{self, ExecRecord, KernelRecord, comm_matches, comm_str, split_argv};
use crate::event::{
    Credentials, Device, Event, FileActivity, FileEvent, FileInfo, LossDetection, LossRecord,
    NetEvent, Origin, ProcessActivity, ProcessEvent, ProcessInfo, Provider, SharedStr,
};
use crate::hot::HotSources;
use crate::loss::{KernelCounters, LossLedger, SeqOutcome, SeqTracker};
use crate::ocsf;
use crate::process_cache::ProcessCache;
use crate::records;
use crate::sink::Sink;
use crate::users::UserNames;

const UNSET_ID: u32 = u32::MAX;

pub struct Pipeline<S: Sink> {
    clock: HostClock,
    hostname: String,
    cache: ProcessCache,
    users: UserNames,
    seq: SeqTracker,
    ledger: LossLedger,
    sink: S,
    counters: Option<Box<dyn KernelCounters + Send>>,
    sink_error_logged: bool,
    overlap: Option<Overlap>,
    hot: HotSources,
    /// pid → (dev, ino, path) of recent reported opens.
    opened: HashMap<u32, Vec<(u32, u64, SharedStr)>>,
    /// Audit events not reported, by reason.
    pub audit_skipped: std::collections::BTreeMap<String, u64>,
    /// The serialized event, reused so the hot path does not allocate.
    json: Vec<u8>,
    /// "ebpf/cpuN" by CPU, made once.
    cpu_sources: Vec<std::sync::Arc<str>>,
    /// (pid, start) → entity id: a UUID v5 is a SHA-1 and three
    /// allocations, and the same few processes act again and again.
    entity_ids: HashMap<(u32, u64), SharedStr>,
}

/// Bound of the entity id memo; it starts over when full.
const ENTITY_ID_MEMO: usize = 16_384;

/// A provider switch in progress (make-before-break).
struct Overlap {
    old: Provider,
    until: Instant,
    seen: HashSet<String>,
}

/// What identifies the same activity seen by both providers.
fn dedup_key(event: &Event) -> Option<(Provider, String)> {
    let (provider, key) = match event {
        Event::Process(p) => (
            p.origin.provider,
            format!(
                "p/{}/{:?}/{:?}",
                p.process.pid,
                std::mem::discriminant(&p.activity),
                p.process.exe
            ),
        ),
        Event::File(f) => (
            f.origin.provider,
            format!(
                "f/{}/{:?}/{:?}",
                f.process.pid,
                std::mem::discriminant(&f.activity),
                f.file.path
            ),
        ),
        Event::Network(n) => (
            n.origin.provider,
            format!("n/{}/{:?}/{:?}", n.process.pid, n.activity, n.remote),
        ),
        Event::Auth(_) | Event::Loss(_) => return None,
    };
    Some((provider, key))
}

/// The ledger name of an event's type.
fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::Process(p) => match p.activity {
            ProcessActivity::Exec => "process_exec",
            ProcessActivity::Fork => "process_fork",
            ProcessActivity::Exit { .. } => "process_exit",
        },
        Event::File(f) => match f.activity {
            FileActivity::Open { .. } => "file_open",
            FileActivity::OpenFolded { .. } => "file_open_folded",
            FileActivity::Delete { .. } => "file_delete",
            FileActivity::Rename { .. } => "file_rename",
            FileActivity::Mkdir { .. } => "file_mkdir",
            FileActivity::Chmod { .. } => "file_chmod",
            FileActivity::Chown { .. } => "file_chown",
            FileActivity::Link { .. } => "file_link",
            FileActivity::Symlink { .. } => "file_symlink",
        },
        Event::Network(n) => match n.activity {
            crate::event::NetActivity::Connect => "network_connect",
            crate::event::NetActivity::Accept => "network_accept",
            crate::event::NetActivity::Listen { .. } => "network_listen",
            crate::event::NetActivity::Bind => "network_bind",
            crate::event::NetActivity::UdpFirst { inbound: false } => "network_udp_send",
            crate::event::NetActivity::UdpFirst { inbound: true } => "network_udp_recv",
        },
        Event::Auth(_) => "login",
        Event::Loss(_) => "loss",
    }
}

const MAX_OPENED_PROCESSES: usize = 65_536;
const OPENED_PER_PROCESS: usize = 2 * mdatp_bpf::abi::mdatp_bounds::MDATP_FOLD_SLOTS as usize;

impl<S: Sink> Pipeline<S> {
    pub fn new(
        clock: HostClock,
        cache: ProcessCache,
        sink: S,
        counters: Option<Box<dyn KernelCounters + Send>>,
    ) -> Self {
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            clock,
            hostname,
            cache,
            users: UserNames::new(),
            seq: SeqTracker::default(),
            ledger: LossLedger::default(),
            sink,
            counters,
            sink_error_logged: false,
            overlap: None,
            hot: HotSources::default(),
            opened: HashMap::new(),
            audit_skipped: Default::default(),
            json: Vec::with_capacity(4096),
            cpu_sources: Vec::new(),
            entity_ids: HashMap::new(),
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

    fn cpu_source(&mut self, cpu: u32) -> std::sync::Arc<str> {
        let i = cpu as usize;
        // The kernel's CPU number; bounded so that a corrupt record cannot
        // grow the table.
        if i >= 8192 {
            return format!("ebpf/cpu{i}").into();
        }
        while self.cpu_sources.len() <= i {
            let n = self.cpu_sources.len();
            self.cpu_sources.push(format!("ebpf/cpu{n}").into());
        }
        self.cpu_sources[i].clone()
    }

    /// One ring-buffer record.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        match decode::decode(bytes) {
            Ok(rec) => self.handle(rec),
            Err(e) => {
                self.ledger.decode_errors += 1;
                log::warn!("dropping undecodable kernel record: {e}");
            }
        }
    }

    pub fn handle(&mut self, rec: KernelRecord) {
        let hdr = *rec.header();
        let source = self.cpu_source(hdr.cpu);
        match self.seq.observe(&source, hdr.seq) {
            SeqOutcome::InOrder => {}
            SeqOutcome::Late => self.ledger.late_records += 1,
            SeqOutcome::Gap {
                first_missing,
                missing,
            } => {
                self.ledger.sequence_gaps += missing;
                let dropped_by_type = match self.read_counters() {
                    Ok(k) => self.ledger.unreported_drops(&k),
                    Err(e) => {
                        log::warn!("cannot read kernel loss counters: {e}");
                        Default::default()
                    }
                };
                let loss = LossRecord {
                    time_ns: self.clock.boot_to_unix_ns(hdr.boot_ns),
                    provider: Provider::Ebpf,
                    source: source.clone(),
                    detected_by: LossDetection::SequenceGap,
                    first_missing: Some(first_missing),
                    missing,
                    dropped_by_type,
                };
                self.emit(&Event::Loss(loss), None);
            }
        }
        let origin = Origin {
            provider: Provider::Ebpf,
            source,
            sequence: hdr.seq,
        };
        let time_ns = self.clock.boot_to_unix_ns(hdr.boot_ns);
        let type_name = mdatp_bpf::event_type_name(hdr.type_).unwrap_or("unknown");
        let event = match rec {
            KernelRecord::Exec(r) => Event::Process(Box::new(self.exec(r, time_ns, origin))),
            KernelRecord::Fork(f) => {
                let parent = self.task_process_with_argv(&f.parent);
                let child = ProcessInfo {
                    pid: f.child_pid,
                    tid: Some(f.child_tid),
                    entity_id: self.entity_id(f.child_pid, f.child_start_boottime_ns),
                    start_time_ns: Some(self.clock.boot_to_unix_ns(f.child_start_boottime_ns)),
                    // The child runs the parent's image until it execs.
                    name: parent.name.clone(),
                    exe: parent.exe.clone(),
                    argv: parent.argv.clone(),
                    creds: parent.creds.clone(),
                    cgroup_id: parent.cgroup_id,
                    ..Default::default()
                };
                self.cache.on_fork(
                    f.parent.pid,
                    f.parent.start_boottime_ns,
                    f.child_pid,
                    f.child_start_boottime_ns,
                );
                Event::Process(Box::new(ProcessEvent {
                    time_ns,
                    activity: ProcessActivity::Fork,
                    process: child,
                    parent: Some(parent),
                    origin,
                }))
            }
            KernelRecord::Exit(x) => {
                let process = self.task_process_with_argv(&x.task);
                let parent = self.parent_of(&x.task);
                self.cache
                    .on_exit(x.task.pid, x.task.start_boottime_ns, Instant::now());
                self.opened.remove(&x.task.pid);
                Event::Process(Box::new(ProcessEvent {
                    time_ns,
                    activity: ProcessActivity::Exit {
                        code: x.exit_code,
                        signal: (x.exit_signal != 0).then_some(x.exit_signal),
                        core_dumped: x.core_dumped != 0,
                    },
                    process,
                    parent: Some(parent),
                    origin,
                }))
            }
            KernelRecord::Open(r) => {
                let (activity, file) = records::open_event(&r);
                if let Some(path) = &file.path {
                    self.remember_open(r.task.pid, r.file.dev, r.file.ino, path.clone());
                }
                let process = self.task_process(&r.task);
                self.file_event(time_ns, activity, file, None, process, origin)
            }
            KernelRecord::Fold(f) => {
                let file = FileInfo {
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
                self.file_event(time_ns, activity, file, None, process, origin)
            }
            KernelRecord::FileOp(r) => {
                let (mut activity, mut file, error) = records::file_op(&r);
                records::complete_identity(&mut file);
                if let FileActivity::Rename { to, .. } | FileActivity::Link { to, .. } =
                    &mut activity
                {
                    records::complete_identity(to);
                }
                let process = self.task_process(&r.task);
                self.file_event(time_ns, activity, file, error, process, origin)
            }
            KernelRecord::Net(n) => {
                let parts = records::net(&n);
                let process = self.task_process(&n.task);
                if let Some(exe) = &process.exe {
                    self.hot.executable(exe, 1);
                }
                Event::Network(Box::new(NetEvent {
                    time_ns,
                    activity: parts.activity,
                    protocol: parts.protocol,
                    local: parts.local,
                    remote: parts.remote,
                    error: parts.error,
                    process,
                    origin,
                }))
            }
        };
        self.emit(&event, Some(type_name));
    }

    fn file_event(
        &mut self,
        time_ns: u64,
        activity: FileActivity,
        file: FileInfo,
        error: Option<i32>,
        process: ProcessInfo,
        origin: Origin,
    ) -> Event {
        let n = match &activity {
            FileActivity::OpenFolded { count, .. } => u64::from(*count),
            _ => 1,
        };
        if let Some(p) = &file.path {
            self.hot.path(p, n);
        }
        if let Some(exe) = &process.exe {
            self.hot.executable(exe, n);
        }
        Event::File(Box::new(FileEvent {
            time_ns,
            activity,
            file,
            error,
            process,
            origin,
        }))
    }

    /// Paths of files a process opened, so a fold record (which carries
    /// only device and inode) can name its file. A few per process.
    fn remember_open(&mut self, pid: u32, dev: u32, ino: u64, path: SharedStr) {
        if self.opened.len() >= MAX_OPENED_PROCESSES && !self.opened.contains_key(&pid) {
            self.opened.clear();
        }
        let list = self.opened.entry(pid).or_default();
        list.retain(|(d, i, _)| !(*d == dev && *i == ino));
        if list.len() >= OPENED_PER_PROCESS {
            list.remove(0);
        }
        list.push((dev, ino, path));
    }

    fn opened_path(&self, pid: u32, dev: u32, ino: u64) -> Option<SharedStr> {
        self.opened
            .get(&pid)?
            .iter()
            .find(|(d, i, _)| *d == dev && *i == ino)
            .map(|(_, _, p)| p.clone())
    }

    /// Events delivered per type (for health).
    pub fn delivered_map(&self) -> std::collections::BTreeMap<String, u64> {
        self.ledger
            .delivered
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// Loss per stage and type (for health); zero entries left out.
    pub fn loss_map(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        if let Ok(k) = self.read_counters() {
            for (ty, c) in k {
                if c.ringbuf_drops > 0 {
                    m.insert(format!("kernel_ringbuf/{ty}"), c.ringbuf_drops);
                }
            }
        }
        for (name, n) in [
            ("sequence_gaps", self.ledger.sequence_gaps),
            ("decode_errors", self.ledger.decode_errors),
            ("sink_failures", self.ledger.sink_failures),
        ] {
            if n > 0 {
                m.insert(name.to_string(), n);
            }
        }
        m
    }

    /// Events written to the sink so far.
    pub fn delivered_total(&self) -> u64 {
        self.ledger.delivered.values().sum()
    }

    /// The hot-sources table (SIGUSR2, shutdown).
    pub fn hot_sources(&self) -> String {
        self.hot.table(20)
    }

    fn exec(&mut self, r: ExecRecord, time_ns: u64, origin: Origin) -> ProcessEvent {
        let t = &r.task;
        let exe: Option<SharedStr> =
            (!r.has(xf::MDATP_EXEC_EXE_MISSING)).then(|| String::from_utf8_lossy(&r.exe).into());
        let argv: Option<Arc<[String]>> =
            (!r.has(xf::MDATP_EXEC_ARGV_MISSING)).then(|| split_argv(&r.argv).into());
        let name: SharedStr = comm_str(&t.comm).into();
        let process = ProcessInfo {
            pid: t.pid,
            tid: Some(t.tid),
            entity_id: self.entity_id(t.pid, t.start_boottime_ns),
            start_time_ns: Some(self.clock.boot_to_unix_ns(t.start_boottime_ns)),
            name: Some(name.clone()),
            exe: exe.clone(),
            exe_truncated: r.has(xf::MDATP_EXEC_EXE_TRUNCATED),
            argv: argv.clone(),
            argv_truncated: r.has(xf::MDATP_EXEC_ARGV_TRUNCATED),
            argc: Some(r.argc),
            cwd: Some(String::from_utf8_lossy(&r.cwd).into_owned()),
            cwd_truncated: r.has(xf::MDATP_EXEC_CWD_TRUNCATED),
            creds: Some(self.creds(t)),
            cgroup_id: Some(t.cgroup_id),
        };
        let parent = self.parent_of(t);
        self.cache
            .on_exec(t.pid, t.ppid, t.start_boottime_ns, name, exe, argv);
        ProcessEvent {
            time_ns,
            activity: ProcessActivity::Exec,
            process,
            parent: Some(parent),
            origin,
        }
    }

    fn creds(&mut self, t: &mdatp_task_info) -> Credentials {
        let audit_ids = t.flags & mdatp_task_flags::MDATP_TASK_NO_AUDIT_IDS == 0;
        Credentials {
            uid: t.uid,
            gid: t.gid,
            euid: t.euid,
            egid: t.egid,
            user_name: self.users.name(t.uid),
            loginuid: (audit_ids && t.loginuid != UNSET_ID).then_some(t.loginuid),
            sessionid: (audit_ids && t.sessionid != UNSET_ID).then_some(t.sessionid),
        }
    }

    /// The acting process of a record, with its executable from the cache
    /// (the per-event path: file and network events print no argv).
    fn task_process(&mut self, t: &mdatp_task_info) -> ProcessInfo {
        let cached = self.cache.get(t.pid, t.start_boottime_ns);
        let exe = cached.and_then(|c| c.exe.clone());
        // The kernel's comm, shared with the cache while they agree (a
        // thread may rename itself).
        let name = match cached.and_then(|c| c.name.as_ref()) {
            Some(n) if comm_matches(&t.comm, n) => n.clone(),
            _ => comm_str(&t.comm).into(),
        };
        ProcessInfo {
            pid: t.pid,
            tid: Some(t.tid),
            entity_id: self.entity_id(t.pid, t.start_boottime_ns),
            start_time_ns: Some(self.clock.boot_to_unix_ns(t.start_boottime_ns)),
            name: Some(name),
            exe,
            creds: Some(self.creds(t)),
            cgroup_id: Some(t.cgroup_id),
            ..Default::default()
        }
    }

    /// As task_process, with the command line (process events print it).
    fn task_process_with_argv(&mut self, t: &mdatp_task_info) -> ProcessInfo {
        let mut p = self.task_process(t);
        p.argv = self
            .cache
            .get(t.pid, t.start_boottime_ns)
            .and_then(|c| c.argv.clone());
        p
    }

    /// The real parent, identified by the kernel, described by the cache.
    fn parent_of(&mut self, t: &mdatp_task_info) -> ProcessInfo {
        let entity_id = self.entity_id(t.ppid, t.parent_start_boottime_ns);
        let cached = self.cache.get(t.ppid, t.parent_start_boottime_ns);
        ProcessInfo {
            pid: t.ppid,
            entity_id,
            start_time_ns: Some(self.clock.boot_to_unix_ns(t.parent_start_boottime_ns)),
            name: cached.and_then(|c| c.name.clone()),
            exe: cached.and_then(|c| c.exe.clone()),
            argv: cached.and_then(|c| c.argv.clone()),
            ..Default::default()
        }
    }

    fn emit(&mut self, event: &Event, type_name: Option<&'static str>) {
        if self.is_overlap_duplicate(event) {
            self.ledger.overlap_duplicates += 1;
            return;
        }
        self.json.clear();
        ocsf::write(event, &self.hostname, &mut self.json);
        match self.sink.write(&self.json) {
            Ok(()) => {
                if let Some(t) = type_name {
                    self.ledger.delivered(t);
                }
            }
            Err(e) => {
                self.ledger.sink_failures += 1;
                if !self.sink_error_logged {
                    log::error!("event output failed (counted as sink loss from now on): {e}");
                    self.sink_error_logged = true;
                }
            }
        }
    }

    /// End of a batch: push buffered output out.
    pub fn flush(&mut self) {
        if let Err(e) = self.sink.flush() {
            self.ledger.sink_failures += 1;
            if !self.sink_error_logged {
                log::error!("event output flush failed: {e}");
                self.sink_error_logged = true;
            }
        }
    }

    /// Periodic housekeeping; also called at shutdown.
    pub fn tick(&mut self) {
        self.cache.expire(Instant::now());
        self.report_counted_drops();
    }

    /// Drops the kernel counted that no sequence gap has reported yet (the
    /// gap shows only once a later record of the same CPU arrives) become a
    /// loss record now.
    fn report_counted_drops(&mut self) {
        if self.counters.is_none() {
            return;
        }
        let kernel = match self.read_counters() {
            Ok(k) => k,
            Err(e) => {
                log::warn!("cannot read kernel loss counters: {e}");
                return;
            }
        };
        let dropped_by_type = self.ledger.unreported_drops(&kernel);
        if dropped_by_type.is_empty() {
            return;
        }
        let loss = LossRecord {
            time_ns: self.clock.now_unix_ns(),
            provider: Provider::Ebpf,
            source: "ebpf/kernel".into(),
            detected_by: LossDetection::KernelCounter,
            first_missing: None,
            missing: dropped_by_type.values().sum(),
            dropped_by_type,
        };
        self.emit(&Event::Loss(loss), None);
        self.flush();
    }

    pub fn loss_summary(&self) -> String {
        let kernel = self.read_counters();
        self.ledger.summary(&kernel).to_string()
    }

    fn read_counters(
        &self,
    ) -> Result<std::collections::BTreeMap<&'static str, crate::loss::KernelCount>, String> {
        match &self.counters {
            Some(c) => c.read(),
            None => Err("eBPF provider not running".into()),
        }
    }

    /// The eBPF counters of a (newly) running eBPF provider, or None.
    pub fn set_counters(&mut self, counters: Option<Box<dyn KernelCounters + Send>>) {
        // A new BPF object counts from zero, and so does its sequence.
        self.counters = counters;
        self.ledger.reset_reported_drops();
        self.seq = SeqTracker::default();
    }

    /// A provider switch starts: for `window`, events of the new provider
    /// that the old one already reported are dropped as duplicates.
    pub fn begin_overlap(&mut self, old: Provider, window: std::time::Duration) {
        self.overlap = Some(Overlap {
            old,
            until: Instant::now() + window,
            seen: HashSet::new(),
        });
    }

    /// Whether `event` duplicates one the old provider reported during a
    /// switch (and so must not be emitted).
    fn is_overlap_duplicate(&mut self, event: &Event) -> bool {
        let Some(o) = &mut self.overlap else {
            return false;
        };
        if Instant::now() > o.until {
            self.overlap = None;
            return false;
        }
        let Some((provider, key)) = dedup_key(event) else {
            return false;
        };
        if provider == o.old {
            o.seen.insert(key);
            false
        } else {
            o.seen.contains(&key)
        }
    }

    /// One assembled audit event. `syscalls`: the auditd provider is
    /// active, so syscall events with our key are reported; login records
    /// are reported in every mode.
    pub fn handle_audit(&mut self, ev: &AuditEvent, syscalls: bool) {
        let Some(first) = ev.records.first() else {
            return;
        };
        let user_record = (1100..1200).contains(&first.ty);
        if !user_record {
            let ours = ev
                .records
                .iter()
                .any(|r| r.ty == 1300 && r.text.windows(12).any(|w| w == b" key=\"mdatp\""));
            if !syscalls || !ours {
                return;
            }
        }
        let mut event = match audit_convert::convert(ev) {
            Ok(e) => e,
            Err(skip) => {
                if skip != audit_convert::Skip::NotReported {
                    *self.audit_skipped.entry(format!("{skip:?}")).or_default() += 1;
                }
                return;
            }
        };
        let type_name = event_kind(&event);
        match &mut event {
            Event::Process(p) => {
                self.fill_identity(&mut p.process);
                if let Some(parent) = &mut p.parent {
                    self.fill_identity(parent);
                }
                if p.activity == ProcessActivity::Exec {
                    let pp = &p.process;
                    self.cache.on_exec(
                        pp.pid,
                        p.parent.as_ref().map(|x| x.pid).unwrap_or(0),
                        pp.start_time_ns
                            .map(|t| self.clock.unix_to_boot_ns(t))
                            .unwrap_or(0),
                        pp.name.clone().unwrap_or_default(),
                        pp.exe.clone(),
                        pp.argv.clone(),
                    );
                }
            }
            Event::File(f) => self.fill_identity(&mut f.process),
            Event::Network(n) => self.fill_identity(&mut n.process),
            Event::Auth(a) => self.fill_identity(&mut a.process),
            Event::Loss(_) => {}
        }
        self.emit(&event, Some(type_name));
    }

    /// Start time, entity id, names: what audit records lack, from /proc
    /// (while the process is there) and the process cache.
    fn fill_identity(&mut self, p: &mut ProcessInfo) {
        let stat = (p.entity_id.is_empty() && p.pid > 0)
            .then(|| std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).ok())
            .flatten()
            .and_then(|s| crate::procfs::parse_stat(&s));
        if let Some((comm, _ppid, ticks)) = stat {
            let start = crate::clock::ticks_to_boot_ns(ticks);
            p.entity_id = self.entity_id(p.pid, start);
            p.start_time_ns = Some(self.clock.boot_to_unix_ns(start));
            if p.name.is_none() {
                p.name = Some(comm.into());
            }
            if let Some(c) = self.cache.get(p.pid, start) {
                if p.exe.is_none() {
                    p.exe = c.exe.clone();
                }
                if p.argv.is_none() {
                    p.argv = c.argv.clone();
                }
            }
        }
        if let Some(c) = p.creds.as_mut().filter(|c| c.user_name.is_none()) {
            c.user_name = self.users.name(c.uid);
        }
    }
}

/// Benchmark support: the cost of building the OCSF value and of
/// serializing it, in ns per event, for `n` copies of one record.
pub fn stage_costs(clock: &HostClock, record: &[u8], n: u64) -> (f64, f64) {
    let Ok(rec) = decode::decode(record) else {
        return (0.0, 0.0);
    };
    let mut p = Pipeline::new(
        clock.clone(),
        ProcessCache::new(),
        crate::sink::JsonLines::new(std::io::sink()),
        None,
    );
    // Build one normalized event the way handle() does.
    let KernelRecord::Open(r) = rec else {
        return (0.0, 0.0);
    };
    let (activity, file) = records::open_event(&r);
    let process = p.task_process(&r.task);
    let origin = Origin {
        provider: Provider::Ebpf,
        source: "ebpf/cpu0".into(),
        sequence: 1,
    };
    let ev = p.file_event(0, activity, file, None, process, origin);
    // "build" is now the direct serialization; "write" the sink's copy
    // and newline into its buffer.
    let t = Instant::now();
    let mut buf = Vec::with_capacity(4096);
    for _ in 0..n {
        buf.clear();
        ocsf::write(&ev, "host", &mut buf);
        std::hint::black_box(&buf);
    }
    let build = t.elapsed().as_nanos() as f64 / n as f64;
    let mut sink = crate::sink::JsonLines::new(std::io::sink());
    let t = Instant::now();
    for _ in 0..n {
        let _ = std::hint::black_box(crate::sink::Sink::write(&mut sink, &buf));
    }
    let write = t.elapsed().as_nanos() as f64 / n as f64;
    (build, write)
}
