//! Excluded executables by identity, not only by path: a file's path says
//! nothing about which file it is once bind mounts, other mount namespaces
//! or a replaced binary are in play — any of them can put another program
//! at an excluded executable's path. An executable is excluded only when
//! the file it runs is the one found at the configured path, compared by
//! device and inode:
//!
//! * in the kernel (eBPF's exec hook) against [`KernelFileId`]s the daemon
//!   writes into the exclusion map (the superblock's device, as the
//!   kernel numbers it, and the inode), refreshed periodically so that a
//!   package upgrade (a new inode at the same path) keeps its exclusion;
//! * in user space (the audit subsystem, the process connector, processes
//!   already running at start) by `stat` of `/proc/<pid>/exe` — the file
//!   the process runs, whatever mount namespace it lives in — against
//!   `stat` of the configured path.
//!
//! Whatever cannot be resolved (no such file, a filesystem a lookup could
//! hang on, a process already gone) is not excluded: reported, not hidden.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::mounts::MountTable;

/// A file's identity as the kernel's exec hook reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFileId {
    /// The superblock's s_dev (MINORBITS = 20).
    pub dev: u32,
    pub ino: u64,
}

/// A file's identity as stat(2) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatId {
    dev: u64,
    ino: u64,
}

/// The identity of the file at `path`, from the attributes the kernel
/// holds: `AT_STATX_DONT_SYNC` keeps a FUSE or network filesystem from
/// being asked (a hung FUSE daemon or a dead NFS server would hang the
/// loop: /proc/PID/exe of a process that runs a file from one leads
/// there whatever path it was started by), `AT_NO_AUTOMOUNT` keeps an
/// automount from being triggered. Device and inode do not change, so
/// the cached attributes are the true ones.
fn stat_id(path: &Path) -> Option<StatId> {
    use rustix::fs::{AtFlags, CWD, StatxFlags};
    let stx = rustix::fs::statx(
        CWD,
        path,
        AtFlags::NO_AUTOMOUNT | AtFlags::STATX_DONT_SYNC,
        StatxFlags::INO,
    )
    .ok()?;
    Some(StatId {
        dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
    })
}

/// Whether running process `pid` runs the file now at `exe` (an excluded
/// executable's configured path). A process gone, or a file missing, is
/// not a match.
pub fn runs(pid: u32, exe: &str) -> bool {
    let running = stat_id(Path::new(&format!("/proc/{pid}/exe")));
    running.is_some() && running == stat_id(Path::new(exe))
}

/// The identity of the file at each excluded executable's path, for the
/// kernel's map (None: not found, or on a filesystem a lookup could hang
/// on; such an entry excludes nothing).
pub fn kernel_ids<'a>(
    paths: impl Iterator<Item = &'a str>,
    mounts: &mut MountTable,
) -> Vec<Option<KernelFileId>> {
    paths
        .map(|p| {
            if mounts.may_hang(p) {
                return None;
            }
            let ino = std::fs::metadata(p).ok()?.ino();
            Some(KernelFileId {
                dev: mounts.kernel_dev(p)?,
                ino,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_runs_its_own_executable_and_not_another() {
        let me = std::process::id();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert!(runs(me, exe.to_str().unwrap()));
        assert!(!runs(me, "/bin/sh"));
        assert!(!runs(me, "/nonexistent"));
        assert!(!runs(u32::MAX, exe.to_str().unwrap()), "no such process");
    }

    #[test]
    fn the_kernel_identity_is_the_files() {
        let mut mounts = MountTable::default();
        let ids = kernel_ids(["/bin/sh", "/nonexistent"].into_iter(), &mut mounts);
        let ino = std::fs::metadata("/bin/sh").unwrap().ino();
        assert_eq!(ids[0].map(|i| i.ino), Some(ino));
        assert_eq!(ids[1], None);
    }
}
