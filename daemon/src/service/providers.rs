//! Which source serves the events: eBPF when enabled, supported and
//! loaded; the audit subsystem otherwise, with the reason. Switching is
//! live and make-before-break.

use std::time::Duration;

use super::Daemon;
use crate::audit::AuditError;
use crate::audit::source::{AuditRules, clear_ours};
use crate::ebpf::map_sizes::{HostFacts, MapSizes};
use crate::ebpf::probe::KernelProbe;
use crate::ebpf::{BackgroundLoad, EbpfError, EbpfSensor, KfuncChoice, LoadOptions};
use crate::event::Provider;
use crate::kind::{EventKind, Served};
use crate::provider::{self, EbpfSetting, FallbackReason, ProviderKind};
use crate::source::EventSource;

/// How long both providers' events are compared during a switch.
const SWITCH_OVERLAP: Duration = Duration::from_secs(3);

impl Daemon {
    pub(super) fn provider_kind(&self) -> ProviderKind {
        match (self.ebpf.is_running(), &self.audit.rules) {
            (false, None) if self.procs.is_running() => ProviderKind::ProcConnector,
            (false, _) => ProviderKind::Auditd,
            (true, Some(_)) => ProviderKind::Mixed,
            (true, None) => ProviderKind::Ebpf,
        }
    }

    /// The kinds the audit subsystem is to serve: those it has records for
    /// that eBPF does not serve now (all of them while eBPF is off).
    pub(super) fn kinds_for_audit(&self) -> Vec<EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(|k| !k.spec().audit_syscalls.is_empty())
            .filter(|k| self.ebpf.serves(*k) != Served::Yes)
            .collect()
    }

    /// Whether eBPF may run: the setting, the support table, the built-in
    /// and the configured denylists.
    fn preselect(&self, setting: EbpfSetting) -> Result<(), FallbackReason> {
        provider::preselect(
            setting,
            &self.host.os,
            &self.host.kernel,
            &self.config.settings.ebpf_kernel_denylist,
        )?;
        match &self.probed.blocker {
            Some(m) => Err(FallbackReason::MissingCapability(m.clone())),
            None => Ok(()),
        }
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            // Read again at every load: the host's process count moves.
            sizes: MapSizes::for_host(&HostFacts::read(), self.host.args.ring_buffer_size),
            wakeup_bytes: self.host.args.wakeup_bytes,
            far_behind_wakeups: !self.host.args.test_no_far_behind_wakeups,
            // The test refusal holds for the first load only.
            break_programs: if self.ebpf_loaded_before {
                Vec::new()
            } else {
                self.host.args.test_break_program.clone()
            },
            filters: self.config.filters.clone(),
            variant: self.probed.variant.0,
            kfuncs: if self.host.args.test_without_kfuncs {
                KfuncChoice::None
            } else if self.host.args.test_refused_kfuncs {
                KfuncChoice::BadId
            } else {
                KfuncChoice::Kernel
            },
        }
    }

    /// At start: eBPF if it may and can run, else audit rules.
    pub(super) fn select_initial_provider(&mut self) {
        match self.preselect(self.setting) {
            Ok(()) => {
                let opts = self.load_options();
                let started = crate::systemd::keep_alive_during(true, || self.ebpf.start(&opts));
                self.ebpf_loaded_before = true;
                if let Err(e) = started {
                    let e = anyhow::Error::from(e).context("start the eBPF event provider");
                    self.reason = Some(FallbackReason::LoadFailed(format!("{e:#}")));
                }
            }
            Err(reason) => self.reason = Some(reason),
        }
        self.fit_audit_rules();
        self.fit_proc_connector();
    }

    /// The third tier: the process connector runs exactly while a
    /// process kind is served neither by eBPF nor by the audit subsystem
    /// (fork, which audit has no record of, while audit serves the rest),
    /// and reports exactly those kinds.
    fn fit_proc_connector(&mut self) {
        let uncovered: Vec<EventKind> = crate::cnproc::PROCESS_KINDS
            .into_iter()
            .filter(|k| self.ebpf.serves(*k) != Served::Yes && self.audit.serves(*k) != Served::Yes)
            .collect();
        match (uncovered.is_empty(), self.procs.is_running()) {
            (true, true) => self.procs.stop(&mut self.pipeline),
            (true, false) => {}
            (false, _) => {
                if !self.procs.is_running() || self.procs.kinds() != uncovered.as_slice() {
                    let names: Vec<&str> = uncovered.iter().map(|k| k.name()).collect();
                    log::warn!(
                        "neither eBPF nor the audit subsystem serves {}: \
                         taking them from the netlink process connector",
                        names.join(", ")
                    );
                }
                if let Err(e) = self.procs.start(uncovered) {
                    let e = anyhow::Error::from(e);
                    let issue = format!("process events are not fully covered: {e:#}");
                    log::error!("{issue}");
                    self.issue.get_or_insert(issue);
                }
            }
        }
    }

    /// Our audit rules for exactly the kinds eBPF does not serve: none
    /// (rules and file removed) when eBPF serves them all.
    fn fit_audit_rules(&mut self) {
        let kinds = self.kinds_for_audit();
        if kinds.is_empty() {
            let cleared = match self.audit.rules.take() {
                Some(rules) => rules.stop(true),
                None => clear_ours(&self.host.ctl, &self.host.args.audit_rules_dir).map(drop),
            };
            if matches!(cleared, Err(AuditError::Immutable)) {
                // Known now: health says so without waiting for a status read.
                if let Some(s) = self.audit_status.as_mut() {
                    s.enabled = 2;
                }
            }
            self.issue = clearing_issue(cleared);
            return;
        }
        if self.ebpf.is_running() {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            log::warn!(
                "eBPF does not serve {}: the audit subsystem serves them",
                names.join(", ")
            );
        }
        if let Some(rules) = &mut self.audit.rules {
            if rules.kinds() == kinds.as_slice() {
                return;
            }
            if let Err(e) = rules.change_kinds(self.host.own_pid, kinds) {
                let issue = format!("the sensor cannot change its audit rules: {e}");
                log::error!("{issue}");
                self.issue = Some(issue);
            }
            return;
        }
        self.start_audit_rules(kinds);
    }

    fn start_audit_rules(&mut self, kinds: Vec<EventKind>) {
        if let Some(r) = &self.reason {
            log::warn!("falling back to the audit subsystem: {r}");
        }
        let h = &self.host;
        let started = AuditRules::start(h.ctl.clone(), &h.args.audit_rules_dir, h.own_pid, kinds);
        self.audit.rules_error = started.as_ref().err().map(|e| crate::error_text::chain(e));
        match started {
            Ok(rules) => self.audit.rules = Some(rules),
            Err(AuditError::Immutable) => {
                let wanted = if self.ebpf.is_running() {
                    ProviderKind::Mixed
                } else {
                    ProviderKind::Auditd
                };
                let issue = provider::immutable_remedy(wanted);
                log::error!("{issue}");
                self.issue = Some(issue);
            }
            Err(e) => {
                let issue = format!("the auditd provider cannot load its rules: {e}");
                log::error!("{issue}; login events are still read");
                self.issue = Some(issue);
            }
        }
    }

    /// Applies the provider setting of the running configuration.
    pub(super) fn apply_provider_setting(&mut self) {
        match (self.preselect(self.setting), self.provider_kind()) {
            (Err(reason), ProviderKind::Ebpf | ProviderKind::Mixed) => self.switch_to_audit(reason),
            // Changed back while a switch to eBPF loads: the load's
            // object is dropped when its thread is done.
            (Err(reason), _) if self.pending_ebpf.is_some() => {
                self.pending_ebpf = None;
                log::info!("switch to eBPF cancelled while its programs loaded: {reason}");
                self.reason = Some(reason);
            }
            (Ok(()), ProviderKind::Auditd) => self.switch_to_ebpf(),
            _ => log::info!(
                "configuration reloaded; provider unchanged ({})",
                self.provider_kind()
            ),
        }
    }

    /// Make: audit rules first. Break: then detach eBPF.
    fn switch_to_audit(&mut self, reason: FallbackReason) {
        self.pipeline.begin_overlap(Provider::Ebpf, SWITCH_OVERLAP);
        let why = reason.to_string();
        self.reason = Some(reason);
        let every: Vec<EventKind> = EventKind::ALL
            .into_iter()
            .filter(|k| !k.spec().audit_syscalls.is_empty())
            .collect();
        match &mut self.audit.rules {
            Some(rules) => {
                if let Err(e) = rules.change_kinds(self.host.own_pid, every) {
                    log::error!("switch to auditd failed ({e}); staying on eBPF");
                    self.reason = None;
                    return;
                }
            }
            None => self.start_audit_rules(every),
        }
        if self.audit.rules.is_none() {
            log::error!("switch to auditd failed; staying on eBPF");
            self.reason = None;
            return;
        }
        self.ebpf.drain(&mut self.pipeline);
        self.ebpf.stop(&mut self.pipeline);
        self.fit_proc_connector();
        log::info!(provider = "auditd", reason = why.as_str(); "provider switched: ebpf -> auditd (reason: {why})");
    }

    /// Make: attach eBPF first. Break: then read what the rules still
    /// produced and remove them. The programs load on a thread of their
    /// own (background_load.rs): the loop keeps reading the audit records
    /// meanwhile, and `finish_switch_to_ebpf` takes the loaded object.
    fn switch_to_ebpf(&mut self) {
        if let Some(load) = &self.pending_ebpf {
            log::info!(
                "a switch to eBPF is already loading the programs ({:.1} s so far)",
                load.elapsed().as_secs_f64()
            );
            return;
        }
        // The kernel's offer is probed again: what was missing at start
        // (tracefs not mounted yet, ...) may be there now.
        self.probed = KernelProbe::run(self.host.args.test_syscall_variant.map(Into::into));
        if let Err(r) = self.preselect(EbpfSetting::Enabled) {
            log::warn!("staying on auditd: {r}");
            self.reason = Some(r);
            return;
        }
        let delay = self
            .host
            .args
            .test_switch_load_delay_ms
            .map(Duration::from_millis);
        match BackgroundLoad::spawn(self.load_options(), delay) {
            Ok(load) => {
                log::info!(
                    "switching auditd -> ebpf: loading the eBPF programs; the audit rules serve the events until they are attached"
                );
                self.pending_ebpf = Some(load);
                self.reason = Some(FallbackReason::Loading);
            }
            Err(e) => self.switch_to_ebpf_failed(e),
        }
    }

    /// The switch's load is done: attach it, unless the setting changed
    /// meanwhile (then the object is dropped, its programs unloaded).
    pub(super) fn finish_switch_to_ebpf(&mut self, loaded: Result<EbpfSensor, EbpfError>) {
        let Some(load) = self.pending_ebpf.take() else {
            return;
        };
        let took = load.elapsed().as_secs_f64();
        if let Err(r) = self.preselect(self.setting) {
            log::info!(
                "the eBPF programs loaded in {took:.1} s are not used: {r} (changed while they loaded); staying on auditd"
            );
            self.reason = Some(r);
            return;
        }
        match loaded.and_then(|sensor| self.ebpf.attach(sensor, load.filters())) {
            Ok(()) => {
                // A reload while the programs loaded: its filters now.
                self.ebpf.apply_filters(&self.config.filters);
                self.pipeline
                    .begin_overlap(Provider::Auditd, SWITCH_OVERLAP);
                // Records of the audit rules still in flight.
                self.audit.report_syscalls(true);
                self.audit.drain(&mut self.pipeline);
                self.reason = None;
                self.fit_audit_rules();
                self.fit_proc_connector();
                let now = self.provider_kind().to_string();
                log::info!(provider = now.as_str(); "provider switched: auditd -> {now} (the programs loaded in {took:.1} s)");
            }
            Err(e) => self.switch_to_ebpf_failed(e),
        }
    }

    fn switch_to_ebpf_failed(&mut self, e: EbpfError) {
        let e = anyhow::Error::from(e).context("start the eBPF event provider");
        log::error!("switch to eBPF failed, staying on auditd: {e:#}");
        self.reason = Some(FallbackReason::LoadFailed(format!("{e:#}")));
    }

    pub(super) fn log_running(&self) {
        let line = match &self.reason {
            None => {
                let audit = self
                    .audit
                    .rules
                    .as_ref()
                    .map(|r| {
                        let names: Vec<&str> = r.kinds().iter().map(|k| k.name()).collect();
                        format!(" audit_kinds=[{}]", names.join(", "))
                    })
                    .unwrap_or_default();
                let active: Vec<&str> = self
                    .ebpf
                    .hooks()
                    .iter()
                    .filter(|h| h.attached())
                    .map(|h| h.hook.as_str())
                    .collect();
                let sizes = self
                    .ebpf
                    .map_sizes()
                    .map(|s| {
                        format!(
                            " ring_buffer={}B procs_table={} udp_flows_table={}",
                            s.ring_bytes, s.procs, s.udp_flows
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "sensor running: provider={} hooks=[{}]{sizes}{audit}",
                    self.provider_kind(),
                    active.join(", "),
                )
            }
            Some(reason) => format!(
                "sensor running: provider=auditd reason={:?} rules={}{}",
                reason.to_string(),
                if self.audit.rules.is_some() {
                    "loaded"
                } else {
                    "not loaded"
                },
                self.issue
                    .as_ref()
                    .map(|i| format!(" issue={i:?}"))
                    .unwrap_or_default()
            ),
        };
        log::info!(
            provider = self.provider_kind().to_string().as_str(),
            reason = self.reason.as_ref().map(|r| r.to_string()).unwrap_or_default().as_str();
            "{line}"
        );
    }

    pub(super) fn status_line(&self, events_per_sec: f64) -> String {
        let mut s = format!(
            "provider={} events/s={events_per_sec:.0}",
            self.provider_kind()
        );
        if let Some(r) = &self.reason {
            s.push_str(&format!(" reason: {r}"));
        }
        s
    }
}

/// The health issue (logged) when the eBPF provider could not clear the
/// sensor's audit rules; immutable audit gets its remedy.
fn clearing_issue(cleared: Result<(), AuditError>) -> Option<String> {
    let issue = match cleared {
        Ok(()) => return None,
        Err(AuditError::Immutable) => provider::immutable_remedy(ProviderKind::Ebpf),
        Err(e) => format!("cannot clear the sensor's audit rules: {e}"),
    };
    log::warn!("{issue}");
    Some(issue)
}
