//! The configured exclusions and event switches, applied in user space:
//! to every event of a source that cannot filter in the kernel (the audit
//! subsystem, the process connector), and to eBPF's path changes, whose
//! exclusion needs the whole path the kernel acted on. One semantics for
//! every provider (docs/CONFIGURATION.md, "Exclusions"):
//!
//! * a path is excluded when it is an excluded prefix or below it, and
//!   only when the sensor is sure of it: never a truncated path, never a
//!   path that went through `..` lexically (a symlink before the `..`
//!   makes the object the kernel acted on another one), never a path
//!   with a symlink among its directories (X/link/f, link → /etc);
//! * a rename or link is excluded only when both its source and its
//!   destination are;
//! * an excluded executable's file and network events are excluded — a
//!   process whose executable has the path and is the file now at that
//!   path (device and inode, exe_identity.rs);
//! * a network event is excluded when its remote address is in an
//!   excluded network.
//!
//! eBPF's opens, network and process events were already filtered in the
//! kernel by the same rules and are not looked at again.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use crate::event::{Event, FileActivity, FileInfo, ProcessInfo, Provider};
use crate::exe_identity;
use crate::filters::KernelFilters;
use crate::kind::EventKind;
use crate::mounts::MountTable;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exclusions {
    /// Excluded path prefixes, without a trailing '/'.
    paths: Vec<String>,
    /// Excluded executables (exact paths).
    processes: Vec<String>,
    /// (IPv6 or IPv4-mapped address, prefix bits).
    networks: Vec<([u8; 16], u32)>,
    /// Kinds switched off (`events.<kind>: false`).
    off: Vec<EventKind>,
}

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether every directory above `path` is a real directory now. A path
/// judged in user space is the name the caller passed (joined with its
/// directory): a symlink among its directories makes the object the
/// kernel acted on another one, wherever the name seems to lie. One that
/// cannot be checked (gone, on a filesystem a lookup could hang on) is not
/// sure either. The check runs only for a path that would be excluded.
/// (A link swapped for a real directory between the call and this check
/// goes unseen: a race the attacker must win within milliseconds.)
fn no_symlink_above(path: &Path) -> bool {
    thread_local! {
        static MOUNTS: RefCell<MountTable> = RefCell::new(MountTable::default());
    }
    let Some(parent) = path.parent() else {
        return true;
    };
    if MOUNTS.with(|m| m.borrow_mut().may_hang(&parent.to_string_lossy())) {
        return false;
    }
    parent
        .ancestors()
        .all(|dir| std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir()))
}

fn in_network(addr: &SocketAddr, (net, bits): &([u8; 16], u32)) -> bool {
    let bytes = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let full = (*bits / 8) as usize;
    let rest = bits % 8;
    bytes[..full] == net[..full] && (rest == 0 || (bytes[full] ^ net[full]) >> (8 - rest) == 0)
}

impl Exclusions {
    pub fn new(f: &KernelFilters) -> Self {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Self {
            // The exact entry of each prefix is the prefix itself.
            paths: f
                .paths
                .iter()
                .filter(|e| e.exact_len > 0)
                .map(|e| text(&e.prefix))
                .collect(),
            processes: f.processes.iter().map(|e| text(&e.prefix)).collect(),
            networks: f.networks.clone(),
            off: EventKind::ALL
                .into_iter()
                .filter(|k| {
                    k.spec()
                        .abi
                        .is_some_and(|abi| f.event_mask & (1u64 << abi as u32) == 0)
                })
                .collect(),
        }
    }

    fn path_excluded(&self, f: &FileInfo) -> bool {
        if f.path_truncated || f.path_inferred {
            return false;
        }
        f.path.as_deref().is_some_and(|p| {
            self.paths.iter().any(|x| under(p, x)) && no_symlink_above(Path::new(p))
        })
    }

    /// The process's executable is excluded: its path, and the file it
    /// runs is the one at that path (exe_identity.rs).
    fn exe_excluded(&self, p: &ProcessInfo) -> bool {
        p.exe
            .as_deref()
            .is_some_and(|e| self.processes.iter().any(|x| x == e) && exe_identity::runs(p.pid, e))
    }

    /// Whether `event` is excluded by the configuration.
    pub fn excludes(&self, event: &Event) -> bool {
        let Some(kind) = event.kind() else {
            return false;
        };
        let ebpf = event.provider() == Provider::Ebpf;
        if ebpf && !matches!(event, Event::File(_)) {
            return false;
        }
        if self.off.contains(&kind) {
            return true;
        }
        match event {
            Event::File(f) => {
                if ebpf
                    && matches!(
                        f.activity,
                        FileActivity::Open { .. } | FileActivity::OpenFolded { .. }
                    )
                {
                    return false;
                }
                if self.exe_excluded(&f.process) {
                    return true;
                }
                let first = self.path_excluded(&f.file);
                match &f.activity {
                    FileActivity::Rename { to, .. } | FileActivity::Link { to, .. } => {
                        first && self.path_excluded(to)
                    }
                    _ => first,
                }
            }
            Event::Network(n) => {
                self.exe_excluded(&n.process)
                    || n.remote
                        .is_some_and(|r| self.networks.iter().any(|net| in_network(&r, net)))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::FilterConfig;

    fn excl(yaml: &str) -> Exclusions {
        let cfg: FilterConfig = serde_yaml::from_str(yaml).unwrap();
        Exclusions::new(&cfg.compile("t.yaml").unwrap())
    }

    #[test]
    fn prefixes_match_whole_components_only() {
        assert!(under("/tmp/X", "/tmp/X"));
        assert!(under("/tmp/X/a", "/tmp/X"));
        assert!(!under("/tmp/Xa", "/tmp/X"));
        assert!(!under("/tmp", "/tmp/X"));
    }

    #[test]
    fn paths_the_sensor_is_not_sure_of_never_match() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let x = root.join("X");
        std::fs::create_dir_all(x.join("real")).unwrap();
        std::os::unix::fs::symlink("/etc", x.join("link")).unwrap();
        let x = x.to_str().unwrap();
        let e = excl(&format!("exclude: {{paths: [{x}/]}}"));
        let f = |p: &str, truncated: bool, lexical: bool| FileInfo {
            path: Some(p.into()),
            path_truncated: truncated,
            path_inferred: lexical,
            ..Default::default()
        };
        assert!(e.path_excluded(&f(&format!("{x}/a"), false, false)));
        assert!(e.path_excluded(&f(&format!("{x}/real/a"), false, false)));
        assert!(
            !e.path_excluded(&f(&format!("{x}/a"), true, false)),
            "truncated"
        );
        assert!(
            !e.path_excluded(&f(&format!("{x}/a"), false, true)),
            "through .."
        );
        assert!(!e.path_excluded(&f("/etc/passwd", false, false)));
        assert!(
            !e.path_excluded(&f(&format!("{x}/link/passwd"), false, false)),
            "through a symlink: the object is /etc/passwd"
        );
        assert!(
            !e.path_excluded(&f(&format!("{x}/gone/a"), false, false)),
            "a directory no longer there cannot be checked"
        );
    }

    #[test]
    fn networks_match_by_prefix() {
        let e = excl("exclude: {networks: [10.1.0.0/16, '2001:db8::/33']}");
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(e.networks.iter().any(|n| in_network(&a("10.1.2.3:80"), n)));
        assert!(!e.networks.iter().any(|n| in_network(&a("10.2.0.1:80"), n)));
        assert!(
            e.networks
                .iter()
                .any(|n| in_network(&a("[2001:db8:7fff::1]:1"), n))
        );
        assert!(
            !e.networks
                .iter()
                .any(|n| in_network(&a("[2001:db8:8000::1]:1"), n))
        );
    }

    #[test]
    fn switched_off_kinds_are_known() {
        let e = excl("events: {file_delete: false}");
        assert_eq!(e.off, [EventKind::FileDelete]);
    }
}
