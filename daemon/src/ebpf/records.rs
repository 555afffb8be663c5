//! File and network kernel records → the parts of normalized events that
//! do not need the process cache.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mdatp_bpf::abi::{mdatp_event_type as T, mdatp_file_flags, mdatp_file_ref, mdatp_net_event};

use super::decode::{FileOpRecord, OpenRecord};
use crate::event::{Device, FileActivity, FileInfo, IdentitySource, NetActivity, SharedStr};
use crate::paths::{has_dotdot, join_lexical};

const AT_REMOVEDIR: u32 = 0x200;
const AF_INET: u16 = 2;
const UNCHANGED_ID: u32 = u32::MAX;

/// Kernel dev_t (major << 20 | minor) as "major:minor".
fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One allocation for a valid UTF-8 path (the usual case), not two; the
/// plain check first: `from_utf8` scans ASCII a word at a time, where
/// `from_utf8_lossy`'s chunk iterator went byte by byte (5% of the
/// pipeline's instructions on the stages benchmark's paths).
fn lossy_shared(b: &[u8]) -> SharedStr {
    match std::str::from_utf8(b) {
        Ok(s) => s.into(),
        Err(_) => String::from_utf8_lossy(b).into_owned().into(),
    }
}

pub fn open_event(r: &OpenRecord) -> (FileActivity, FileInfo) {
    let file = FileInfo {
        path: Some(lossy_shared(&r.path)),
        path_truncated: r.file.flags & mdatp_file_flags::MDATP_FILE_PATH_TRUNCATED != 0,
        // The kernel's own walk of the opened file.
        path_inferred: false,
        inode: Some(r.file.ino),
        device: Some(Device::from_kernel(r.file.dev)),
        mount_id: Some(r.file.mnt_id),
        mode: Some(r.file.mode),
        parent_inode: None,
        identity_from: IdentitySource::Kernel,
    };
    let activity = FileActivity::Open {
        access: r.access,
        flags: r.open_flags,
        fd: r.fd,
    };
    (activity, file)
}

/// A (directory, name) pair of a path change as a FileInfo. The inode is
/// the directory's unless the name is empty (fchmod/fchown: the file).
fn named(dir_ref: &mdatp_file_ref, dir: &[u8], name: &[u8], name_flags: u32) -> FileInfo {
    let dir_missing = dir_ref.flags & mdatp_file_flags::MDATP_FILE_DIR_MISSING != 0;
    let name = lossy(name);
    let path = if dir_missing && !name.starts_with('/') {
        None
    } else {
        Some(join_lexical(&lossy(dir), &name).into())
    };
    let on_file = name.is_empty();
    let truncated = (dir_ref.flags | name_flags) & mdatp_file_flags::MDATP_FILE_PATH_TRUNCATED != 0;
    let known = !dir_missing && (on_file || !name.starts_with('/'));
    FileInfo {
        identity_from: if known {
            IdentitySource::Kernel
        } else {
            IdentitySource::Unknown
        },
        path,
        path_truncated: truncated,
        path_inferred: has_dotdot(&name),
        inode: (known && on_file).then_some(dir_ref.ino),
        device: known.then(|| Device::from_kernel(dir_ref.dev)),
        mount_id: known.then_some(dir_ref.mnt_id),
        mode: (known && on_file).then_some(dir_ref.mode),
        parent_inode: (known && !on_file).then_some(dir_ref.ino),
    }
}

pub fn file_op(r: &FileOpRecord) -> (FileActivity, FileInfo, Option<i32>) {
    let first = named(&r.dir1, &r.dir1_path, &r.name1, r.name1_flags);
    let second = || named(&r.dir2, &r.dir2_path, &r.name2, r.name2_flags);
    let error = (r.ret < 0).then_some(r.ret.saturating_neg());
    let (activity, file) = match r.hdr.type_ {
        t if t == T::MDATP_EV_FILE_DELETE as u32 => (
            FileActivity::Delete {
                directory: r.op_flags & AT_REMOVEDIR != 0,
            },
            first,
        ),
        t if t == T::MDATP_EV_FILE_RENAME as u32 => (
            FileActivity::Rename {
                to: second(),
                flags: r.op_flags,
            },
            first,
        ),
        t if t == T::MDATP_EV_FILE_MKDIR as u32 => (FileActivity::Mkdir { mode: r.mode }, first),
        t if t == T::MDATP_EV_FILE_CHMOD as u32 => (FileActivity::Chmod { mode: r.mode }, first),
        t if t == T::MDATP_EV_FILE_CHOWN as u32 => (
            FileActivity::Chown {
                uid: (r.uid != UNCHANGED_ID).then_some(r.uid),
                gid: (r.gid != UNCHANGED_ID).then_some(r.gid),
            },
            first,
        ),
        t if t == T::MDATP_EV_FILE_LINK as u32 => (
            FileActivity::Link {
                to: second(),
                flags: r.op_flags,
            },
            first,
        ),
        // Symlink: name1 is the link text, the new link is the second pair.
        _ => (
            FileActivity::Symlink {
                target: lossy(&r.name1),
            },
            second(),
        ),
    };
    (activity, file, error)
}

fn addr(family: u16, bytes: &[u8; 16], port: u16) -> SocketAddr {
    let ip = if family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    };
    SocketAddr::new(ip, port)
}

pub struct NetParts {
    pub activity: NetActivity,
    pub protocol: u16,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    pub error: Option<i32>,
}

pub fn net(r: &mdatp_net_event) -> NetParts {
    let t = r.hdr.type_;
    let activity = if t == T::MDATP_EV_NET_CONNECT as u32 {
        NetActivity::Connect
    } else if t == T::MDATP_EV_NET_ACCEPT as u32 {
        NetActivity::Accept
    } else if t == T::MDATP_EV_NET_UDP_SEND as u32 {
        NetActivity::UdpFirst { inbound: false }
    } else if t == T::MDATP_EV_NET_UDP_RECV as u32 {
        NetActivity::UdpFirst { inbound: true }
    } else if t == T::MDATP_EV_NET_LISTEN as u32 {
        NetActivity::Listen { backlog: r.backlog }
    } else {
        NetActivity::Bind
    };
    let has_remote = matches!(
        activity,
        NetActivity::Connect | NetActivity::Accept | NetActivity::UdpFirst { .. }
    );
    NetParts {
        activity,
        protocol: r.protocol,
        local: Some(addr(r.family, &r.local_addr, r.local_port)),
        remote: has_remote.then(|| addr(r.family, &r.remote_addr, r.remote_port)),
        error: (r.ret < 0).then_some(r.ret.saturating_neg()),
    }
}

/// (inode, "major:minor", mount id, mode) of a path, not following a
/// final symlink.
pub fn stat_identity(path: &str) -> Option<(u64, Device, u32, u32)> {
    use rustix::fs::{AtFlags, CWD, StatxFlags};
    // rustix makes the system call itself: glibc's statx wrapper is 2.28+
    // and the packages must run on 2.17 (a kernel without statx: None).
    let stx = rustix::fs::statx(
        CWD,
        path,
        // Never trigger an automount, and take a network filesystem's
        // cached attributes rather than asking its server.
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT | AtFlags::STATX_DONT_SYNC,
        StatxFlags::INO | StatxFlags::MODE | StatxFlags::MNT_ID,
    )
    .ok()?;
    Some((
        stx.stx_ino,
        Device {
            major: stx.stx_dev_major,
            minor: stx.stx_dev_minor,
        },
        stx.stx_mnt_id as u32,
        u32::from(stx.stx_mode),
    ))
}

/// Completes a path change's identity the kernel side could not give (an
/// absolute name): the file itself when it exists after the change, else
/// (deleted, or a failed change) its directory's device and mount. Not
/// on a filesystem where the lookup could hang the loop (`mounts`).
pub fn complete_identity(f: &mut FileInfo, mounts: &mut crate::mounts::MountTable) {
    if f.identity_from != IdentitySource::Unknown {
        return;
    }
    let Some(path) = f.path.clone() else { return };
    if mounts.may_hang(&path) {
        return;
    }
    if let Some((ino, dev, mnt, mode)) = stat_identity(&path) {
        f.inode = Some(ino);
        f.device = Some(dev);
        f.mount_id = Some(mnt);
        f.mode = Some(mode);
        f.identity_from = IdentitySource::Lookup;
        return;
    }
    let parent = match path.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => path[..i].to_string(),
        None => return,
    };
    if let Some((ino, dev, mnt, _)) = stat_identity(&parent) {
        f.parent_inode = Some(ino);
        f.device = Some(dev);
        f.mount_id = Some(mnt);
        f.identity_from = IdentitySource::Lookup;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_encoding_matches_mountinfo() {
        assert_eq!(Device::from_kernel((8 << 20) | 1).to_string(), "8:1");
        assert_eq!(Device::from_kernel(0x2d).to_string(), "0:45");
    }

    #[test]
    fn ipv4_and_ipv6_addresses() {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(addr(2, &b, 80).to_string(), "127.0.0.1:80");
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(addr(10, &v6, 443).to_string(), "[::1]:443");
    }
}
