//! Commands to the daemon: reload (SIGHUP, D-Bus), configuration reads
//! and changes (D-Bus, hence the CLI), diagnostics. A change is
//! validated once, as a whole tree, and the validated configuration is
//! what gets applied.

use crate::bus::{BusCommand, ConfigReply};
use crate::config::LoadedConfig;
use crate::config::local::{self, SetError};
use crate::provider::ProviderKind;

use super::Daemon;

/// Time the bus task gets to send a reply before a long change starts.
const REPLY_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

impl Daemon {
    pub(super) async fn command(&mut self, cmd: BusCommand) {
        match cmd {
            BusCommand::Reload => self.reload_from_disk().await,
            BusCommand::GetConfig { key, reply } => {
                let value = self.config.effective().remove(&key);
                let _ = reply.send(value.ok_or(ConfigReply::UnknownKey(key)));
            }
            BusCommand::DescribeConfig { key, reply } => {
                let _ = reply.send(if local::is_key(&key) {
                    Ok(self.config.describe(&key))
                } else {
                    Err(ConfigReply::UnknownKey(key))
                });
            }
            BusCommand::NotInForce { file, reply } => {
                let paths = self.host.args.config_paths();
                let _ = reply.send(
                    self.config
                        .not_in_force(&paths, std::path::Path::new(&file))
                        .map_err(|e| ConfigReply::Invalid(e.to_string())),
                );
            }
            BusCommand::CheckConfig { key, value, reply } => {
                let paths = self.host.args.config_paths();
                let _ = reply.send(
                    local::check(&paths, &self.config, &key, &value)
                        .map(|proposed| {
                            let before = self.config.describe(&key);
                            let after = proposed.describe(&key);
                            let mut out = std::collections::BTreeMap::new();
                            let changed = before.get("value") != after.get("value");
                            out.insert(
                                "current".into(),
                                before.get("value").cloned().unwrap_or_default(),
                            );
                            out.insert(
                                "proposed".into(),
                                after.get("value").cloned().unwrap_or_default(),
                            );
                            out.insert("changed".into(), changed.to_string());
                            out.insert(
                                "source".into(),
                                before.get("source").cloned().unwrap_or_default(),
                            );
                            out
                        })
                        .map_err(set_error_reply),
                );
            }
            BusCommand::SetConfig { key, value, reply } => {
                let paths = self.host.args.config_paths();
                match local::set(&paths, &self.config, &key, &value) {
                    Ok(config) => {
                        let _ = reply.send(Ok(String::new()));
                        // The caller's answer goes out before the change is
                        // applied (a switch to eBPF then loads its programs
                        // on a thread of its own: background_load.rs).
                        tokio::time::sleep(REPLY_GRACE).await;
                        self.apply(config).await;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(set_error_reply(e)));
                    }
                }
            }
            BusCommand::Diagnostic { reply } => {
                let health = self.health.get();
                let _ = reply.send(crate::diagnostic::Parts {
                    health_json: serde_json::to_string_pretty(&health.to_json())
                        .unwrap_or_default(),
                    config_explain: self.config.explain(),
                    hot_sources: self.pipeline.hot_sources(),
                });
            }
            BusCommand::HotSources { top, reply } => {
                let _ = reply.send(self.pipeline.hot_top(top as usize));
            }
        }
    }

    /// SIGHUP / D-Bus Reload: read and validate the whole tree; a bad tree
    /// is refused, everything keeps running, and its problems show in
    /// health.
    pub(super) async fn reload_from_disk(&mut self) {
        match crate::config::load(&self.host.args.config_paths()) {
            Ok(config) => self.apply(config).await,
            Err(e) => {
                crate::systemd::reloading();
                log::error!("reload refused, keeping the running configuration: {e}");
                self.config_errors = e.0;
                self.update_health();
                crate::systemd::ready(&self.status_line(0.0));
            }
        }
    }

    /// Makes a validated configuration the running one, as systemd and
    /// D-Bus see it: RELOADING, the switch if the provider setting
    /// changed, the provider-change signals, fresh health, READY.
    async fn apply(&mut self, config: LoadedConfig) {
        crate::systemd::reloading();
        let before = self.provider_kind();
        self.setting = config.settings.ebpf_supplementary_event_provider;
        self.config = config;
        self.config_errors.clear();
        // Exclusions take effect at once for what user space filters; the
        // kernel's maps are rewritten by the eBPF source.
        self.pipeline
            .set_exclusions(crate::exclusions::Exclusions::new(&self.config.filters));
        self.ebpf.apply_filters(&self.config.filters);
        // The event file is reopened (logrotate's rename, SIGHUP) with
        // the new rotation settings.
        self.pipeline.reconfigure_sink(&self.config.settings.output);
        self.apply_provider_setting();
        self.request_audit_status();
        self.announce(before).await;
        self.update_health();
        crate::systemd::ready(&self.status_line(0.0));
    }

    /// After a change: tell D-Bus listeners when the provider changed.
    pub(super) async fn announce(&self, before: ProviderKind) {
        let now = self.provider_kind();
        if let (Some(bus), true) = (&self.bus, before != now) {
            let reason = self
                .reason
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "eBPF enabled".into());
            bus.provider_changed(&before.to_string(), &now.to_string(), &reason)
                .await;
        }
    }
}

fn set_error_reply(e: SetError) -> ConfigReply {
    match e {
        SetError::Locked { key, file } => ConfigReply::Locked(format!(
            "{key} is managed by {}: change it there",
            file.display()
        )),
        SetError::UnknownKey { key } => ConfigReply::UnknownKey(key),
        other => ConfigReply::Invalid(other.to_string()),
    }
}
