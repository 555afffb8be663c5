//! User space's side of the typed build's per-process state, a BPF task
//! storage map (`procs`, bpf/include/common.bpf.h): an entry is reached
//! with the bpf(2) map commands, keyed by a pidfd of the process.
//!
//! Hand-written on purpose: aya 0.14 loads task storage maps only as
//! "unsupported" (no type to read or write them), and the alternative,
//! libbpf-rs, brings a second BPF loader and a C build. Two commands, one
//! fixed-size attribute block.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

use aya::Pod;
use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// include/uapi/linux/bpf.h: enum bpf_cmd.
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;

/// The map-element part of `union bpf_attr` (its layout is ABI).
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// A task storage map whose values are `V`.
pub struct TaskStorage<'a, V: Pod> {
    fd: BorrowedFd<'a>,
    _value: std::marker::PhantomData<V>,
}

impl<'a, V: Pod + Default> TaskStorage<'a, V> {
    pub fn new(fd: BorrowedFd<'a>) -> Self {
        Self {
            fd,
            _value: std::marker::PhantomData,
        }
    }

    /// The value of process `pid`: None when it has none, or is gone.
    pub fn get(&self, pid: u32) -> io::Result<Option<V>> {
        let Some(pidfd) = open_process(pid)? else {
            return Ok(None);
        };
        let mut value = V::default();
        match self.command(
            BPF_MAP_LOOKUP_ELEM,
            pidfd.as_raw_fd(),
            (&raw mut value).cast(),
        ) {
            Ok(()) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets the value of process `pid`; false when it is gone.
    pub fn set(&self, pid: u32, value: &V) -> io::Result<bool> {
        let Some(pidfd) = open_process(pid)? else {
            return Ok(false);
        };
        let mut value = *value;
        match self.command(
            BPF_MAP_UPDATE_ELEM,
            pidfd.as_raw_fd(),
            (&raw mut value).cast(),
        ) {
            Ok(()) => Ok(true),
            // The task exited between the open and the update.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn command(&self, cmd: libc::c_long, key: i32, value: *mut u8) -> io::Result<()> {
        let attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            _pad: 0,
            key: (&raw const key) as u64,
            value: value as u64,
            flags: 0,
        };
        // SAFETY: attr points at a live, fully initialized block of the
        // size passed; key and value point at live locals of the sizes
        // the map was created with (checked by the ABI test for V).
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &raw const attr,
                size_of::<MapElemAttr>(),
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// A pidfd of process `pid`, or None when it is gone.
fn open_process(pid: u32) -> io::Result<Option<std::os::fd::OwnedFd>> {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Ok(None);
    };
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e == rustix::io::Errno::SRCH => Ok(None),
        Err(e) => Err(e.into()),
    }
}
