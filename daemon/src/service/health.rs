//! The health report, built from the running state after every change
//! and once a second: what `Health()`, the properties and `mdatp health`
//! read.

use std::collections::BTreeMap;

use mdatp_dbus::Health;

use super::Daemon;
use crate::kind::{EventKind, Served};
use crate::provider::EbpfSetting;
use crate::source::EventSource;

impl Daemon {
    pub(super) fn update_health(&self) {
        self.health.set(self.health_report());
    }

    /// Where each kind comes from now: `ebpf`, `auditd` (with why not
    /// eBPF while eBPF runs), or `unavailable` with the reasons.
    fn event_sources(&self, login_events: &str) -> BTreeMap<String, String> {
        EventKind::ALL
            .into_iter()
            .map(|kind| (kind.name().to_string(), self.source_of(kind, login_events)))
            .collect()
    }

    fn source_of(&self, kind: EventKind, login_events: &str) -> String {
        if kind == EventKind::Login {
            return if login_events == "available" {
                "auditd (PAM records)".into()
            } else {
                format!("unavailable: {login_events}")
            };
        }
        let ebpf = self.ebpf.serves(kind);
        let audit = self.audit.serves(kind);
        if let (Served::No(e), Served::No(a), Served::Yes) =
            (&ebpf, &audit, self.procs.serves(kind))
        {
            return format!("proc_connector (eBPF: {e}; audit: {a})");
        }
        match (self.ebpf.is_running(), ebpf, audit) {
            (_, Served::Yes, _) => "ebpf".into(),
            (false, _, Served::Yes) => "auditd".into(),
            (true, Served::No(why), Served::Yes) => format!("auditd (eBPF: {why})"),
            (false, _, Served::No(audit_why)) => format!("unavailable: {audit_why}"),
            (true, Served::No(why), Served::No(audit_why)) => {
                format!("unavailable: eBPF: {why}; audit: {audit_why}")
            }
        }
    }

    fn login_events(&self) -> String {
        match (self.audit_status, &self.audit.reader) {
            (_, None) => "unavailable: cannot read the audit netlink multicast group".into(),
            (Some(s), _) if s.enabled == 0 && self.ebpf.is_running() => {
                "unavailable: audit is disabled in the kernel (enabled 0)".into()
            }
            (None, _) => "unknown: audit status unavailable (auditctl)".into(),
            _ => "available".into(),
        }
    }

    /// The ways around the sensor left open (health's `not_covered`): a
    /// hook this kernel lacks, a refused program of a domain that closes
    /// a way around, what the audit subsystem cannot see.
    fn not_covered(&self) -> Vec<String> {
        let mut gaps: Vec<String> = self
            .ebpf
            .hooks()
            .iter()
            .filter_map(|h| match (h.absent, &h.error, h.domain.closes()) {
                (Some(why), _, _) => Some(format!("{}: this kernel has no {why}", h.program)),
                (None, Some(_), Some(what)) => Some(format!(
                    "{what}: program {} not running (see failed_hooks)",
                    h.program
                )),
                _ => None,
            })
            .collect();
        if self.audit.rules.is_some() {
            gaps.push("under the audit subsystem: operations submitted to io_uring".into());
        }
        gaps
    }

    fn health_report(&self) -> Health {
        let mut issues: Vec<String> = self.issue.iter().cloned().collect();
        let hooks = self.ebpf.hooks();
        let active: Vec<String> = hooks
            .iter()
            .filter(|h| h.attached())
            .map(|h| h.hook.clone())
            .collect();
        let failed: Vec<String> = hooks
            .iter()
            .filter_map(|h| h.error.as_ref().map(|e| format!("{}: {e}", h.hook)))
            .collect();
        if !failed.is_empty() {
            issues.push(format!("{} eBPF hooks failed to attach", failed.len()));
        }
        if self.ebpf.is_running() {
            let missing: Vec<&str> = EventKind::ALL
                .into_iter()
                .filter(|k| *k != EventKind::Login)
                .filter(|k| {
                    self.ebpf.serves(*k) != Served::Yes && self.audit.serves(*k) != Served::Yes
                })
                .map(|k| k.name())
                .collect();
            if !missing.is_empty() {
                issues.push(format!(
                    "event kinds unavailable: {} (see event_sources)",
                    missing.join(", ")
                ));
            }
        }
        if !self.config_errors.is_empty() {
            issues.push("the last configuration reload was refused (see config_errors)".into());
        }
        if self.bus.is_none() {
            issues.push("D-Bus API unavailable".into());
        }
        let sink = self.pipeline.sink_status();
        let (outputs, output_counters) = self.outputs_health(&mut issues);
        let loss_last_minute = self.pipeline.loss_last_minute();
        if !loss_last_minute.is_empty() {
            let what: Vec<String> = loss_last_minute
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            issues.push(format!(
                "events lost in the last minute: {} (see loss and the loss records)",
                what.join(", ")
            ));
        }
        let login_events = self.login_events();
        let mut loss = BTreeMap::new();
        self.ebpf.loss_map(&mut loss);
        self.pipeline.loss_map(&mut loss);
        self.audit.loss_map(&mut loss);
        self.procs.loss_map(&mut loss);
        let mut tables = Vec::new();
        self.pipeline.table_use(&mut tables);
        self.ebpf.table_use(&mut tables);
        self.audit.table_use(&mut tables);
        let mut state_tables = BTreeMap::new();
        for t in &tables {
            t.put(&mut state_tables);
        }
        let resources = self
            .usage
            .lock()
            .map(|mut u| u.resources(std::time::Instant::now()))
            .unwrap_or_default();
        Health {
            healthy: issues.is_empty(),
            health_issues: issues,
            supplementary_events_subsystem: self.provider_kind().to_string(),
            ebpf_supplementary_event_provider: match self.setting {
                EbpfSetting::Enabled => "enabled",
                EbpfSetting::Disabled => "disabled",
            }
            .into(),
            fallback_reason: self
                .reason
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            event_sources: self.event_sources(&login_events),
            active_hooks: active,
            failed_hooks: failed,
            not_covered: self.not_covered(),
            events_delivered: self.pipeline.delivered_map(),
            loss,
            loss_last_minute,
            audit_enabled: self.audit_status.map(|s| s.enabled),
            audit_immutable: self.audit_status.is_some_and(|s| s.immutable()),
            audit_rules_loaded: self.audit.rules.is_some(),
            login_events,
            config_errors: self.config_errors.iter().map(|p| p.to_string()).collect(),
            event_output: self.event_output(),
            event_output_error: sink.error.clone().unwrap_or_default(),
            event_output_counters: sink.counters,
            outputs,
            output_counters,
            resources,
            state_tables,
            version: env!("CARGO_PKG_VERSION").into(),
            kernel: self.host.kernel.clone(),
            kernel_capabilities: self.probed.capabilities.clone(),
            ebpf_program_build: {
                let (variant, why) = &self.probed.variant;
                match self.ebpf.kfuncs() {
                    Some(k) => format!("{}: {why}; {k}", variant.name()),
                    None => format!("{}: {why}", variant.name()),
                }
            },
        }
    }

    /// Each output's line and counters; an output that fails is an issue.
    fn outputs_health(
        &self,
        issues: &mut Vec<String>,
    ) -> (BTreeMap<String, String>, BTreeMap<String, u64>) {
        let mut lines = BTreeMap::new();
        let mut counters = BTreeMap::new();
        for r in self.pipeline.output_reports() {
            let name = r.kind.as_str();
            let target = if r.kind == crate::sink::OutputKind::File {
                self.event_output()
            } else {
                r.target.clone()
            };
            let line = match &r.status.error {
                None => format!("ok: {target}"),
                Some(e) => {
                    issues.push(format!(
                        "events cannot be delivered to the {name} output ({target}): {e} (each is counted as lost unless it waits in the output's backlog or spool)"
                    ));
                    format!("failing: {target}: {e}")
                }
            };
            lines.insert(name.to_string(), line);
            counters.insert(format!("{name}.delivered"), r.delivered);
            counters.insert(format!("{name}.lost"), r.lost);
            for (k, v) in r.status.counters {
                counters.insert(format!("{name}.{k}"), v);
            }
        }
        (lines, counters)
    }
}
