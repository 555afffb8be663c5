//! The event file: JSON Lines that shippers tail (Vector, Fluent Bit,
//! Filebeat, the Splunk forwarder follow a renamed file by inode and pick
//! up the new one by name).
//!
//! - One write(2) of whole lines per batch; a write that fails part way
//!   (a full disk) is cut back to where the batch began, so no line is
//!   ever split, and every event of the batch counts as lost.
//! - Rotation by size: events.jsonl → events.jsonl.1 → … .<keep>.
//! - Renamed or removed under the sensor (logrotate, an admin): noticed
//!   before the next write and once a second, and a new file is created.
//! - A torn last line (power loss during a write) is cut at start.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::PageCache;
use super::loss_note::LossNote;
use super::{
    BatchWriter, Compression, FileOutput, Flushed, FsyncPolicy, OutputConfig, Pending, Sink,
    SinkStatus,
};
use background_sync::BackgroundSync;
use compress::{Compressor, zst_path};
use drop_behind::DropBehind;

mod background_sync;
mod compress;
mod drop_behind;
use crate::kind::EventKind;

pub struct FileSink {
    path: PathBuf,
    config: FileOutput,
    /// None after an open failed (retried at the next write).
    file: Option<File>,
    /// (device, inode) of the file open now: another one at the path
    /// means it was renamed or removed under us.
    identity: (u64, u64),
    pending: Pending,
    /// Events lost here, reported by a record ahead of the next write.
    note: LossNote,
    /// Written since the last fsync.
    dirty: bool,
    error: Option<String>,
    bytes: u64,
    rotations: u64,
    reopened: u64,
    torn_repaired: u64,
    /// Compresses rotated files when `compress` says so.
    compressor: Compressor,
    /// `fsync: interval`'s fsync, off the event loop.
    background_sync: BackgroundSync,
    /// `page_cache: drop`'s place in the file open now.
    drop_behind: DropBehind,
}

impl FileSink {
    /// Opens (creating it, mode 0640, and its directory) `path` for
    /// appending; a torn last line left by a crash is cut first.
    pub fn open(path: &Path, config: &FileOutput, hostname: &str) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let torn = repair_torn_tail(path)?;
        if torn > 0 {
            log::warn!(
                "{}: cut a torn last record of {torn} bytes (a write interrupted by a crash or power loss; counted as lost)",
                path.display()
            );
        }
        let mut pending = Pending::default();
        let mut note = LossNote::new("file", hostname);
        if torn > 0 {
            // Reported with the first flush, like any loss at the sink.
            pending.early.lost.insert(None, 1);
            note.add(&pending.early.lost, "a torn last record cut at start");
        }
        let mut sink = Self {
            path: path.to_path_buf(),
            config: config.clone(),
            file: None,
            identity: (0, 0),
            pending,
            note,
            dirty: false,
            error: None,
            bytes: 0,
            rotations: 0,
            reopened: 0,
            torn_repaired: u64::from(torn > 0),
            compressor: Compressor::default(),
            background_sync: BackgroundSync::default(),
            drop_behind: DropBehind::default(),
        };
        compress::remove_leftovers((1..=config.keep).map(|n| sink.numbered(n)));
        sink.open_file()?;
        Ok(sink)
    }

    fn open_file(&mut self) -> io::Result<()> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        let m = f.metadata()?;
        self.identity = (m.dev(), m.ino());
        self.drop_behind = DropBehind::opened(m.len());
        self.file = Some(f);
        Ok(())
    }

    /// The path now names another file, or none.
    fn moved_away(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.identity,
            Err(_) => true,
        }
    }

    /// Syncs and closes the file open now, and opens the path again.
    fn reopen(&mut self) -> io::Result<()> {
        self.sync();
        self.file = None;
        self.reopened += 1;
        self.open_file()
    }

    /// `fsync: interval`'s tick: the fsync starts on a thread of its own
    /// (the data stays marked unsynced while one still runs).
    fn sync_in_background(&mut self) {
        if let (Some(f), true) = (&self.file, self.dirty)
            && self.background_sync.start(f, &self.path)
        {
            self.dirty = false;
        }
    }

    /// Syncs now (rotation, reopen, stop, `fsync: batch`), after any
    /// fsync still running on its thread.
    fn sync(&mut self) {
        self.background_sync.wait(&self.path);
        if let (Some(f), true) = (&self.file, self.dirty)
            && self.config.fsync != FsyncPolicy::Never
            && let Err(e) = f.sync_data()
        {
            log::warn!("{}: fsync failed: {e}", self.path.display());
        }
        self.dirty = false;
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// events.jsonl → .1, .1 → .2, …; the oldest beyond `keep` goes.
    /// Compressed files (`.N.zst`) move the same way; the new `.1` is
    /// compressed in the background when `compress` is zstd.
    fn rotate(&mut self) -> io::Result<()> {
        self.sync();
        self.file = None;
        if self.config.keep == 0 {
            remove_if_present(&self.path)?;
        } else {
            // No file may be renamed under a running compression.
            self.compressor.wait();
            let keep = self.config.keep;
            remove_if_present(&self.numbered(keep))?;
            remove_if_present(&zst_path(&self.numbered(keep)))?;
            for n in (1..keep).rev() {
                rename_if_present(&self.numbered(n), &self.numbered(n + 1))?;
                rename_if_present(
                    &zst_path(&self.numbered(n)),
                    &zst_path(&self.numbered(n + 1)),
                )?;
            }
            // Renamed away by someone else meanwhile: nothing to move.
            rename_if_present(&self.path, &self.numbered(1))?;
            if self.config.compress == Compression::Zstd && self.numbered(1).exists() {
                self.compressor.start(self.numbered(1));
            }
        }
        self.rotations += 1;
        self.open_file()
    }

    /// Where the batch goes: the file at the path now, rotated when the
    /// batch would take it past `max_size`.
    fn prepare(&mut self) -> io::Result<u64> {
        if self.file.is_none() || self.moved_away() {
            self.reopen()?;
        }
        let size = self.current()?.metadata()?.len();
        let max = self.config.max_size.as_u64();
        if max > 0 && size > 0 && size + self.pending.batch.bytes.len() as u64 > max {
            self.rotate()?;
            // Whatever is at the path now (another writer may have
            // created it): the cut-back offset must be its real size.
            return Ok(self.current()?.metadata()?.len());
        }
        Ok(size)
    }

    fn current(&self) -> io::Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("the event file is not open"))
    }
}

impl BatchWriter for FileSink {
    fn pending(&mut self) -> &mut Pending {
        &mut self.pending
    }

    fn write_batch(&mut self) -> Flushed {
        // What an earlier failed write lost goes first, in the same write.
        let note = self.note.record().map(|mut r| {
            r.push(b'\n');
            r.extend_from_slice(&self.pending.batch.bytes);
            r
        });
        let result = self.prepare().and_then(|size_before| {
            let mut f = self
                .file
                .as_ref()
                .ok_or_else(|| io::Error::other("the event file is not open"))?;
            let bytes = note.as_deref().unwrap_or(&self.pending.batch.bytes);
            let written = f.write_all(bytes);
            if written.is_ok() && self.config.page_cache == PageCache::Drop {
                self.drop_behind
                    .written(f, size_before + bytes.len() as u64);
            }
            if written.is_err() {
                // Part of the batch may be in the file: cut it back so
                // that no line is split (the whole batch counts as lost).
                let _ = f.set_len(size_before);
            }
            written
        });
        match &result {
            Ok(()) => {
                self.note.delivered();
                self.bytes += note
                    .as_ref()
                    .map_or(self.pending.batch.bytes.len(), Vec::len)
                    as u64;
                self.dirty = true;
                if self.error.take().is_some() {
                    log::info!("{}: events are written again", self.path.display());
                }
                if self.config.fsync == FsyncPolicy::Batch {
                    self.sync();
                }
            }
            Err(e) => {
                if self.error.is_none() {
                    log::error!(
                        "{}: cannot write events ({e}); each event until writes succeed again is counted as lost",
                        self.path.display()
                    );
                }
                self.error = Some(e.to_string());
                self.note.add(&self.pending.batch.kinds, &e.to_string());
            }
        }
        self.pending.batch.settle(result)
    }
}

impl Sink for FileSink {
    fn push(&mut self, record: &[u8], kind: Option<EventKind>) {
        self.push_record(record, kind);
    }

    fn flush(&mut self) -> Flushed {
        self.flush_pending()
    }

    fn tick(&mut self) {
        if self.config.fsync == FsyncPolicy::Interval {
            self.sync_in_background();
        }
        // A rename by logrotate (`create`) or a removal: the next events
        // go to a file at the path, not into the renamed or unlinked one.
        if self.file.is_some() && self.moved_away() {
            log::info!(
                "{}: renamed or removed under the sensor; writing a new file",
                self.path.display()
            );
            if let Err(e) = self.reopen() {
                log::warn!("{}: cannot reopen: {e}", self.path.display());
                self.file = None;
            }
        }
    }

    fn reconfigure(&mut self, config: &OutputConfig) {
        self.config = config.file.clone();
        if let Err(e) = self.reopen() {
            log::warn!("{}: cannot reopen: {e}", self.path.display());
            self.file = None;
        }
    }

    fn status(&self) -> SinkStatus {
        let z = self.compressor.totals();
        // The compression counters only where compression is or was on.
        let compressed = (self.config.compress == Compression::Zstd || z.files + z.failures > 0)
            .then_some([
                ("compressed_files", z.files),
                ("compression_failures", z.failures),
                ("compressed_bytes_in", z.bytes_in),
                ("compressed_bytes_out", z.bytes_out),
                ("compressed_bytes_per_event", z.bytes_per_event()),
            ]);
        SinkStatus {
            counters: [
                ("bytes_written", self.bytes),
                ("rotations", self.rotations),
                ("reopened", self.reopened),
                ("torn_records_cut", self.torn_repaired),
            ]
            .into_iter()
            .chain(compressed.into_iter().flatten())
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            error: self.error.clone(),
        }
    }

    fn close(&mut self) -> Flushed {
        let out = self.flush_pending();
        self.dirty = true;
        self.sync();
        // A stop does not leave a half-written .zst behind.
        self.compressor.wait();
        out
    }
}

fn remove_if_present(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Cuts a last line without its newline (bytes removed; 0 when whole).
pub(super) fn repair_torn_tail(path: &Path) -> io::Result<u64> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Backwards in chunks to the last newline.
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    loop {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep < len {
                f.set_len(keep)?;
            }
            return Ok(len - keep);
        }
        if start == 0 {
            f.set_len(0)?;
            return Ok(len);
        }
        end = start;
    }
}

#[cfg(test)]
mod tests;
