//! Compression of a rotated event file (`output.file.compress: zstd`) on
//! its own thread: `events.jsonl.1` becomes `events.jsonl.1.zst` while the
//! sensor goes on writing the new file. The uncompressed file is removed
//! only after the compressed one is complete and synced under its final
//! name, so a crash or a failure leaves one whole copy, never none.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// zstd's default level: about 10× on JSON Lines at ~100 MB/s of one core
/// (docs/OUTPUTS.md has the measured numbers).
const LEVEL: i32 = 3;

/// What the compressed files hold, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compressed {
    pub files: u64,
    pub failures: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Lines (events) in the compressed files.
    pub events: u64,
}

impl Compressed {
    fn add(&mut self, other: &Compressed) {
        self.files += other.files;
        self.failures += other.failures;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.events += other.events;
    }

    /// Compressed bytes per event (0 before the first file).
    pub fn bytes_per_event(&self) -> u64 {
        self.bytes_out.checked_div(self.events).unwrap_or(0)
    }
}

/// The compressed name of a rotated file.
pub fn zst_path(p: &Path) -> PathBuf {
    let mut s = p.to_path_buf().into_os_string();
    s.push(".zst");
    PathBuf::from(s)
}

fn tmp_path(p: &Path) -> PathBuf {
    let mut s = zst_path(p).into_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// At most one compression runs; the next rotation waits for it first
/// (rotations are a file's size apart, a compression takes a second or
/// so), so that no file is renamed under a running job.
#[derive(Default)]
pub struct Compressor {
    job: Option<JoinHandle<()>>,
    /// Totals of the finished compressions, added to by the job itself.
    done: Arc<Mutex<Compressed>>,
}

impl Compressor {
    /// Compresses `path` (a rotated file) in the background.
    pub fn start(&mut self, path: PathBuf) {
        self.wait();
        let done = Arc::clone(&self.done);
        let spawned = std::thread::Builder::new()
            .name("mdatp-compress".into())
            .spawn(move || {
                let result = compress(&path).unwrap_or_else(|e| {
                    log::warn!(
                        "{}: not compressed ({e}); kept uncompressed",
                        path.display()
                    );
                    let _ = std::fs::remove_file(tmp_path(&path));
                    Compressed {
                        failures: 1,
                        ..Compressed::default()
                    }
                });
                lock(&done).add(&result);
            });
        match spawned {
            Ok(job) => self.job = Some(job),
            Err(e) => {
                log::warn!(
                    "cannot start the compression thread ({e}); the rotated file is kept uncompressed"
                );
                lock(&self.done).failures += 1;
            }
        }
    }

    /// Waits for the running compression, if any.
    pub fn wait(&mut self) {
        if let Some(job) = self.job.take()
            && job.join().is_err()
        {
            lock(&self.done).failures += 1;
        }
    }

    /// Totals of the finished compressions (a running one not included).
    pub fn totals(&self) -> Compressed {
        *lock(&self.done)
    }
}

/// The totals stay readable even if a job panicked while holding them.
fn lock(m: &Mutex<Compressed>) -> std::sync::MutexGuard<'_, Compressed> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts the newlines of what passes through.
struct CountingReader<R> {
    inner: R,
    bytes: u64,
    lines: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(n)
    }
}

fn compress(path: &Path) -> io::Result<Compressed> {
    let tmp = tmp_path(path);
    let mut reader = CountingReader {
        inner: BufReader::new(File::open(path)?),
        bytes: 0,
        lines: 0,
    };
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    let mut encoder = zstd::stream::Encoder::new(out, LEVEL)?;
    io::copy(&mut reader, &mut encoder)?;
    let mut out = encoder.finish()?;
    out.flush()?;
    out.sync_all()?;
    let bytes_out = out.metadata()?.len();
    std::fs::rename(&tmp, zst_path(path))?;
    std::fs::remove_file(path)?;
    Ok(Compressed {
        files: 1,
        failures: 0,
        bytes_in: reader.bytes,
        bytes_out,
        events: reader.lines,
    })
}

/// Removes what a compression cut short by a crash left (`*.zst.tmp`);
/// the uncompressed file it was made from is still there.
pub fn remove_leftovers(rotated: impl IntoIterator<Item = PathBuf>) {
    for p in rotated {
        let _ = std::fs::remove_file(tmp_path(&p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_file_becomes_a_zst_that_decompresses_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl.1");
        let text: String = (0..5000)
            .map(|i| format!("{{\"class_uid\":1001,\"n\":{i}}}\n"))
            .collect();
        std::fs::write(&p, &text).unwrap();
        let mut c = Compressor::default();
        c.start(p.clone());
        c.wait();
        let t = c.totals();
        assert_eq!((t.files, t.failures, t.events), (1, 0, 5000));
        assert_eq!(t.bytes_in, text.len() as u64);
        assert!(t.bytes_out * 5 < t.bytes_in, "{t:?}");
        assert!(!p.exists(), "the uncompressed file is removed");
        let z = std::fs::read(zst_path(&p)).unwrap();
        assert_eq!(z.len() as u64, t.bytes_out);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), text.as_bytes());
        assert_eq!(t.bytes_per_event(), t.bytes_out / 5000);
    }

    #[test]
    fn a_failed_compression_keeps_the_file_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl.1");
        let mut c = Compressor::default();
        c.start(p.clone()); // no such file
        c.wait();
        assert_eq!(c.totals().failures, 1);
        assert!(!tmp_path(&p).exists());
    }
}
