//! Which filesystem a path is on, from the daemon's mount table: a
//! lookup on the event loop (a statx for an identity the kernel side
//! could not give) must never touch a filesystem that can hang it — a
//! dead NFS server, a stuck FUSE daemon, an automount. Those are skipped
//! and the event goes without the identity (the event itself is kept).

use std::path::Path;
use std::time::{Duration, Instant};

/// How old the table may get without a change being seen: the kernel
/// signals every change of the mount table (below), so this is only a
/// fallback for a kernel that would not.
const MAX_AGE: Duration = Duration::from_secs(60);

/// Filesystem types a lookup could hang on (network, userspace, automount).
fn may_hang(fs_type: &str) -> bool {
    matches!(
        fs_type,
        "nfs"
            | "nfs4"
            | "cifs"
            | "smb3"
            | "smbfs"
            | "ceph"
            | "9p"
            | "afs"
            | "glusterfs"
            | "lustre"
            | "autofs"
            | "fuse"
            | "fuseblk"
            | "sshfs"
            | "davfs"
    ) || fs_type.starts_with("fuse.")
}

#[derive(Debug, Clone, PartialEq)]
struct Mount {
    point: String,
    may_hang: bool,
    /// The filesystem's device as the kernel numbers it (its superblock's
    /// s_dev, which mountinfo shows; on btrfs it is not the st_dev stat
    /// gives for a subvolume's files).
    kernel_dev: Option<u32>,
}

/// "major:minor" → the kernel's internal dev_t (MINORBITS = 20).
fn kernel_dev(majmin: &str) -> Option<u32> {
    let (major, minor) = majmin.split_once(':')?;
    let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
    (major < 1 << 12 && minor < 1 << 20).then_some(major << 20 | minor)
}

#[derive(Debug, Default)]
pub struct MountTable {
    /// Longest mount point first; of mounts on the same point, the one on
    /// top (mounted last) first.
    mounts: Vec<Mount>,
    read_at: Option<Instant>,
    /// /proc/self/mountinfo kept open: poll(2) on it reports POLLPRI once
    /// after each change of this namespace's mounts. Without it a FUSE
    /// filesystem mounted a moment ago (fusermount3 lets any user mount
    /// one on a directory they own) would pass for the local filesystem
    /// below it until the next periodic read, and a lookup there could
    /// hang the loop.
    changes: Option<std::fs::File>,
}

impl MountTable {
    /// Whether the mount table changed since the last call (or cannot be
    /// watched: then every call says so and the table is read each time).
    fn changed(&mut self) -> bool {
        use std::os::fd::AsFd;
        if self.changes.is_none() {
            self.changes = std::fs::File::open("/proc/self/mountinfo").ok();
        }
        let Some(f) = &self.changes else {
            return true;
        };
        let fd = f.as_fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::PRI,
        )];
        match rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default())) {
            Ok(0) => false,
            Ok(_) => !fds[0].revents().is_empty(),
            Err(_) => true,
        }
    }

    fn refresh(&mut self, now: Instant) {
        // Polled every time, so that a change is reported once and not
        // carried into a later call.
        let changed = self.changed();
        if !changed
            && self
                .read_at
                .is_some_and(|t| now.duration_since(t) < MAX_AGE)
        {
            return;
        }
        self.read_at = Some(now);
        let infos = procfs::process::Process::myself().and_then(|p| p.mountinfo());
        match infos {
            Ok(m) => {
                self.mounts = m
                    .into_iter()
                    .rev()
                    .map(|i| Mount {
                        point: i.mount_point.to_string_lossy().into_owned(),
                        may_hang: may_hang(&i.fs_type),
                        kernel_dev: kernel_dev(&i.majmin),
                    })
                    .collect();
                // Stable: same-point mounts stay top first.
                self.mounts
                    .sort_by_key(|m| std::cmp::Reverse(m.point.len()));
            }
            Err(e) => log::warn!("cannot read the mount table: {e}"),
        }
    }

    /// The innermost mount `path` (absolute, without symlinks) is on.
    fn mount_of(&mut self, path: &str) -> Option<&Mount> {
        self.refresh(Instant::now());
        let p = Path::new(path);
        self.mounts.iter().find(|m| p.starts_with(&m.point))
    }

    /// Whether looking `path` up could hang (or the table is unknown).
    pub fn may_hang(&mut self, path: &str) -> bool {
        self.mount_of(path).is_none_or(|m| m.may_hang)
    }

    /// The kernel's device number of the filesystem `path` is on.
    pub fn kernel_dev(&mut self, path: &str) -> Option<u32> {
        self.mount_of(path).and_then(|m| m.kernel_dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_mount_decides() {
        let m = |point: &str, may_hang| Mount {
            point: point.into(),
            may_hang,
            kernel_dev: None,
        };
        let mut t = MountTable {
            mounts: vec![
                m("/mnt/nfs/local", false),
                m("/mnt/nfs", true),
                m("/", false),
            ],
            read_at: Some(Instant::now()),
            changes: None,
        };
        // A table given by hand: no re-read (it would replace it).
        t.changes = std::fs::File::open("/proc/self/mountinfo").ok();
        let _ = t.changed();
        assert!(!t.may_hang("/etc/passwd"));
        assert!(t.may_hang("/mnt/nfs/x"));
        assert!(!t.may_hang("/mnt/nfs/local/y"));
        assert!(
            !t.may_hang("/mnt/nfsx/y"),
            "a prefix of a name is not the mount"
        );
        assert!(may_hang("fuse.sshfs") && may_hang("nfs4") && !may_hang("ext4"));
    }

    #[test]
    fn this_hosts_root_is_local() {
        assert!(!MountTable::default().may_hang("/etc"));
    }

    #[test]
    fn devices_are_in_the_kernels_numbering() {
        assert_eq!(kernel_dev("8:1"), Some(8 << 20 | 1));
        assert_eq!(kernel_dev("0:25"), Some(25));
        assert_eq!(kernel_dev("x:1"), None);
        // On ext4/xfs the superblock's device is the one stat gives.
        use std::os::unix::fs::MetadataExt;
        let st = std::fs::metadata("/etc/passwd").unwrap();
        let dev = MountTable::default().kernel_dev("/etc/passwd").unwrap();
        let (major, minor) = (libc::major(st.dev()), libc::minor(st.dev()));
        if !matches!(std::fs::read_to_string("/proc/self/mountinfo"), Ok(m) if m.contains(" btrfs "))
        {
            assert_eq!(dev, major << 20 | minor);
        }
    }
}
