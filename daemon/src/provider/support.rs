//! Whether this kernel may run the eBPF provider: the distribution support
//! table and the denylist are data; the check is one function over them.

use std::cmp::Ordering;

/// Minimum kernel per distribution (and minimum distribution version).
pub struct SupportEntry {
    /// os-release ID.
    pub distro_id: &'static str,
    pub distro_name: &'static str,
    pub min_distro_version: &'static str,
    /// Some(true): only Oracle UEK kernels; Some(false): only non-UEK
    /// (RHCK); None: any kernel of the distribution.
    pub uek: Option<bool>,
    pub min_kernel: &'static str,
}

pub const SUPPORT_TABLE: &[SupportEntry] = &[
    SupportEntry {
        distro_id: "ubuntu",
        distro_name: "Ubuntu",
        min_distro_version: "16.04",
        uek: None,
        min_kernel: "4.15",
    },
    SupportEntry {
        distro_id: "fedora",
        distro_name: "Fedora",
        min_distro_version: "33",
        uek: None,
        min_kernel: "5.8.15",
    },
    SupportEntry {
        distro_id: "centos",
        distro_name: "CentOS",
        min_distro_version: "7.6",
        uek: None,
        min_kernel: "3.10.0-957",
    },
    SupportEntry {
        distro_id: "rhel",
        distro_name: "RHEL",
        min_distro_version: "7.6",
        uek: None,
        min_kernel: "3.10.0-957",
    },
    SupportEntry {
        distro_id: "sles",
        distro_name: "SLES",
        min_distro_version: "15",
        uek: None,
        min_kernel: "5.3.18-18.47",
    },
    SupportEntry {
        distro_id: "debian",
        distro_name: "Debian",
        min_distro_version: "9",
        uek: None,
        min_kernel: "4.19",
    },
    SupportEntry {
        distro_id: "ol",
        distro_name: "Oracle Linux (RHCK)",
        min_distro_version: "7.9",
        uek: Some(false),
        min_kernel: "3.10.0-1160",
    },
    SupportEntry {
        distro_id: "ol",
        distro_name: "Oracle Linux (UEK)",
        min_distro_version: "7.9",
        uek: Some(true),
        min_kernel: "5.4",
    },
];

/// Kernel releases on which the eBPF provider hangs the machine.
pub const DENYLIST: &[&str] = &[
    "5.15.0-0.30.20.el8uek.x86_64",
    "5.15.0-0.30.20.1.el8uek.x86_64",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
}

impl OsRelease {
    /// Parses /etc/os-release (KEY=value, values optionally quoted).
    pub fn parse(text: &str) -> Self {
        let get = |key: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().trim_matches('"').trim_matches('\'').to_string())
                .unwrap_or_default()
        };
        Self {
            id: get("ID").to_lowercase(),
            version_id: get("VERSION_ID"),
            pretty_name: get("PRETTY_NAME"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error("kernel {release} is on the eBPF denylist (known to hang)")]
    Denylisted { release: String },
    #[error("kernel {release} is on the configured eBPF denylist (ebpf_kernel_denylist)")]
    DenylistedByConfig { release: String },
    #[error("{distro} kernel {release} is older than the minimum {min} for eBPF")]
    KernelTooOld {
        distro: &'static str,
        release: String,
        min: &'static str,
    },
    #[error("{distro} {version} is older than the minimum {min} for eBPF")]
    DistroTooOld {
        distro: &'static str,
        version: String,
        min: &'static str,
    },
}

/// The leading numbers of a version: "3.10.0-957.el7" → [3, 10, 0, 957].
pub fn version_numbers(v: &str) -> Vec<u64> {
    v.split(['.', '-', '_', '+'])
        .map_while(|p| p.parse::<u64>().ok())
        .collect()
}

pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (version_numbers(a), version_numbers(b));
    for i in 0..a.len().max(b.len()) {
        match a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

/// Ok when the table allows eBPF on this distribution and kernel. A
/// distribution the table does not name is not restricted by it (the
/// load itself decides).
pub fn check(os: &OsRelease, kernel_release: &str) -> Result<(), Unsupported> {
    if DENYLIST.contains(&kernel_release) {
        return Err(Unsupported::Denylisted {
            release: kernel_release.to_string(),
        });
    }
    let is_uek = kernel_release.contains("uek");
    let Some(entry) = SUPPORT_TABLE
        .iter()
        .find(|e| e.distro_id == os.id && e.uek.is_none_or(|u| u == is_uek))
    else {
        return Ok(());
    };
    if compare_versions(&os.version_id, entry.min_distro_version) == Ordering::Less {
        return Err(Unsupported::DistroTooOld {
            distro: entry.distro_name,
            version: os.version_id.clone(),
            min: entry.min_distro_version,
        });
    }
    if compare_versions(kernel_release, entry.min_kernel) == Ordering::Less {
        return Err(Unsupported::KernelTooOld {
            distro: entry.distro_name,
            release: kernel_release.to_string(),
            min: entry.min_kernel,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, v: &str) -> OsRelease {
        OsRelease {
            id: id.into(),
            version_id: v.into(),
            pretty_name: String::new(),
        }
    }

    #[test]
    fn os_release_is_parsed() {
        let o = OsRelease::parse("NAME=\"Oracle Linux Server\"\nID=\"ol\"\nVERSION_ID=\"8.8\"\n");
        assert_eq!(o.id, "ol");
        assert_eq!(o.version_id, "8.8");
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(version_numbers("3.10.0-957.el7.x86_64"), [3, 10, 0, 957]);
        assert_eq!(
            compare_versions("3.10.0-957.1", "3.10.0-957"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("3.10.0-862", "3.10.0-957"), Ordering::Less);
        assert_eq!(compare_versions("5.10", "4.19.0"), Ordering::Greater);
    }

    #[test]
    fn the_table_decides() {
        assert!(check(&os("debian", "12"), "6.1.0-18-amd64").is_ok());
        assert!(matches!(
            check(&os("debian", "9"), "4.9.0-8-amd64"),
            Err(Unsupported::KernelTooOld { min: "4.19", .. })
        ));
        assert!(matches!(
            check(&os("centos", "7.6"), "3.10.0-862.el7.x86_64"),
            Err(Unsupported::KernelTooOld { .. })
        ));
        assert!(check(&os("centos", "7.6"), "3.10.0-957.el7.x86_64").is_ok());
        assert!(matches!(
            check(&os("ubuntu", "14.04"), "4.15.0"),
            Err(Unsupported::DistroTooOld { .. })
        ));
        // Oracle: RHCK and UEK have their own minimums.
        assert!(check(&os("ol", "7.9"), "3.10.0-1160.el7.x86_64").is_ok());
        assert!(matches!(
            check(&os("ol", "7.9"), "4.14.35-2047.el7uek.x86_64"),
            Err(Unsupported::KernelTooOld {
                distro: "Oracle Linux (UEK)",
                ..
            })
        ));
        assert!(
            check(&os("arch", "rolling"), "6.18.0").is_ok(),
            "unlisted distribution"
        );
    }

    #[test]
    fn the_denylist_wins() {
        for r in DENYLIST {
            assert!(matches!(
                check(&os("ol", "8.8"), r),
                Err(Unsupported::Denylisted { .. })
            ));
        }
    }
}
