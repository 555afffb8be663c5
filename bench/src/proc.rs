//! Process accounting from /proc: CPU seconds and peak RSS.

pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clk_tck())
}

/// A `/proc/PID/status` size field (`VmHWM`, `VmRSS`) in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// VmHWM in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// The pid of the kernel's kauditd thread.
pub fn kauditd_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == "kauditd").then_some(pid)
        })
}

pub fn file_size(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Bytes of the file compressed with zstd level 3, the level the
/// sensor's rotation uses (0 when it cannot be read).
pub fn zstd_size(p: &std::path::Path) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let Ok(f) = std::fs::File::open(p) else {
        return 0;
    };
    let mut out = Count(0);
    match zstd::stream::copy_encode(f, &mut out, 3) {
        Ok(()) => out.0,
        Err(_) => 0,
    }
}

/// Resident KiB of a process's BPF map mappings (the ring buffer's data
/// pages, mmap'ed by the consumer): part of its RSS that is kernel ring
/// memory, reported apart from the daemon's own heap.
pub fn bpf_mmap_rss_kib(pid: u32) -> u64 {
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return 0;
    };
    let mut in_bpf = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: "start-end perms offset dev inode [name]".
            in_bpf = line.contains("bpf");
        } else if in_bpf && let Some(v) = line.strip_prefix("Rss:") {
            total += v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// KiB of kernel memory charged to the BPF maps a process holds: the map
/// ids from its fds (/proc/PID/fdinfo), their bytes_memlock from
/// `bpftool map show` (this bpftool lists no owning pids itself).
pub fn bpf_map_kib(pid: u32) -> Option<u64> {
    let mut ids = std::collections::HashSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .ok()?
        .flatten()
    {
        let Ok(info) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        if let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            ids.insert(id);
        }
    }
    let out = std::process::Command::new("bpftool")
        .args(["map", "show", "-j"])
        .output()
        .ok()?;
    let maps: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let bytes: u64 = maps
        .as_array()?
        .iter()
        .filter(|m| m["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .filter_map(|m| m["bytes_memlock"].as_u64())
        .sum();
    Some(bytes / 1024)
}
