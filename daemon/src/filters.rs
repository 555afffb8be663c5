//! What the kernel side filters before anything reaches user space:
//! event types on/off, excluded path prefixes, excluded executables,
//! excluded remote networks, and read/open folding. Read from a YAML file
//! (`--filter-config`); the control-plane work moves these keys into the
//! layered configuration. Keys are documented in docs/CONFIGURATION.md.

use std::collections::BTreeMap;
use std::net::IpAddr;

use mdatp_bpf::abi::mdatp_bounds::{MDATP_EXCLUDE_MAP_ENTRIES, MDATP_EXCLUDE_PATH_LEN};
use serde::{Deserialize, Serialize};

use crate::kind::EventKind;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{path}: {source}")]
    Yaml {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{file}: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        file: String,
        problems: Vec<FilterProblem>,
    },
}

/// One invalid value: its key path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterProblem {
    /// e.g. `exclude.paths[0]`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for FilterProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> FilterProblem {
    FilterProblem {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// enabled | disabled (the audit subsystem provides the events).
    pub ebpf_supplementary_event_provider: crate::provider::EbpfSetting,
    /// Kernel releases (exact `uname -r`) on which eBPF must not run, on
    /// top of the built-in denylist.
    pub ebpf_kernel_denylist: Vec<String>,
    /// Event type name → on/off; types not named stay on.
    pub events: BTreeMap<String, bool>,
    pub exclude: Exclusions,
    pub folding: Folding,
    /// Event file rotation and fsync.
    pub output: crate::sink::OutputConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Exclusions {
    /// Absolute path prefixes: "/a/b" excludes /a/b and everything below it.
    pub paths: Vec<String>,
    /// Executables (exact absolute paths) whose file and network events are
    /// excluded.
    pub processes: Vec<String>,
    /// Remote networks in CIDR notation (IPv4 or IPv6).
    pub networks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Folding {
    pub enabled: bool,
    pub window_ms: u64,
}

impl Default for Folding {
    fn default() -> Self {
        Self {
            enabled: true,
            window_ms: 5_000,
        }
    }
}

/// One entry of an exclusion trie: bytes, and the exact length a path
/// must have to match (0 = any path with this prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrieEntry {
    pub prefix: Vec<u8>,
    pub exact_len: u32,
}

/// The validated, kernel-ready form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFilters {
    pub event_mask: u64,
    pub fold_window_ns: u64,
    pub paths: Vec<TrieEntry>,
    pub processes: Vec<TrieEntry>,
    /// (IPv6 or IPv4-mapped address bytes, prefix length in bits)
    pub networks: Vec<([u8; 16], u32)>,
}

impl KernelFilters {
    /// The excluded executables' paths (validated as UTF-8 text).
    pub fn process_paths(&self) -> impl Iterator<Item = &str> {
        self.processes
            .iter()
            .map(|e| std::str::from_utf8(&e.prefix).unwrap_or(""))
    }
}

impl FilterConfig {
    /// Validates everything and reports every problem at once.
    pub fn compile(&self, file: &str) -> Result<KernelFilters, FilterError> {
        let mut problems = Vec::new();
        let mut mask = u64::MAX;
        for (name, on) in &self.events {
            match EventKind::from_name(name).map(|k| k.spec().abi) {
                Some(Some(abi)) if !on => mask &= !(1u64 << abi as u32),
                Some(_) => {}
                None => problems.push(problem(
                    format!("events.{name}"),
                    format!("unknown event type (known: {})", EventKind::names()),
                )),
            }
        }
        for (i, r) in self.ebpf_kernel_denylist.iter().enumerate() {
            if r.trim().is_empty() || r.contains(char::is_whitespace) {
                problems.push(problem(
                    format!("ebpf_kernel_denylist[{i}]"),
                    format!("{r:?}: a kernel release as `uname -r` prints it"),
                ));
            }
        }
        for (key, message) in self.output.problems() {
            problems.push(problem(key, message));
        }
        let mut paths = Vec::new();
        for (i, p) in self.exclude.paths.iter().enumerate() {
            match path_entries(p) {
                Ok(e) => paths.extend(e),
                Err(why) => problems.push(problem(
                    format!("exclude.paths[{i}]"),
                    format!("{p:?}: {why}"),
                )),
            }
        }
        let mut processes = Vec::new();
        for (i, p) in self.exclude.processes.iter().enumerate() {
            match check_path(p) {
                Ok(()) => processes.push(TrieEntry {
                    prefix: p.as_bytes().to_vec(),
                    exact_len: p.len() as u32,
                }),
                Err(why) => problems.push(problem(
                    format!("exclude.processes[{i}]"),
                    format!("{p:?}: {why}"),
                )),
            }
        }
        let mut networks = Vec::new();
        for (i, n) in self.exclude.networks.iter().enumerate() {
            match parse_cidr(n) {
                Ok(e) => networks.push(e),
                Err(why) => problems.push(problem(
                    format!("exclude.networks[{i}]"),
                    format!("{n:?}: {why}"),
                )),
            }
        }
        // What the kernel maps can hold: a load with more fails, and the
        // sensor would fall back for a reason that is the configuration's.
        let cap = MDATP_EXCLUDE_MAP_ENTRIES as usize;
        for (key, entries, per_item) in [
            ("exclude.paths", paths.len(), 2),
            ("exclude.processes", processes.len(), 1),
            ("exclude.networks", networks.len(), 1),
        ] {
            if entries > cap {
                problems.push(problem(
                    key,
                    format!(
                        "{} entries: the kernel's exclusion map holds {cap} kernel entries, at most {} entries here",
                        entries / per_item,
                        cap / per_item
                    ),
                ));
            }
        }
        if self.folding.enabled && self.folding.window_ms == 0 {
            problems.push(problem(
                "folding.window_ms",
                "must be > 0 when folding is enabled",
            ));
        }
        if !problems.is_empty() {
            return Err(FilterError::Invalid {
                file: file.to_string(),
                problems,
            });
        }
        Ok(KernelFilters {
            event_mask: mask,
            fold_window_ns: if self.folding.enabled {
                self.folding.window_ms.saturating_mul(1_000_000)
            } else {
                0
            },
            paths,
            processes,
            networks,
        })
    }
}

/// Why a configured value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must be an absolute path")]
    NotAbsolute,
    #[error("longer than {0} bytes, the part the kernel matches on")]
    TooLong(u32),
    #[error("excluding / would exclude every file")]
    Root,
    #[error("bad address: {0}")]
    Address(#[from] std::net::AddrParseError),
    #[error("bad prefix length {0:?}")]
    PrefixLength(String),
    #[error("prefix length {len} is over {max}")]
    PrefixTooLong { len: u32, max: u32 },
}

fn check_path(p: &str) -> Result<(), ValueError> {
    if !p.starts_with('/') {
        return Err(ValueError::NotAbsolute);
    }
    if p.len() >= MDATP_EXCLUDE_PATH_LEN as usize {
        return Err(ValueError::TooLong(MDATP_EXCLUDE_PATH_LEN - 1));
    }
    Ok(())
}

/// "/a/b" → the directory itself (exact) and everything below "/a/b/".
fn path_entries(p: &str) -> Result<Vec<TrieEntry>, ValueError> {
    check_path(p)?;
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(ValueError::Root);
    }
    Ok(vec![
        TrieEntry {
            prefix: trimmed.as_bytes().to_vec(),
            exact_len: trimmed.len() as u32,
        },
        TrieEntry {
            prefix: format!("{trimmed}/").into_bytes(),
            exact_len: 0,
        },
    ])
}

/// CIDR → 16 address bytes (IPv4 mapped into ::ffff:0:0/96) and prefix bits.
pub fn parse_cidr(s: &str) -> Result<([u8; 16], u32), ValueError> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse()?;
    let (bytes, max, offset) = match ip {
        IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), 32, 96),
        IpAddr::V6(v6) => (v6.octets(), 128, 0),
    };
    let len: u32 = match len {
        Some(l) => l
            .parse()
            .map_err(|_| ValueError::PrefixLength(l.to_string()))?,
        None => max,
    };
    if len > max {
        return Err(ValueError::PrefixTooLong { len, max });
    }
    Ok((bytes, len + offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> Result<KernelFilters, FilterError> {
        let c: FilterConfig = serde_yaml::from_str(yaml).map_err(|source| FilterError::Yaml {
            path: "t".into(),
            source,
        })?;
        c.compile("t.yaml")
    }

    #[test]
    fn defaults_enable_everything_and_fold() {
        let k = cfg("{}").expect("defaults");
        assert_eq!(k.event_mask, u64::MAX);
        assert_eq!(k.fold_window_ns, 5_000_000_000);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = cfg("events: {bogus: false}\nexclude: {paths: [rel], networks: [10.0.0.0/33]}")
            .expect_err("invalid")
            .to_string();
        assert!(err.contains("t.yaml"), "{err}");
        assert!(err.contains("events.bogus"), "{err}");
        assert!(err.contains("exclude.paths[0]"), "{err}");
        assert!(err.contains("exclude.networks[0]"), "{err}");
    }

    #[test]
    fn more_exclusions_than_the_kernel_maps_hold_are_refused_by_key() {
        let paths: Vec<String> = (0..513).map(|i| format!("/x/{i}")).collect();
        let yaml = format!("exclude: {{paths: [{}]}}", paths.join(", "));
        let err = cfg(&yaml).expect_err("over the limit").to_string();
        assert!(err.contains("exclude.paths"), "{err}");
        assert!(
            err.contains("513 entries") && err.contains("at most 512"),
            "{err}"
        );
        let fits = format!("exclude: {{paths: [{}]}}", paths[..512].join(", "));
        assert!(cfg(&fits).is_ok());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = cfg("exclude: {pathz: []}")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("pathz"), "{err}");
    }

    #[test]
    fn entries_are_compiled() {
        let k = cfg("events: {file_open: false}\nexclude: {paths: [/tmp/x/], networks: [127.0.0.0/8, '::1']}\nfolding: {enabled: false}")
            .expect("valid");
        assert_eq!(k.event_mask & (1 << 4), 0);
        assert_eq!(k.fold_window_ns, 0);
        assert_eq!(k.paths[0].prefix, b"/tmp/x");
        assert_eq!(k.paths[0].exact_len, 6);
        assert_eq!(k.paths[1].prefix, b"/tmp/x/");
        assert_eq!(k.networks[0].1, 104);
        assert_eq!(k.networks[0].0[10..13], [0xff, 0xff, 127]);
        assert_eq!(k.networks[1].1, 128);
    }
}
