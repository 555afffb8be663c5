//! io_uring records (`bpf/io_uring.bpf.c`): decoded, then made into
//! events. Names come as the caller passed them: a name relative to the
//! cwd is joined with the submitter's cwd (which the kernel side walks),
//! one relative to another directory fd is kept as given and marked
//! inferred, as is any name through `..`.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mdatp_bpf::abi::{
    mdatp_event_header, mdatp_io_uring_event, mdatp_io_uring_flags as flag, mdatp_io_uring_ops,
    mdatp_task_info,
};

use super::decode::{DecodeError, read_pod};
use crate::event::{FileInfo, IoUringOp, IoUringOpcode};

const AT_FDCWD: i32 = -100;

#[derive(Debug, Clone)]
pub struct IoUringRecord {
    pub hdr: mdatp_event_header,
    pub task: mdatp_task_info,
    pub op: u32,
    pub fd: i32,
    pub fd2: i32,
    pub flags: u32,
    pub sq_entries: u32,
    pub setup_flags: u32,
    pub family: u16,
    pub port: u16,
    pub addr: [u8; 16],
    pub name: Vec<u8>,
    pub name2: Vec<u8>,
    /// The submitter's cwd, when a name is relative to it.
    pub cwd: Option<Vec<u8>>,
}

pub fn decode(bytes: &[u8]) -> Result<IoUringRecord, DecodeError> {
    #[derive(Clone, Copy)]
    #[repr(C)]
    struct Fixed {
        hdr: mdatp_event_header,
        task: mdatp_task_info,
        op: u32,
        fd: i32,
        fd2: i32,
        flags: u32,
        sq_entries: u32,
        setup_flags: u32,
        name_len: u32,
        name2_len: u32,
        family: u16,
        port: u16,
        cwd_len: u32,
        addr: [u8; 16],
    }
    const _: () = assert!(size_of::<Fixed>() == offset_of!(mdatp_io_uring_event, data));
    let f: Fixed = read_pod(bytes, "io_uring event")?;
    let data = &bytes[size_of::<Fixed>()..];
    let (n1, n2, n3) = (
        f.name_len as usize,
        f.name2_len as usize,
        f.cwd_len as usize,
    );
    let lengths = DecodeError::Lengths {
        declared: n1 + n2 + n3,
        present: data.len(),
    };
    let name = data.get(..n1).ok_or(lengths.clone())?;
    let name2 = data.get(n1..n1 + n2).ok_or(lengths.clone())?;
    let cwd = data.get(n1 + n2..n1 + n2 + n3).ok_or(lengths)?;
    let has_cwd = f.flags & flag::MDATP_IO_URING_CWD != 0
        && f.flags & flag::MDATP_IO_URING_CWD_TRUNCATED == 0;
    Ok(IoUringRecord {
        hdr: f.hdr,
        task: f.task,
        op: f.op,
        fd: f.fd,
        fd2: f.fd2,
        flags: f.flags,
        sq_entries: f.sq_entries,
        setup_flags: f.setup_flags,
        family: f.family,
        port: f.port,
        addr: f.addr,
        name: name.to_vec(),
        name2: name2.to_vec(),
        cwd: has_cwd.then(|| cwd.to_vec()),
    })
}

/// A name as the caller passed it, relative to `dirfd` (`cwd`: the
/// submitter's, for a name relative to it).
fn named(cwd: Option<&[u8]>, dirfd: i32, name: &[u8], truncated: bool) -> FileInfo {
    let name = String::from_utf8_lossy(name);
    let path = match cwd {
        Some(cwd) if dirfd == AT_FDCWD && !name.starts_with('/') => {
            let cwd = String::from_utf8_lossy(cwd);
            format!("{}/{name}", cwd.trim_end_matches('/'))
        }
        _ => name.into_owned(),
    };
    // As for the system calls' path changes: a name joined lexically
    // through ".." may be another object; one relative to a directory fd
    // is not a path at all.
    let inferred = !path.starts_with('/') || path.split('/').any(|c| c == "..");
    FileInfo {
        path_inferred: inferred,
        path: Some(path.into()),
        path_truncated: truncated,
        ..Default::default()
    }
}

/// The operation a record reports; None for an opcode this build does
/// not know (counted as undecodable by the caller).
pub fn op(r: &IoUringRecord) -> Option<IoUringOp> {
    if r.op == mdatp_io_uring_ops::MDATP_IO_URING_SETUP {
        return Some(IoUringOp::Setup {
            ring_fd: r.fd,
            sq_entries: r.sq_entries,
            flags: r.setup_flags,
        });
    }
    let opcode = IoUringOpcode::from_raw(r.op)?;
    if opcode.is_file() {
        let cwd = r.cwd.as_deref();
        let first = |dirfd| {
            named(
                cwd,
                dirfd,
                &r.name,
                r.flags & flag::MDATP_IO_URING_NAME_TRUNCATED != 0,
            )
        };
        let second = || {
            named(
                cwd,
                r.fd2,
                &r.name2,
                r.flags & flag::MDATP_IO_URING_NAME2_TRUNCATED != 0,
            )
        };
        let (dirfd, file, to) = match opcode {
            IoUringOpcode::Renameat | IoUringOpcode::Linkat => (r.fd, first(r.fd), Some(second())),
            // The new link, and its text (never resolved: "relative" to
            // no directory).
            IoUringOpcode::Symlinkat => (r.fd2, second(), Some(first(i32::MIN))),
            _ => (r.fd, first(r.fd), None),
        };
        return Some(IoUringOp::File {
            opcode,
            dirfd,
            file,
            to,
        });
    }
    let remote = (r.flags & flag::MDATP_IO_URING_ADDR != 0).then(|| {
        let ip = if r.family == 2 {
            IpAddr::V4(Ipv4Addr::new(r.addr[0], r.addr[1], r.addr[2], r.addr[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(r.addr))
        };
        SocketAddr::new(ip, r.port)
    });
    Some(IoUringOp::Net {
        opcode,
        fd: r.fd,
        fixed_file: r.flags & flag::MDATP_IO_URING_FIXED_FILE != 0,
        remote,
    })
}
