//! File System Activity (1001): the file object, and what OCSF has no
//! place for under `unmapped`.

use super::{FILE_ACTIVITY, Fragments, actor, base, ms, origin_unmapped, status};
use crate::event::{FileActivity, FileEvent, FileInfo};
use crate::json::{Obj, object_in};

fn file_type(mode: Option<u32>) -> (u64, &'static str) {
    match mode.map(|m| m & 0o170000) {
        Some(0o100000) => (1, "Regular File"),
        Some(0o040000) => (2, "Folder"),
        Some(0o020000) => (3, "Character Device"),
        Some(0o060000) => (4, "Block Device"),
        Some(0o140000) => (5, "Local Socket"),
        Some(0o010000) => (6, "Named Pipe"),
        Some(0o120000) => (7, "Symbolic Link"),
        _ => (0, "Unknown"),
    }
}

pub(super) fn file_obj(o: &mut Obj<'_>, f: &FileInfo, type_override: Option<(u64, &'static str)>) {
    if let Some(path) = &f.path {
        // The path says the folder again: left out of a compact record.
        let folder = (!o.is_compact()).then_some("parent_folder");
        o.path_parts(path, ("path", "name"), folder);
    } else {
        // OCSF requires a name; a fold record whose first open the daemon
        // no longer remembers has none (no path either: never a guess).
        o.str("name", "");
    }
    let (tid, tname) = type_override.unwrap_or_else(|| file_type(f.mode));
    // OCSF 1.5.0's file has no truncation flag: it is
    // `unmapped.file.path_truncated`.
    o.u64("type_id", tid).label("type", tname);
}

/// File details OCSF's file object lacks: `unmapped.file` and friends.
/// Unknown values are left out, as is `path_truncated` when false. A
/// compact record keeps the file's identity (inode, device), what is
/// uncertain about its path, and where the identity came from unless it
/// was the kernel.
pub(super) fn file_ext(o: &mut Obj<'_>, f: &FileInfo) {
    if let Some(i) = f.inode {
        o.u64("inode", i);
    }
    if let Some(d) = f.device {
        o.joined_u64s("device", d.major.into(), b':', d.minor.into());
    }
    if o.is_compact() {
        if f.path_inferred {
            o.bool("path_inferred", true);
        }
        if f.path_truncated {
            o.bool("path_truncated", true);
        }
        if f.identity_from != crate::event::IdentitySource::Kernel {
            o.caption("identity_from", f.identity_from.as_str());
        }
        return;
    }
    if let Some(m) = f.mount_id {
        o.u64("mount_id", m.into());
    }
    if let Some(m) = f.mode {
        o.octal("mode", (m & 0o7777).into(), false);
    }
    if let Some(i) = f.parent_inode {
        o.u64("parent_inode", i);
    }
    if f.path_inferred {
        o.bool("path_inferred", true);
    }
    if f.path_truncated {
        o.bool("path_truncated", true);
    }
    o.caption("identity_from", f.identity_from.as_str());
}

/// `access` as a JSON array, for each combination of the four bits:
/// built once from `access_names`, copied per record.
fn access_json(access: u32) -> &'static [u8] {
    static TABLE: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(|| {
        (0..16)
            .map(|bits| {
                let mut b = Vec::new();
                crate::json::array_of_strs(&mut b, access_names(bits));
                b
            })
            .collect()
    });
    // Bits beyond the four are never set by the programs (events.h);
    // masked so that a stray one can only drop a name, never index out.
    &TABLE[(access & 0xf) as usize]
}

fn access_names(access: u32) -> impl Iterator<Item = &'static str> {
    use mdatp_bpf::abi::mdatp_access as a;
    [
        (a::MDATP_ACCESS_READ, "read"),
        (a::MDATP_ACCESS_WRITE, "write"),
        (a::MDATP_ACCESS_CREATE, "create"),
        (a::MDATP_ACCESS_TRUNCATE, "truncate"),
    ]
    .into_iter()
    .filter(move |(bit, _)| access & bit != 0)
    .map(|(_, n)| n)
}

pub(super) fn file_event(e: &FileEvent, fx: &mut Fragments, compact: bool, out: &mut Vec<u8>) {
    use mdatp_bpf::abi::mdatp_access as a;
    let activity = match &e.activity {
        FileActivity::Open { access, .. } if access & a::MDATP_ACCESS_CREATE != 0 => (1, "Create"),
        FileActivity::Open { .. } | FileActivity::OpenFolded { .. } => (14, "Open"),
        FileActivity::Delete { .. } => (4, "Delete"),
        FileActivity::Rename { .. } => (5, "Rename"),
        FileActivity::Mkdir { .. } | FileActivity::Link { .. } | FileActivity::Symlink { .. } => {
            (1, "Create")
        }
        FileActivity::Chmod { .. } | FileActivity::Chown { .. } => (7, "Set Security"),
    };
    let type_override = match e.activity {
        FileActivity::Mkdir { .. } => Some((2, "Folder")),
        FileActivity::Delete { directory: true } => Some((2, "Folder")),
        FileActivity::Symlink { .. } => Some((7, "Symbolic Link")),
        _ => None,
    };
    // A hard link's subject is the new name; the existing file is its target.
    let subject = match &e.activity {
        FileActivity::Link { to, .. } => to,
        _ => &e.file,
    };
    object_in(out, compact, |o| {
        base(o, &FILE_ACTIVITY, activity, e.time_ns, &e.origin, fx);
        status(o, e.error);
        o.obj("file", |f| file_obj(f, subject, type_override));
        actor(o, fx, &e.process);
        match &e.activity {
            // OCSF's count of one event is one: a compact record says so
            // by leaving it out.
            FileActivity::Open { .. } if !compact => {
                o.u64("count", 1);
            }
            FileActivity::OpenFolded {
                count,
                first_ns,
                last_ns,
                ..
            } => {
                o.u64("count", (*count).into())
                    .u64("start_time", ms(*first_ns))
                    .u64("end_time", ms(*last_ns));
            }
            FileActivity::Rename { to, .. } => {
                o.obj("file_result", |f| file_obj(f, to, None));
            }
            _ => {}
        }
        o.obj("unmapped", |u| file_unmapped(u, e, subject));
    });
}

/// What OCSF's file object and class have no place for.
fn file_unmapped(u: &mut Obj<'_>, e: &FileEvent, subject: &FileInfo) {
    origin_unmapped(u, &e.origin);
    u.obj("file", |f| file_ext(f, subject));
    match &e.activity {
        FileActivity::Open { access, flags, .. } => {
            u.raw_bytes("access", access_json(*access));
            if !u.is_compact() {
                u.octal("open_flags", (*flags).into(), true);
            }
        }
        FileActivity::OpenFolded {
            access,
            first_ns,
            last_ns,
            ..
        } => {
            u.raw_bytes("access", access_json(*access))
                .bool("folded", true)
                .u64("start_time_ns", *first_ns)
                .u64("end_time_ns", *last_ns);
        }
        FileActivity::Delete { directory } => {
            u.bool("directory", *directory);
        }
        FileActivity::Rename { to, flags } => {
            u.obj("file_result", |f| file_ext(f, to))
                .u64("rename_flags", (*flags).into());
        }
        FileActivity::Mkdir { mode } | FileActivity::Chmod { mode } => {
            u.octal("mode", (mode & 0o7777).into(), false);
        }
        FileActivity::Chown { uid, gid } => {
            u.opt_u64("owner_uid", uid.map(u64::from))
                .opt_u64("owner_gid", gid.map(u64::from));
        }
        FileActivity::Link { flags, .. } => {
            u.opt_str("link_target", e.file.path.as_deref())
                .obj("link_target_file", |f| file_ext(f, &e.file))
                .u64("link_flags", (*flags).into());
        }
        FileActivity::Symlink { target } => {
            u.str("symlink_target", target);
        }
    }
    if !u.is_compact() {
        u.u64("time_ns", e.time_ns);
    }
}
