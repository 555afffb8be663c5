//! The monitoring configurations compared in one run, by name.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Config {
    /// Nothing monitors: what every ratio is against.
    #[value(name = "baseline")]
    Baseline,
    /// mdatpd at defaults (eBPF).
    #[value(name = "mdatpd-ebpf")]
    Ebpf,
    /// mdatpd with folding off: one record per open.
    #[value(name = "mdatpd-ebpf-nofold")]
    EbpfNoFold,
    /// Folding off and the event file written through the page cache
    /// (`output.file.page_cache: keep`, the behaviour before
    /// 2026-12-02): what the default `drop` saves where the daemon's
    /// writes set the pace.
    #[value(name = "mdatpd-ebpf-nofold-cached")]
    EbpfNoFoldCached,
    /// mdatpd with every event type switched off: the hooks attached and
    /// every program returning at its first check. The floor any sensor
    /// on these hooks pays, measured beside the targets it limits.
    #[value(name = "mdatpd-ebpf-all-off")]
    EbpfAllOff,
    /// The compat build of the syscall exit programs (what 5.8-5.14
    /// load), forced on this kernel: its cost against the typed build's.
    #[value(name = "mdatpd-ebpf-compat")]
    EbpfCompat,
    /// `output.detail: compact` (shorter records), the default build.
    #[value(name = "mdatpd-ebpf-detail-compact")]
    EbpfCompact,
    /// mdatpd on the audit subsystem (eBPF disabled), with auditd running.
    #[value(name = "mdatpd-auditd")]
    MdatpdAuditd,
    /// auditd with rules for the same kinds.
    #[value(name = "auditd")]
    Auditd,
    /// A bpftrace script printing the same kinds.
    #[value(name = "bpftrace")]
    Bpftrace,
}

impl Config {
    /// Every configuration, in the report's order.
    pub const ALL: [Config; 10] = [
        Config::Baseline,
        Config::Ebpf,
        Config::EbpfNoFold,
        Config::EbpfNoFoldCached,
        Config::EbpfAllOff,
        Config::EbpfCompat,
        Config::EbpfCompact,
        Config::MdatpdAuditd,
        Config::Auditd,
        Config::Bpftrace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Config::Baseline => "baseline",
            Config::Ebpf => "mdatpd-ebpf",
            Config::EbpfNoFold => "mdatpd-ebpf-nofold",
            Config::EbpfNoFoldCached => "mdatpd-ebpf-nofold-cached",
            Config::EbpfAllOff => "mdatpd-ebpf-all-off",
            Config::EbpfCompat => "mdatpd-ebpf-compat",
            Config::EbpfCompact => "mdatpd-ebpf-detail-compact",
            Config::MdatpdAuditd => "mdatpd-auditd",
            Config::Auditd => "auditd",
            Config::Bpftrace => "bpftrace",
        }
    }

    pub fn runs_mdatpd(self) -> bool {
        matches!(
            self,
            Config::Ebpf
                | Config::EbpfNoFold
                | Config::EbpfNoFoldCached
                | Config::EbpfAllOff
                | Config::EbpfCompat
                | Config::EbpfCompact
                | Config::MdatpdAuditd
        )
    }

    /// Whether auditd runs (with mdatpd on audit, or alone).
    pub fn runs_auditd(self) -> bool {
        matches!(self, Config::MdatpdAuditd | Config::Auditd)
    }

    /// mdatpd's configuration file for this configuration. One unrotated
    /// event file: every event of the run is counted (a 2 s storm
    /// without folding writes ~800 MB, past the default 100 MiB rotation).
    pub fn mdatpd_yaml(self) -> String {
        let mut yaml = String::from(match self {
            Config::EbpfCompact => "output: {detail: compact, file: {max_size: 0}}\n",
            Config::EbpfNoFoldCached => "output: {file: {max_size: 0, page_cache: keep}}\n",
            _ => "output: {file: {max_size: 0}}\n",
        });
        match self {
            Config::EbpfNoFold | Config::EbpfNoFoldCached => {
                yaml.push_str("folding: {enabled: false}\n")
            }
            Config::EbpfAllOff => {
                yaml.push_str("events:\n");
                for kind in mdatpd::kind::EventKind::ALL {
                    yaml.push_str(&format!("  {kind}: false\n"));
                }
            }
            Config::MdatpdAuditd => {
                yaml.push_str("ebpf_supplementary_event_provider: disabled\n");
            }
            _ => {}
        }
        yaml
    }

    /// mdatpd's command-line arguments beyond the common ones.
    pub fn mdatpd_args(self) -> &'static [&'static str] {
        match self {
            Config::EbpfCompat => &["--test-syscall-variant", "compat"],
            _ => &[],
        }
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_configuration() {
        for c in Config::ALL {
            assert_eq!(Config::from_str(c.name(), false), Ok(c));
        }
        assert!(Config::from_str("mdatpd-ebpf-typo", false).is_err());
    }
}
