//! The NATS output's on-disk spool: where messages wait, in order, while
//! the server is unreachable or slow, bounded by `spool_max_bytes`. One
//! line per event, `<message id>\t<kind>\t<event JSON>\n`, consecutive
//! lines of one id forming one message, in segment files `seg-<n>.spool`;
//! `cursor` records how far the server acknowledged.
//! A record is never lost between a crash and the next start: a record
//! whose acknowledgement was not recorded is sent again with its message
//! id, and the stream's de-duplication drops the copy.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::batch::Message;
use crate::kind::EventKind;
use crate::sink::class_name;
use crate::sink::queue::Record;

/// A segment is closed past this size (consumed segments are deleted).
const SEGMENT_BYTES: u64 = 4 << 20;

/// A message read back from the spool, and where it ends: commit this
/// once it is acknowledged.
pub type Spooled = (Message, (u64, u64));

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Segment numbers, oldest first, with their sizes.
    segments: VecDeque<(u64, u64)>,
    /// (segment, offset) of the first record not acknowledged.
    cursor: (u64, u64),
    tail: Option<File>,
}

impl Spool {
    /// Opens the spool, keeping what a previous run left; the number of
    /// torn records cut from its end (a crash mid-write) comes back too.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(Self, u64)> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("seg-")?
                    .strip_suffix(".spool")?
                    .parse()
                    .ok()
            })
            .collect();
        numbers.sort_unstable();
        let cursor = read_cursor(dir).unwrap_or((numbers.first().copied().unwrap_or(1), 0));
        let mut segments = VecDeque::new();
        let mut torn = 0;
        for n in numbers {
            let path = segment_path(dir, n);
            if n < cursor.0 {
                std::fs::remove_file(&path)?;
                continue;
            }
            torn += u64::from(crate::sink::file::repair_torn_tail(&path)? > 0);
            segments.push_back((n, std::fs::metadata(&path)?.len()));
        }
        let mut spool = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            segments,
            cursor,
            tail: None,
        };
        if spool.is_empty() {
            spool.reset()?;
        }
        Ok((spool, torn))
    }

    /// Bytes waiting (on disk, not yet acknowledged).
    pub fn pending_bytes(&self) -> u64 {
        let total: u64 = self.segments.iter().map(|s| s.1).sum();
        let consumed = match self.segments.front() {
            Some(&(n, _)) if n == self.cursor.0 => self.cursor.1,
            _ => 0,
        };
        total - consumed
    }

    pub fn is_empty(&self) -> bool {
        self.pending_bytes() == 0
    }

    fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.1).sum()
    }

    /// Appends whole messages in order until one would pass `max_bytes`;
    /// returns how many were written. One write and one fsync per call.
    pub fn append(&mut self, messages: &[Message]) -> io::Result<usize> {
        let mut buf = Vec::new();
        let mut n = 0;
        let room = self.max_bytes.saturating_sub(self.disk_bytes());
        for m in messages {
            let len: usize = m
                .events
                .iter()
                .map(|e| m.id.len() + e.kind.map_or(1, |k| k.name().len()) + e.bytes.len() + 3)
                .sum();
            if (buf.len() + len) as u64 > room {
                break;
            }
            for e in &m.events {
                buf.extend_from_slice(m.id.as_bytes());
                buf.push(b'\t');
                buf.extend_from_slice(e.kind.map_or("-", |k| k.name()).as_bytes());
                buf.push(b'\t');
                buf.extend_from_slice(&e.bytes);
                buf.push(b'\n');
            }
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let (seg, size) = self.tail_segment()?;
        let Some(f) = self.tail.as_mut() else {
            return Err(io::Error::other("spool segment not open"));
        };
        if let Err(e) = f.write_all(&buf) {
            // Never a torn line in the middle of the spool.
            let _ = f.set_len(size);
            return Err(e);
        }
        f.sync_data()?;
        if let Some(last) = self.segments.back_mut() {
            *last = (seg, size + buf.len() as u64);
        }
        Ok(n)
    }

    /// The segment to append to: the last one, or a new one past
    /// `SEGMENT_BYTES`.
    fn tail_segment(&mut self) -> io::Result<(u64, u64)> {
        match self.segments.back().copied() {
            Some((n, size)) if size < SEGMENT_BYTES => {
                if self.tail.is_none() {
                    self.tail = Some(open_append(&segment_path(&self.dir, n))?);
                }
                Ok((n, size))
            }
            last => {
                let n = last.map_or(self.cursor.0, |(n, _)| n + 1);
                self.tail = Some(open_append(&segment_path(&self.dir, n))?);
                self.segments.push_back((n, 0));
                Ok((n, 0))
            }
        }
    }

    /// Up to `max` messages from the cursor, in order. A message never
    /// spans segments (it is appended in one write).
    pub fn read(&self, max: usize) -> io::Result<Vec<Spooled>> {
        let mut out: Vec<Spooled> = Vec::new();
        for &(n, size) in &self.segments {
            if n < self.cursor.0 {
                continue;
            }
            let start = if n == self.cursor.0 { self.cursor.1 } else { 0 };
            if start >= size {
                continue;
            }
            let mut f = File::open(segment_path(&self.dir, n))?;
            f.seek(SeekFrom::Start(start))?;
            let mut r = BufReader::new(f.take(size - start));
            let mut off = start;
            let mut line = Vec::new();
            loop {
                line.clear();
                let got = r.read_until(b'\n', &mut line)?;
                if got == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                line.pop();
                let (id, kind, bytes) = parse_line(&line)?;
                let same = out.last().is_some_and(|(m, end)| m.id == id && end.0 == n);
                if !same && out.len() >= max {
                    return Ok(out);
                }
                off += got as u64;
                let event = Record { bytes, kind };
                match out.last_mut() {
                    Some((m, end)) if same => {
                        m.events.push(event);
                        *end = (n, off);
                    }
                    _ => out.push((
                        Message {
                            id,
                            class: class_name(&event.bytes),
                            events: vec![event],
                        },
                        (n, off),
                    )),
                }
            }
        }
        Ok(out)
    }

    /// Records up to `end` were acknowledged: consumed segments go.
    pub fn commit(&mut self, end: (u64, u64)) -> io::Result<()> {
        self.cursor = end;
        while let Some(&(n, size)) = self.segments.front() {
            let last = self.segments.len() == 1;
            if n < end.0 || (n == end.0 && end.1 >= size && !last) {
                std::fs::remove_file(segment_path(&self.dir, n))?;
                self.segments.pop_front();
                if self.segments.is_empty() {
                    self.tail = None;
                }
                // The cursor's own segment was read to its end: on to
                // the next one's start.
                if n == self.cursor.0
                    && let Some(&(next, _)) = self.segments.front()
                {
                    self.cursor = (next, 0);
                }
            } else {
                break;
            }
        }
        if self.is_empty() {
            return self.reset();
        }
        write_cursor(&self.dir, self.cursor)
    }

    /// Everything was acknowledged: start over with no segment.
    fn reset(&mut self) -> io::Result<()> {
        self.tail = None;
        for (n, _) in self.segments.drain(..) {
            std::fs::remove_file(segment_path(&self.dir, n))?;
        }
        self.cursor = (self.cursor.0 + 1, 0);
        write_cursor(&self.dir, self.cursor)
    }
}

fn parse_line(line: &[u8]) -> io::Result<(String, Option<EventKind>, Vec<u8>)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a malformed spool record");
    let mut parts = line.splitn(3, |&b| b == b'\t');
    let id = std::str::from_utf8(parts.next().ok_or_else(bad)?).map_err(|_| bad())?;
    let kind = std::str::from_utf8(parts.next().ok_or_else(bad)?).map_err(|_| bad())?;
    let bytes = parts.next().ok_or_else(bad)?;
    Ok((id.to_string(), EventKind::from_name(kind), bytes.to_vec()))
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:020}.spool"))
}

fn open_append(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(p)
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join("cursor")).ok()?;
    let (a, b) = text.trim().split_once(' ')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn write_cursor(dir: &Path, c: (u64, u64)) -> io::Result<()> {
    let tmp = dir.join("cursor.tmp");
    std::fs::write(&tmp, format!("{} {}\n", c.0, c.1))?;
    std::fs::rename(tmp, dir.join("cursor"))
}

#[cfg(test)]
mod tests;
