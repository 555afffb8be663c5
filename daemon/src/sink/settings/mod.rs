//! The `output:` section of the configuration: which outputs receive the
//! events (several at once) and how each delivers. Changeable live
//! (reload): an output whose settings changed is restarted, the others
//! keep running.

mod network;

pub use network::{NatsOutput, SyslogFacility, SyslogOutput, SyslogTransport, TlsSettings};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// How much of each event is written (every output alike).
    pub detail: Detail,
    pub file: FileOutput,
    pub syslog: SyslogOutput,
    pub nats: NatsOutput,
}

/// How much of each event is written (docs/EVENTS.md, "Compact records").
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    /// Every attribute the sensor knows.
    #[default]
    Full,
    /// Every attribute OCSF requires, the process and file identity, the
    /// acting user and the event's status; no captions that repeat an id,
    /// nothing derivable from another field, and the acting process only
    /// by its identity (its exec event has the rest).
    Compact,
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
        if !self.file.enabled && !self.syslog.enabled && !self.nats.enabled {
            out.push((
                "output".into(),
                "every output is disabled: events would go nowhere (enable file, syslog or nats)"
                    .into(),
            ));
        }
        self.syslog.problems(&mut out);
        self.nats.problems(&mut out);
        out
    }

    /// Whether an enabled output sends over IP (the unit's sandbox must
    /// let it: `mdatpd unit-dropin`).
    pub fn network_targets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.syslog.enabled && self.syslog.transport != SyslogTransport::Unix {
            out.push(self.syslog.address.clone());
        }
        if self.nats.enabled {
            out.extend(self.nats.servers.iter().cloned());
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FileOutput {
    /// Events into the event file (or stdout in the foreground).
    pub enabled: bool,
    /// Rotate when the file would grow past this ("100MiB", "512KiB", or
    /// bytes). 0: never rotate.
    pub max_size: bytesize::ByteSize,
    /// Rotated files kept: events.jsonl.1 (newest) .. events.jsonl.<keep>.
    pub keep: u32,
    /// When written events are forced to the disk.
    pub fsync: FsyncPolicy,
    /// Rotated files compressed (`events.jsonl.1.zst`), or kept as written.
    pub compress: Compression,
    /// Whether written events stay in the page cache.
    pub page_cache: PageCache,
}

/// Whether the event file's written pages stay in the kernel's page cache
/// (`sink/file/drop_behind.rs` says why the default drops them).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PageCache {
    /// Freed a window (8 MiB) behind the writes, once written back.
    #[default]
    Drop,
    /// Plain writes: the pages stay until memory pressure evicts them.
    Keep,
}

/// How a rotated event file is stored.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// As written (what `zcat`-less tools and shippers expect).
    #[default]
    None,
    /// zstd, on a thread of its own after the rotation.
    Zstd,
}

impl Default for FileOutput {
    fn default() -> Self {
        Self {
            enabled: true,
            max_size: bytesize::ByteSize::mib(100),
            keep: 5,
            fsync: FsyncPolicy::Interval,
            compress: Compression::None,
            page_cache: PageCache::Drop,
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
