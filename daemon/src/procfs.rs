//! Snapshot of the running processes from /proc, used to seed the process
//! cache so that processes started before the daemon are known.

use std::fs;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct ProcSnapshot {
    pub pid: u32,
    pub ppid: u32,
    /// Start time in /proc clock ticks since boot.
    pub start_ticks: u64,
    pub comm: String,
    pub exe: Option<String>,
    pub argv: crate::argv::Argv,
}

/// The pids (thread groups) listed under `proc_root`.
pub fn pids(proc_root: &Path) -> std::io::Result<impl Iterator<Item = u32>> {
    Ok(fs::read_dir(proc_root)?.filter_map(|entry| {
        entry
            .ok()?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
    }))
}

/// Every process (thread group) under `proc_root`. Processes that vanish
/// while being read are skipped.
pub fn snapshot(proc_root: &Path) -> std::io::Result<Vec<ProcSnapshot>> {
    Ok(pids(proc_root)?
        .filter_map(|pid| read_process(&proc_root.join(pid.to_string()), pid))
        .collect())
}

/// One process from its /proc directory; None once it is gone.
pub fn read_process(dir: &Path, pid: u32) -> Option<ProcSnapshot> {
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, ppid, start_ticks) = parse_stat(&stat)?;
    let exe = fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let argv = fs::read(dir.join("cmdline"))
        .map(|raw| crate::argv::Argv::from_nul_separated(&raw))
        .unwrap_or_default();
    Some(ProcSnapshot {
        pid,
        ppid,
        start_ticks,
        comm,
        exe,
        argv,
    })
}

/// (comm, ppid, starttime) from /proc/<pid>/stat. comm may hold spaces and
/// parentheses, so it is taken up to the last ')'.
pub fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    // Fields after comm start at field 3 (state).
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((comm, ppid, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm_parses() {
        let stat =
            "1234 (a (b) c) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(stat), Some(("a (b) c".into(), 77, 98765)));
    }

    #[test]
    fn own_process_is_in_the_snapshot() {
        let snap = snapshot(Path::new("/proc")).expect("read /proc");
        let me = std::process::id();
        let p = snap.iter().find(|p| p.pid == me).expect("self in snapshot");
        let exe = std::env::current_exe().expect("current exe");
        assert_eq!(p.exe.as_deref(), Some(exe.to_string_lossy().as_ref()));
        assert_eq!(p.ppid, std::os::unix::process::parent_id());
    }
}
