//! What the sensor itself costs: its memory, its CPU time, the kernel
//! memory of its BPF maps and programs, and each program's run count and
//! time — for health's `resources`, `mdatp diagnostic ebpf-statistics`
//! and the diagnostics archive. Read from /proc/self (fdinfo names the
//! kernel's own accounting per BPF object: `memlock`, `run_cnt`,
//! `run_time_ns`), so no BPF syscall is needed for the numbers.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

/// One BPF map or program the daemon holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BpfObject {
    pub kind: BpfKind,
    pub id: u32,
    pub name: String,
    /// Kernel memory charged to it (fdinfo `memlock`).
    pub memlock: u64,
    /// Maps: `map_type` and `max_entries`; programs: `prog_type`.
    pub detail: String,
    /// Programs: runs and total run time while statistics were enabled.
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum BpfKind {
    #[default]
    Map,
    Program,
}

impl BpfKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BpfKind::Map => "map",
            BpfKind::Program => "program",
        }
    }
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn number(info: &str, name: &str) -> u64 {
    field(info, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The BPF maps and programs among `proc_dir`'s open fds (once each, by
/// id), names from the kernel by id (which lists every BPF object of the
/// host: for the statistics and the archive, not for health's sampling).
pub fn bpf_objects(proc_dir: &Path) -> Vec<BpfObject> {
    let mut by_id = unnamed_bpf_objects(proc_dir);
    name_objects(&mut by_id);
    by_id.into_values().collect()
}

/// As `bpf_objects`, without names: fdinfo alone.
fn unnamed_bpf_objects(proc_dir: &Path) -> BTreeMap<(BpfKind, u32), BpfObject> {
    let mut by_id: BTreeMap<(BpfKind, u32), BpfObject> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(proc_dir.join("fdinfo")) else {
        return by_id;
    };
    for e in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let (kind, id, detail) = if let Some(id) = field(&info, "map_id") {
            let detail = format!(
                "type {} max_entries {}",
                field(&info, "map_type").unwrap_or("?"),
                field(&info, "max_entries").unwrap_or("?")
            );
            (BpfKind::Map, id, detail)
        } else if let Some(id) = field(&info, "prog_id") {
            let detail = format!("type {}", field(&info, "prog_type").unwrap_or("?"));
            (BpfKind::Program, id, detail)
        } else {
            continue;
        };
        let Ok(id) = id.parse::<u32>() else { continue };
        by_id.entry((kind, id)).or_insert_with(|| BpfObject {
            kind,
            id,
            name: String::new(),
            memlock: number(&info, "memlock"),
            detail,
            run_cnt: number(&info, "run_cnt"),
            run_time_ns: number(&info, "run_time_ns"),
        });
    }
    by_id
}

/// Names from the kernel (fdinfo has none); an object it does not name
/// keeps `id N`.
fn name_objects(objects: &mut BTreeMap<(BpfKind, u32), BpfObject>) {
    for m in aya::maps::loaded_maps().flatten() {
        if let Some(o) = objects.get_mut(&(BpfKind::Map, m.id())) {
            o.name = m.name_as_str().unwrap_or_default().to_string();
        }
    }
    if objects.keys().any(|(k, _)| *k == BpfKind::Program) {
        for p in aya::programs::loaded_programs().flatten() {
            if let Some(o) = objects.get_mut(&(BpfKind::Program, p.id())) {
                o.name = p.name_as_str().unwrap_or_default().to_string();
            }
        }
    }
    for o in objects.values_mut().filter(|o| o.name.is_empty()) {
        o.name = format!("id {}", o.id);
    }
}

/// Run counts and times over `window`, with the kernel's run-time
/// statistics enabled for that window only (they cost every program run
/// two clock reads; the kernel turns them off when the fd closes). The
/// counters are cumulative, so the answer is the difference. Without
/// BPF_ENABLE_STATS (before 5.8, or refused) the error says why and the
/// objects come back with what they had.
pub async fn sample_bpf(window: Duration) -> (Vec<BpfObject>, Option<String>) {
    let me = Path::new("/proc/self");
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime);
    let before = unnamed_bpf_objects(me);
    let error = match &stats {
        Ok(_) => {
            tokio::time::sleep(window).await;
            None
        }
        Err(e) => Some(format!(
            "run-time statistics unavailable (BPF_ENABLE_STATS: {e}); run counts are those since kernel.bpf_stats_enabled was last on"
        )),
    };
    let mut after = bpf_objects(me);
    drop(stats);
    if error.is_none() {
        for o in &mut after {
            if let Some(b) = before.get(&(o.kind, o.id)) {
                o.run_cnt = o.run_cnt.saturating_sub(b.run_cnt);
                o.run_time_ns = o.run_time_ns.saturating_sub(b.run_time_ns);
            }
        }
    }
    (after, error)
}

/// (user + system CPU time in ms, RSS bytes, peak RSS bytes, threads,
/// open fds) of this process; zeros for what cannot be read.
fn self_numbers() -> (u64, u64, u64, u64, u64) {
    let Ok(me) = procfs::process::Process::myself() else {
        return Default::default();
    };
    let (cpu_ms, threads) = me.stat().map_or((0, 0), |st| {
        let ticks = (st.utime + st.stime) * 1000 / procfs::ticks_per_second().max(1);
        (ticks, u64::try_from(st.num_threads).unwrap_or(0))
    });
    let (rss, peak) = me.status().map_or((0, 0), |st| {
        (st.vmrss.unwrap_or(0) * 1024, st.vmhwm.unwrap_or(0) * 1024)
    });
    let fds = me.fd_count().map_or(0, |n| n as u64);
    (cpu_ms, rss, peak, threads, fds)
}

/// Health's `resources`, sampled at most every `EVERY` (each sample reads
/// every fd's fdinfo), with the CPU share over the last minute.
#[derive(Debug, Default)]
pub struct OwnUsage {
    /// (when, CPU ms) samples of the last minute.
    cpu: VecDeque<(Instant, u64)>,
    last: Option<(Instant, BTreeMap<String, u64>)>,
}

const EVERY: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(60);

impl OwnUsage {
    pub fn resources(&mut self, now: Instant) -> BTreeMap<String, u64> {
        if let Some((at, r)) = &self.last
            && now.duration_since(*at) < EVERY
        {
            return r.clone();
        }
        let me = Path::new("/proc/self");
        let (cpu_ms, rss, peak, threads, fds) = self_numbers();
        self.cpu.push_back((now, cpu_ms));
        while self
            .cpu
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.cpu.pop_front();
        }
        let mut r = BTreeMap::new();
        if let (Some((t0, c0)), Some((t1, c1))) = (self.cpu.front(), self.cpu.back()) {
            let wall = t1.duration_since(*t0).as_millis() as u64;
            // Per mille of one core (2,000 = two cores busy).
            if let Some(p) = ((c1 - c0) * 1000).checked_div(wall) {
                r.insert("cpu_permille_last_minute".into(), p);
            }
        }
        let objects = unnamed_bpf_objects(me);
        let sum = |k: BpfKind| -> (u64, u64) {
            objects
                .values()
                .filter(|o| o.kind == k)
                .fold((0, 0), |(n, b), o| (n + 1, b + o.memlock))
        };
        let (maps, map_bytes) = sum(BpfKind::Map);
        let (progs, prog_bytes) = sum(BpfKind::Program);
        for (k, v) in [
            ("cpu_ms_total", cpu_ms),
            ("rss_bytes", rss),
            ("rss_peak_bytes", peak),
            ("threads", threads),
            ("open_fds", fds),
            ("bpf_maps", maps),
            ("bpf_map_bytes", map_bytes),
            ("bpf_programs", progs),
            ("bpf_program_bytes", prog_bytes),
        ] {
            r.insert(k.into(), v);
        }
        self.last = Some((now, r.clone()));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reports_its_memory_and_cpu() {
        let mut u = OwnUsage::default();
        let r = u.resources(Instant::now());
        assert!(r["rss_bytes"] > 1 << 20, "{r:?}");
        assert!(r["rss_peak_bytes"] >= r["rss_bytes"], "{r:?}");
        assert!(r["threads"] >= 1 && r["open_fds"] >= 3, "{r:?}");
        assert_eq!(r["bpf_maps"], 0, "a test holds no map: {r:?}");
    }

    #[test]
    fn fdinfo_fields_are_read_by_name() {
        let info = "pos:\t0\nflags:\t02000002\nmap_type:\t27\nmax_entries:\t8388608\nmemlock:\t8400896\nmap_id:\t42\n";
        assert_eq!(field(info, "map_id"), Some("42"));
        assert_eq!(number(info, "memlock"), 8_400_896);
        assert_eq!(field(info, "map"), None, "a prefix is not a field");
    }
}
