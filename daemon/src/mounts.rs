//! Which filesystem a path is on, from the daemon's mount table: a
//! lookup on the event loop (a statx for an identity the kernel side
//! could not give) must never touch a filesystem that can hang it — a
//! dead NFS server, a stuck FUSE daemon, an automount. Those are skipped
//! and the event goes without the identity (the event itself is kept).

use std::path::Path;
use std::time::{Duration, Instant};

/// How old the table may get: mounts come and go.
const MAX_AGE: Duration = Duration::from_secs(10);

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

#[derive(Debug, Default)]
pub struct MountTable {
    /// (mount point, may hang), longest mount point first.
    mounts: Vec<(String, bool)>,
    read_at: Option<Instant>,
}

impl MountTable {
    fn refresh(&mut self, now: Instant) {
        if self
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
                    .map(|i| {
                        (
                            i.mount_point.to_string_lossy().into_owned(),
                            may_hang(&i.fs_type),
                        )
                    })
                    .collect();
                self.mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
            }
            Err(e) => log::warn!("cannot read the mount table: {e}"),
        }
    }

    /// Whether looking `path` up could hang (or the table is unknown).
    pub fn may_hang(&mut self, path: &str) -> bool {
        self.refresh(Instant::now());
        if self.mounts.is_empty() {
            return true;
        }
        let p = Path::new(path);
        self.mounts
            .iter()
            .find(|(m, _)| p.starts_with(m))
            .is_none_or(|(_, hang)| *hang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_mount_decides() {
        let mut t = MountTable {
            mounts: vec![
                ("/mnt/nfs/local".into(), false),
                ("/mnt/nfs".into(), true),
                ("/".into(), false),
            ],
            read_at: Some(Instant::now()),
        };
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
}
