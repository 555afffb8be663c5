//! Where serialized events go: JSON Lines on stdout or in a file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Stdout, Write};
use std::path::Path;

pub trait Sink {
    /// One serialized event (a JSON object, without the newline).
    fn write(&mut self, event: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// JSON Lines into any writer, buffered; flushed after each batch.
pub struct JsonLines<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(256 * 1024, out),
        }
    }
}

impl JsonLines<Stdout> {
    pub fn stdout() -> Self {
        Self::new(io::stdout())
    }
}

impl JsonLines<File> {
    /// Appends to `path`, creating it (mode 0640) and its directory.
    pub fn append(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?;
        Ok(Self::new(f))
    }
}

impl<W: Write> Sink for JsonLines<W> {
    fn write(&mut self, event: &[u8]) -> io::Result<()> {
        self.out.write_all(event)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Sink for Box<dyn Sink + Send> {
    fn write(&mut self, event: &[u8]) -> io::Result<()> {
        (**self).write(event)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
}
