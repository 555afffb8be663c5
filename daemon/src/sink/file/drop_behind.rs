//! `page_cache: drop`: the event file's written pages leave the page
//! cache a window behind the writes, instead of staying until memory
//! pressure evicts them.
//!
//! Why: the sensor's output is written once and read at most once, by a
//! shipper following the file, usually within a second. Kept, an open
//! storm with folding off fills gigabytes of page cache with it, pushing
//! out what the host's own programs read, and every byte is copied into a
//! page the kernel has to find first — on a VM whose free pages the
//! hypervisor took back (virtio-balloon free-page reporting) that first
//! touch of memory was most of what the daemon spent. Freed a window
//! behind, the same few megabytes of pages are used again and again: on
//! the project's machine 2.3 GB in 64 KiB writes took 4.1–6.3 s kept and
//! 1.1 s dropped behind (docs/PERFORMANCE-PIPELINE.md, "The event file's page
//! cache").
//!
//! How: each time another `WINDOW` of bytes has been written,
//! `posix_fadvise(DONTNEED)` over the last two windows. The kernel starts
//! the newer window's writeback (its pages are still dirty, so they stay)
//! and frees the older one, written back by then (one whose writeback
//! is still running stays, as with `keep`, until memory pressure evicts
//! it). The last one or two windows stay cached for the shipper. Any kernel and file system takes
//! the call; where it does nothing (tmpfs) nothing is lost either.
//! Chosen over `RWF_DONTCACHE` (Linux 6.14+ only), which starts a small
//! writeback on every write: measured the same way it took 1.7–2.7 s.

use std::fs::File;
use std::num::NonZeroU64;

use rustix::fs::{Advice, fadvise};

/// Bytes written between two drops: 8 MiB, about 8,000 full records.
pub const WINDOW: u64 = 8 << 20;

#[derive(Debug, Default)]
pub struct DropBehind {
    /// The file's size at the last drop (or when it was opened).
    mark: u64,
    /// A failed drop was logged (it is retried at the next window).
    failure_logged: bool,
}

impl DropBehind {
    /// Starts counting at `size`, the size of a file just opened.
    pub fn opened(size: u64) -> Self {
        Self {
            mark: size,
            failure_logged: false,
        }
    }

    /// After a write that left the file `size` bytes long: drops what
    /// lies a window behind, once another window has been written.
    pub fn written(&mut self, file: &File, size: u64) {
        if size < self.mark {
            // Cut back (a failed write) or truncated under us.
            self.mark = size;
        }
        if size - self.mark < WINDOW {
            return;
        }
        let from = self.mark.saturating_sub(WINDOW);
        self.mark = size;
        if let Err(e) = fadvise(file, from, NonZeroU64::new(size - from), Advice::DontNeed)
            && !std::mem::replace(&mut self.failure_logged, true)
        {
            // Nothing is lost: the pages stay cached as with `keep`.
            log::warn!(
                "the event file's written pages cannot be dropped from the page cache ({e}); they stay cached"
            );
        }
    }
}
