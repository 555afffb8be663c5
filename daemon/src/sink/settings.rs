//! The `output:` section of the configuration: how the event file is
//! rotated and synced. Changeable live (reload).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    pub file: FileOutput,
}

/// Below this a rotation's own file events (the sensor renames `keep`
/// files, each an event) could fill the next file and rotate again.
pub const MIN_ROTATE_SIZE: u64 = 1 << 20;
pub const MAX_KEEP: u32 = 100;

impl OutputConfig {
    /// (key, why) for each value out of range.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let size = self.file.max_size.as_u64();
        if size != 0 && size < MIN_ROTATE_SIZE {
            out.push((
                "output.file.max_size".into(),
                format!("{size} bytes: 0 (never rotate) or at least 1 MiB"),
            ));
        }
        if self.file.keep > MAX_KEEP {
            out.push((
                "output.file.keep".into(),
                format!("{}: at most {MAX_KEEP} rotated files", self.file.keep),
            ));
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FileOutput {
    /// Rotate when the file would grow past this ("100MiB", "512KiB", or
    /// bytes). 0: never rotate.
    pub max_size: bytesize::ByteSize,
    /// Rotated files kept: events.jsonl.1 (newest) .. events.jsonl.<keep>.
    pub keep: u32,
    /// When written events are forced to the disk.
    pub fsync: FsyncPolicy,
}

impl Default for FileOutput {
    fn default() -> Self {
        Self {
            max_size: bytesize::ByteSize::mib(100),
            keep: 5,
            fsync: FsyncPolicy::Interval,
        }
    }
}

/// When the event file is fsynced. A daemon crash loses nothing written
/// (the page cache keeps it); these bound what a power loss can take.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every written batch (a batch is what one drain delivered).
    Batch,
    /// Once a second while events are written, at rotation and at stop.
    #[default]
    Interval,
    /// Never by the sensor (the kernel writes back on its own schedule).
    Never,
}
