//! The event file's write(2) with `RWF_DONTCACHE` (Linux 6.14+, on file
//! systems that take it: ext4, xfs, btrfs): the kernel writes the pages
//! back at once and frees them when that is done, instead of keeping
//! every written byte cached until memory pressure evicts it.
//!
//! Why: the sensor's output is written once and read at most once (by a
//! shipper following the file, usually within milliseconds, while the
//! pages are still there). Cached, an open storm with folding off fills
//! gigabytes of page cache with it, pushing out what the host's own
//! programs read, and every one of those bytes is copied into a page the
//! kernel had to find first — on a VM whose free pages the hypervisor
//! took back (virtio-balloon free-page reporting) that first touch is
//! what the daemon spent most of its time on: 2.3 GB written in 64 KiB
//! writes took 5.5–6.3 s cached and 1.6–1.9 s uncached on the project's
//! machine (docs/PERFORMANCE.md, "The event file's page cache").
//!
//! Where the kernel or the file system does not take the flag
//! (EOPNOTSUPP, checked before any byte is written) the writes are plain
//! ones from then on for this file, and the sink says so once.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

use crate::sink::PageCache;

/// Writes all of `buf` at the end of `file` (opened `O_APPEND`). With
/// `PageCache::Drop` a refusal of the flag turns `mode` to `Keep` (for
/// this file) and the write goes on plain; `refused` is then the kernel's
/// error, for the caller to report.
pub fn write_all(
    file: &mut File,
    mut buf: &[u8],
    mode: &mut PageCache,
    refused: &mut Option<io::Error>,
) -> io::Result<()> {
    while !buf.is_empty() && *mode == PageCache::Drop {
        match write_dontcache(file, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                *mode = PageCache::Keep;
                *refused = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    file.write_all(buf)
}

/// One pwritev2(2) at the file's offset (-1: the current one, which
/// `O_APPEND` puts at the end) with `RWF_DONTCACHE`.
fn write_dontcache(file: &File, buf: &[u8]) -> io::Result<usize> {
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over `buf`, which outlives the call; the kernel
    // only reads from it. The descriptor is `file`'s, open for writing.
    let n = unsafe { libc::pwritev2(file.as_raw_fd(), &iov, 1, -1, libc::RWF_DONTCACHE) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn appends_every_byte_in_either_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut refused = None;
        for mut mode in [PageCache::Drop, PageCache::Keep, PageCache::Drop] {
            write_all(&mut f, b"one line\n", &mut mode, &mut refused).unwrap();
        }
        let mut s = String::new();
        File::open(&path).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "one line\n".repeat(3));
    }

    #[test]
    fn a_file_system_without_the_flag_falls_back_to_plain_writes() {
        // /dev/shm is tmpfs, which does not take RWF_DONTCACHE.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let path = dir.path().join("f");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let (mut mode, mut refused) = (PageCache::Drop, None);
        write_all(&mut f, b"x\n", &mut mode, &mut refused).unwrap();
        assert_eq!(mode, PageCache::Keep);
        assert_eq!(
            refused.map(|e| e.raw_os_error()),
            Some(Some(libc::EOPNOTSUPP))
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"x\n");
    }
}
