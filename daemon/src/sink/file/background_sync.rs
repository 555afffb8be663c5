//! The once-a-second fsync (`fsync: interval`) on a thread of its own.
//! On the event loop it held the loop for as long as the disk took to
//! write a second's worth of events: at 300,000 events/s (~290 MB/s of
//! JSON, an open storm with folding off) the ring's ~50 ms of room filled
//! and the kernel dropped events (counted) while the daemon waited on the
//! disk (docs/PERFORMANCE.md). The write(2)s are on the file's writer
//! thread (`sink/writer_thread.rs`), which this keeps from waiting on
//! the disk's writeback as well.

use std::fs::File;
use std::io;
use std::path::Path;
use std::thread::JoinHandle;

#[derive(Default)]
pub struct BackgroundSync {
    running: Option<JoinHandle<io::Result<()>>>,
}

impl BackgroundSync {
    /// Starts an fdatasync of `file` unless one still runs. Returns
    /// whether it started: if not, the caller keeps its data marked
    /// unsynced and asks again at the next tick (nothing is lost: the page
    /// cache holds it).
    pub fn start(&mut self, file: &File, path: &Path) -> bool {
        self.reap(path, false);
        if self.running.is_some() {
            return false;
        }
        let started = file.try_clone().and_then(|f| {
            std::thread::Builder::new()
                .name("fsync".into())
                .spawn(move || f.sync_data())
        });
        match started {
            Ok(h) => {
                self.running = Some(h);
                true
            }
            Err(e) => {
                log::warn!("{}: cannot start fsync: {e}", path.display());
                false
            }
        }
    }

    /// Waits for a running fsync (before a rotation's or a stop's own).
    pub fn wait(&mut self, path: &Path) {
        self.reap(path, true);
    }

    /// Collects a finished fsync (or, with `block`, waits for it) and
    /// logs its failure.
    fn reap(&mut self, path: &Path, block: bool) {
        let done = self
            .running
            .as_ref()
            .is_some_and(|h| block || h.is_finished());
        if !done {
            return;
        }
        match self.running.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => log::warn!("{}: fsync failed: {e}", path.display()),
            Some(Err(_)) => log::warn!("{}: the fsync thread panicked", path.display()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fsync_at_a_time_and_a_wait_collects_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let f = File::create(&p).unwrap();
        let mut s = BackgroundSync::default();
        assert!(s.start(&f, &p));
        s.wait(&p);
        assert!(s.running.is_none());
        assert!(s.start(&f, &p), "a finished one makes room for the next");
        s.wait(&p);
    }
}
