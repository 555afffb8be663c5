//! The `output:` section of the configuration: how the event file is
//! rotated and synced. Changeable live (reload).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    pub file: FileOutput,
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
