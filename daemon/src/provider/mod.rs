//! Which event provider runs: eBPF when enabled and supported and it
//! loads, the audit subsystem otherwise — always with the reason.

pub mod support;

use std::fmt;

/// What serves the events now (health's `supplementary_events_subsystem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Ebpf,
    Auditd,
    /// eBPF, and the audit subsystem for exactly the kinds eBPF cannot
    /// serve (a refused program, a missing hook).
    Mixed,
    /// Neither: process events from the netlink process connector.
    ProcConnector,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Ebpf => "ebpf",
            ProviderKind::Auditd => "auditd",
            ProviderKind::Mixed => "ebpf+auditd",
            ProviderKind::ProcConnector => "proc_connector",
        })
    }
}

/// The `ebpf_supplementary_event_provider` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EbpfSetting {
    #[default]
    Enabled,
    Disabled,
}

/// Why the audit provider runs instead of eBPF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackReason {
    Disabled,
    Unsupported(support::Unsupported),
    /// The kernel lacks what every program needs (probed).
    MissingCapability(String),
    LoadFailed(String),
    /// A live switch to eBPF is loading the programs (the audit rules
    /// serve the events until it is done).
    Loading,
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackReason::Disabled => f.write_str("eBPF provider disabled by configuration"),
            FallbackReason::Unsupported(u) => write!(f, "eBPF unsupported: {u}"),
            FallbackReason::MissingCapability(m) => {
                write!(f, "this kernel lacks what the eBPF programs need ({m})")
            }
            FallbackReason::LoadFailed(e) => write!(f, "eBPF failed to load: {e}"),
            FallbackReason::Loading => {
                f.write_str("eBPF programs loading (a switch to eBPF is under way)")
            }
        }
    }
}

/// Before any load attempt: disabled, unsupported, or denied (by the
/// built-in list or by configuration, `denylist`) means audit.
pub fn preselect(
    setting: EbpfSetting,
    os: &support::OsRelease,
    kernel_release: &str,
    denylist: &[String],
) -> Result<(), FallbackReason> {
    if setting == EbpfSetting::Disabled {
        return Err(FallbackReason::Disabled);
    }
    if denylist.iter().any(|r| r == kernel_release) {
        return Err(FallbackReason::Unsupported(
            support::Unsupported::DenylistedByConfig {
                release: kernel_release.to_string(),
            },
        ));
    }
    support::check(os, kernel_release).map_err(FallbackReason::Unsupported)
}

/// What to tell an admin when audit is immutable and our rules are in
/// the way (or cannot be loaded).
pub fn immutable_remedy(provider: ProviderKind) -> String {
    match provider {
        ProviderKind::Ebpf => "audit rules are immutable (enabled 2): the sensor's audit rules stay loaded until reboot. \
             Its rules file (mdatp.rules) is removed, so a reboot clears them: keep the eBPF provider enabled and reboot."
            .into(),
        ProviderKind::Mixed => "audit rules are immutable (enabled 2): the kinds eBPF does not serve cannot get the sensor's audit rules until reboot. \
             Remove '-e 2' from the audit rules and reboot."
            .into(),
        ProviderKind::Auditd | ProviderKind::ProcConnector => "audit rules are immutable (enabled 2): the sensor cannot load its audit rules until reboot. \
             Enable the eBPF provider, or remove '-e 2' from the audit rules and reboot."
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::support::OsRelease;
    use super::*;

    #[test]
    fn disabled_wins_then_the_table() {
        let os = OsRelease::parse("ID=debian\nVERSION_ID=\"12\"\n");
        assert_eq!(
            preselect(EbpfSetting::Disabled, &os, "6.1.0", &[]),
            Err(FallbackReason::Disabled)
        );
        assert!(preselect(EbpfSetting::Enabled, &os, "6.1.0", &[]).is_ok());
        let err = preselect(EbpfSetting::Enabled, &os, "4.9.0", &[]).expect_err("too old");
        assert!(
            err.to_string().contains("older than the minimum 4.19"),
            "{err}"
        );
    }

    #[test]
    fn a_configured_denylist_denies_exactly_its_releases() {
        let os = OsRelease::parse("ID=debian\nVERSION_ID=\"12\"\n");
        let deny = vec!["6.1.0-9-amd64".to_string()];
        let err = preselect(EbpfSetting::Enabled, &os, "6.1.0-9-amd64", &deny)
            .expect_err("denied by configuration");
        assert!(
            err.to_string().contains("configured eBPF denylist"),
            "{err}"
        );
        assert!(preselect(EbpfSetting::Enabled, &os, "6.1.0-10-amd64", &deny).is_ok());
    }

    #[test]
    fn immutable_remedies_name_the_steps() {
        let r = immutable_remedy(ProviderKind::Ebpf);
        assert!(r.contains("reboot") && r.contains("mdatp.rules"));
    }
}
