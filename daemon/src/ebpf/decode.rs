//! Ring-buffer records → typed kernel records. Every length is checked
//! against the record; a malformed record is an error, never a guess.

use mdatp_bpf::abi::{
    mdatp_event_header, mdatp_event_type, mdatp_exec_event, mdatp_exec_flags, mdatp_exit_event,
    mdatp_file_fold_event, mdatp_file_op_event, mdatp_file_open_event, mdatp_file_ref,
    mdatp_fork_event, mdatp_net_event, mdatp_task_flags, mdatp_task_info,
};

use super::io_uring::IoUringRecord;
use crate::event::CallPath;
use std::mem::{offset_of, size_of};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need} bytes of a {what}")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("unknown event type id {0}")]
    UnknownType(u32),
    #[error("record declares {declared} data bytes but carries {present}")]
    Lengths { declared: usize, present: usize },
}

/// An exec record with its variable-length parts split out.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub hdr: mdatp_event_header,
    pub task: mdatp_task_info,
    pub argc: u32,
    pub flags: u16,
    pub exe: Vec<u8>,
    pub cwd: Vec<u8>,
    pub argv: Vec<u8>,
}

impl ExecRecord {
    pub fn has(&self, flag: mdatp_exec_flags::Type) -> bool {
        u32::from(self.flags) & flag != 0
    }
}

/// A successful open with its path.
#[derive(Debug, Clone)]
pub struct OpenRecord {
    pub hdr: mdatp_event_header,
    pub task: mdatp_task_info,
    pub file: mdatp_file_ref,
    pub open_flags: u32,
    pub access: u32,
    pub fd: i32,
    pub path: Vec<u8>,
}

/// A path change: up to two (directory, name) pairs.
#[derive(Debug, Clone)]
pub struct FileOpRecord {
    pub hdr: mdatp_event_header,
    pub task: mdatp_task_info,
    pub dir1: mdatp_file_ref,
    pub dir2: mdatp_file_ref,
    pub ret: i32,
    pub op_flags: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub name1_flags: u32,
    pub name2_flags: u32,
    pub dir1_path: Vec<u8>,
    pub name1: Vec<u8>,
    pub dir2_path: Vec<u8>,
    pub name2: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum KernelRecord {
    Exec(ExecRecord),
    Fork(mdatp_fork_event),
    Exit(mdatp_exit_event),
    Open(OpenRecord),
    Fold(mdatp_file_fold_event),
    FileOp(FileOpRecord),
    Net(mdatp_net_event),
    IoUring(IoUringRecord),
}

impl KernelRecord {
    pub fn header(&self) -> &mdatp_event_header {
        match self {
            KernelRecord::Exec(e) => &e.hdr,
            KernelRecord::Fork(f) => &f.hdr,
            KernelRecord::Exit(e) => &e.hdr,
            KernelRecord::Open(o) => &o.hdr,
            KernelRecord::Fold(f) => &f.hdr,
            KernelRecord::FileOp(o) => &o.hdr,
            KernelRecord::Net(n) => &n.hdr,
            KernelRecord::IoUring(u) => &u.hdr,
        }
    }

    /// How the operation the record reports reached the kernel.
    pub fn call_path(&self) -> CallPath {
        let task = match self {
            KernelRecord::Open(o) => &o.task,
            KernelRecord::FileOp(o) => &o.task,
            KernelRecord::Net(n) => &n.task,
            KernelRecord::IoUring(_) => return CallPath::IoUring,
            _ => return CallPath::Native,
        };
        if task.flags & mdatp_task_flags::MDATP_TASK_IA32 != 0 {
            CallPath::Ia32
        } else {
            CallPath::Native
        }
    }
}

/// Reads a plain-old-data ABI struct from the front of `bytes`.
pub(super) fn read_pod<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            what,
            len: bytes.len(),
            need: size_of::<T>(),
        });
    }
    // SAFETY: the length is checked above; T is one of the bindgen ABI
    // structs, made only of integers and byte arrays, for which every bit
    // pattern is valid; read_unaligned has no alignment requirement.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn decode(bytes: &[u8]) -> Result<KernelRecord, DecodeError> {
    let hdr: mdatp_event_header = read_pod(bytes, "header")?;
    match hdr.type_ {
        t if t == mdatp_event_type::MDATP_EV_EXEC as u32 => {
            decode_exec(bytes).map(KernelRecord::Exec)
        }
        t if t == mdatp_event_type::MDATP_EV_FORK as u32 => {
            read_pod(bytes, "fork event").map(KernelRecord::Fork)
        }
        t if t == mdatp_event_type::MDATP_EV_EXIT as u32 => {
            read_pod(bytes, "exit event").map(KernelRecord::Exit)
        }
        t if t == mdatp_event_type::MDATP_EV_FILE_OPEN as u32 => {
            decode_open(bytes).map(KernelRecord::Open)
        }
        t if t == mdatp_event_type::MDATP_EV_FILE_FOLD as u32 => {
            read_pod(bytes, "fold event").map(KernelRecord::Fold)
        }
        t if (mdatp_event_type::MDATP_EV_FILE_DELETE as u32
            ..=mdatp_event_type::MDATP_EV_FILE_SYMLINK as u32)
            .contains(&t) =>
        {
            decode_file_op(bytes).map(KernelRecord::FileOp)
        }
        t if (mdatp_event_type::MDATP_EV_NET_CONNECT as u32
            ..=mdatp_event_type::MDATP_EV_NET_UDP_RECV as u32)
            .contains(&t) =>
        {
            read_pod(bytes, "network event").map(KernelRecord::Net)
        }
        t if t == mdatp_event_type::MDATP_EV_IO_URING as u32 => {
            super::io_uring::decode(bytes).map(KernelRecord::IoUring)
        }
        other => Err(DecodeError::UnknownType(other)),
    }
}

fn decode_open(bytes: &[u8]) -> Result<OpenRecord, DecodeError> {
    #[derive(Clone, Copy)]
    #[repr(C)]
    struct Fixed {
        hdr: mdatp_event_header,
        task: mdatp_task_info,
        file: mdatp_file_ref,
        open_flags: u32,
        access: u32,
        fd: i32,
        path_len: u16,
        pad: u16,
    }
    const _: () = assert!(size_of::<Fixed>() == offset_of!(mdatp_file_open_event, path));
    let f: Fixed = read_pod(bytes, "open event")?;
    let data = &bytes[size_of::<Fixed>()..];
    let n = usize::from(f.path_len);
    let path = data.get(..n).ok_or(DecodeError::Lengths {
        declared: n,
        present: data.len(),
    })?;
    Ok(OpenRecord {
        hdr: f.hdr,
        task: f.task,
        file: f.file,
        open_flags: f.open_flags,
        access: f.access,
        fd: f.fd,
        path: path.to_vec(),
    })
}

fn decode_file_op(bytes: &[u8]) -> Result<FileOpRecord, DecodeError> {
    #[derive(Clone, Copy)]
    #[repr(C)]
    struct Fixed {
        hdr: mdatp_event_header,
        task: mdatp_task_info,
        dir1: mdatp_file_ref,
        dir2: mdatp_file_ref,
        ret: i32,
        op_flags: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        lens: [u16; 4],
        name1_flags: u32,
        name2_flags: u32,
        pad: u32,
    }
    const _: () = assert!(size_of::<Fixed>() == offset_of!(mdatp_file_op_event, data));
    let f: Fixed = read_pod(bytes, "file change event")?;
    let data = &bytes[size_of::<Fixed>()..];
    let mut parts = Vec::with_capacity(4);
    let mut at = 0usize;
    for len in f.lens {
        let len = usize::from(len);
        let part = data.get(at..at + len).ok_or(DecodeError::Lengths {
            declared: at + len,
            present: data.len(),
        })?;
        parts.push(part.to_vec());
        at += len;
    }
    let mut it = parts.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(FileOpRecord {
        hdr: f.hdr,
        task: f.task,
        dir1: f.dir1,
        dir2: f.dir2,
        ret: f.ret,
        op_flags: f.op_flags,
        mode: f.mode,
        uid: f.uid,
        gid: f.gid,
        name1_flags: f.name1_flags,
        name2_flags: f.name2_flags,
        dir1_path: next(),
        name1: next(),
        dir2_path: next(),
        name2: next(),
    })
}

fn decode_exec(bytes: &[u8]) -> Result<ExecRecord, DecodeError> {
    #[derive(Clone, Copy)]
    #[repr(C)]
    struct Fixed {
        hdr: mdatp_event_header,
        task: mdatp_task_info,
        exe_len: u16,
        cwd_len: u16,
        argv_len: u16,
        flags: u16,
        argc: u32,
        pad: u32,
    }
    const _: () = assert!(size_of::<Fixed>() == offset_of!(mdatp_exec_event, data));
    let f: Fixed = read_pod(bytes, "exec event")?;
    let data = &bytes[size_of::<Fixed>()..];
    let (e, c, a) = (
        usize::from(f.exe_len),
        usize::from(f.cwd_len),
        usize::from(f.argv_len),
    );
    if e + c + a > data.len() {
        return Err(DecodeError::Lengths {
            declared: e + c + a,
            present: data.len(),
        });
    }
    Ok(ExecRecord {
        hdr: f.hdr,
        task: f.task,
        argc: f.argc,
        flags: f.flags,
        exe: data[..e].to_vec(),
        cwd: data[e..e + c].to_vec(),
        argv: data[e + c..e + c + a].to_vec(),
    })
}

/// A NUL-padded kernel comm as a string.
/// Whether the kernel's comm (NUL-padded) reads as `name`.
pub fn comm_matches(comm: &[std::os::raw::c_char], name: &str) -> bool {
    let n = name.as_bytes();
    n.len() <= comm.len()
        && n.iter().zip(comm).all(|(a, b)| *a == *b as u8)
        && comm.get(n.len()).is_none_or(|c| *c == 0)
}

pub fn comm_str(comm: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = comm
        .iter()
        .map(|c| *c as u8)
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_matches_only_the_whole_name() {
        let comm: Vec<std::os::raw::c_char> = b"bash\0\0\0\0\0\0\0\0\0\0\0\0"
            .iter()
            .map(|b| *b as std::os::raw::c_char)
            .collect();
        assert!(comm_matches(&comm, "bash"));
        assert!(!comm_matches(&comm, "bas"));
        assert!(!comm_matches(&comm, "bash2"));
        assert!(!comm_matches(&comm, ""));
        let full: Vec<std::os::raw::c_char> = b"0123456789abcdef"
            .iter()
            .map(|b| *b as std::os::raw::c_char)
            .collect();
        assert!(comm_matches(&full, "0123456789abcdef"));
        assert_eq!(comm_str(&comm), "bash");
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(decode(&[0u8; 8]), Err(DecodeError::Short { .. })));
        let mut hdr = [0u8; 32];
        hdr[0] = 99;
        assert_eq!(decode(&hdr).err(), Some(DecodeError::UnknownType(99)));
    }

    #[test]
    fn exec_lengths_beyond_the_record_are_rejected() {
        let mut rec = vec![0u8; offset_of!(mdatp_exec_event, data) + 4];
        rec[0] = mdatp_event_type::MDATP_EV_EXEC as u8;
        let exe_len_at = offset_of!(mdatp_exec_event, exe_len);
        rec[exe_len_at] = 10;
        assert!(matches!(decode(&rec), Err(DecodeError::Lengths { .. })));
    }
}
