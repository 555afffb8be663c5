//! The daemon's main loop: choose and start the event provider (eBPF, or
//! the audit subsystem with the reason), seed the process cache, then
//! drain events into the pipeline until SIGINT/SIGTERM. SIGHUP re-reads
//! the configuration and switches providers live, make-before-break.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::args::Args;
use crate::audit::Auditctl;
use crate::audit::source::{AuditReader, AuditRules, clear_ours};
use crate::bus::{BusCommand, HealthSnapshot};
use crate::clock::HostClock;
use crate::ebpf::{BpfCounters, EbpfSensor, LoadOptions};
use crate::event::Provider;
use crate::filters::KernelFilters;
use crate::pipeline::Pipeline;
use crate::process_cache::ProcessCache;
use crate::procfs;
use crate::provider::support::OsRelease;
use crate::provider::{self, EbpfSetting, FallbackReason, ProviderKind};
use crate::sink::{JsonLines, Sink};

/// Tail latency bound for events below the wake-up threshold.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
const AUDIT_STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// How long both providers' events are compared during a switch.
const SWITCH_OVERLAP: Duration = Duration::from_secs(3);

type Out = Pipeline<Box<dyn Sink + Send>>;

struct EbpfRuntime {
    sensor: EbpfSensor,
    ring: AsyncFd<RingBuf<MapData>>,
}

/// What runs now, and why.
struct Providers {
    ebpf: Option<EbpfRuntime>,
    audit_rules: Option<AuditRules>,
    reason: Option<FallbackReason>,
    /// A problem an admin must act on (immutable audit, ...).
    issue: Option<String>,
}

impl Providers {
    fn kind(&self) -> ProviderKind {
        if self.ebpf.is_some() {
            ProviderKind::Ebpf
        } else {
            ProviderKind::Auditd
        }
    }
}

struct Env {
    args: Args,
    /// The provider setting in force (configuration or flag).
    setting: Mutex<EbpfSetting>,
    last_audit_status: Mutex<Option<crate::audit::AuditStatus>>,
    filters: KernelFilters,
    os: OsRelease,
    kernel: String,
    ctl: Auditctl,
    own_pid: u32,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    raise_memlock_limit();
    let clock = HostClock::from_system().context("read boot id and clocks")?;
    let sink: Box<dyn Sink + Send> = match args.event_output() {
        None => Box::new(JsonLines::stdout()),
        Some(path) => Box::new(
            JsonLines::append(&path)
                .with_context(|| format!("open event output {}", path.display()))?,
        ),
    };
    let loaded = crate::config::load(&args.config_paths()).map_err(|e| anyhow!("{e}"))?;
    let filters = loaded.filters.clone();
    let setting = match args.ebpf_supplementary_event_provider.as_deref() {
        None => loaded.settings.ebpf_supplementary_event_provider,
        Some("enabled") => EbpfSetting::Enabled,
        Some("disabled") => EbpfSetting::Disabled,
        Some(other) => {
            return Err(anyhow!(
                "--ebpf-supplementary-event-provider {other}: expected enabled or disabled"
            ));
        }
    };
    let env = Env {
        setting: Mutex::new(setting),
        last_audit_status: Mutex::new(None),
        os: os_release(args.test_os_release.as_deref()),
        kernel: match &args.test_kernel_release {
            Some(r) => r.clone(),
            None => nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .context("uname")?,
        },
        ctl: Auditctl::default().with_enabled_override(args.test_audit_enabled),
        own_pid: std::process::id(),
        filters,
        args,
    };

    let mut providers = Providers {
        ebpf: None,
        audit_rules: None,
        reason: None,
        issue: None,
    };
    let mut counters = None;
    // Attach before the /proc snapshot so that no process falls between
    // the two: anything started after the snapshot is seen by the probes.
    match provider::preselect(setting, &env.os, &env.kernel) {
        Ok(()) => match start_ebpf(&env) {
            Ok((rt, c)) => {
                providers.ebpf = Some(rt);
                counters = Some(c);
            }
            Err(e) => providers.reason = Some(FallbackReason::LoadFailed(format!("{e:#}"))),
        },
        Err(reason) => providers.reason = Some(reason),
    }
    if providers.ebpf.is_some() {
        providers.issue = clearing_issue(clear_ours(&env.ctl, &env.args.audit_rules_dir).map(drop));
    } else {
        start_audit_rules(&env, &mut providers);
    }

    let snapshot = procfs::snapshot(Path::new("/proc")).context("snapshot /proc")?;
    if let Some(rt) = &mut providers.ebpf {
        let excluded = rt.sensor.exclude_running(&env.filters, &snapshot)?;
        if excluded > 0 {
            log::info!("{excluded} running processes have an excluded executable");
        }
    }
    let mut cache = ProcessCache::new();
    cache.seed(snapshot);
    log::info!("process cache seeded with {} processes", cache.len());

    let mut pipeline: Out = Pipeline::new(
        clock,
        cache,
        sink,
        counters.map(|c| Box::new(c) as Box<dyn crate::loss::KernelCounters + Send>),
    );
    let mut audit = match AuditReader::open() {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!(
                "login events unavailable: cannot read the audit netlink multicast group: {e}"
            );
            None
        }
    };
    let mut audit_lost_base = None;
    match env.ctl.status() {
        Ok(s) => {
            env.refresh_audit_status();
            audit_lost_base = Some(s.lost);
            if s.enabled == 0 && providers.ebpf.is_some() {
                log::warn!(
                    "login events unavailable: audit is disabled in the kernel (enabled 0); enable it with auditctl -e 1 or audit=1 on the kernel command line"
                );
            }
        }
        Err(e) => log::warn!(
            "audit status unavailable ({e}); login events and the audit fallback need auditd's tools"
        ),
    }

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let mut sigusr2 = signal(SignalKind::user_defined2())?;
    // Missed ticks are skipped, not made up in a burst: under a flood a
    // drain pass outlasts the poll period, and a burst of ready ticks
    // would keep the loop from yielding to the signal and I/O drivers.
    let interval = |period| {
        let mut i = tokio::time::interval(period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        i
    };
    let mut poll = interval(POLL_INTERVAL);
    let mut housekeeping = interval(HOUSEKEEPING_INTERVAL);
    let mut audit_status = interval(AUDIT_STATUS_INTERVAL);

    let health = Arc::new(Mutex::new(HealthSnapshot::default()));
    let (bus_tx, mut bus_rx) = tokio::sync::mpsc::unbounded_channel();
    let bus = match crate::bus::start(
        Arc::clone(&health),
        env.args.config_paths(),
        env.args.log_dir.join("diag"),
        bus_tx,
    )
    .await
    {
        Ok(b) => Some(b),
        Err(e) => {
            log::warn!(
                "D-Bus API unavailable: cannot own org.mdatp.Sensor1 on the system bus: {e}"
            );
            None
        }
    };
    let mut config_errors: Vec<String> = Vec::new();
    update_health(
        &health,
        &providers,
        &pipeline,
        &env,
        &audit,
        bus.is_some(),
        &config_errors,
    );
    log::info!(
        provider = providers.kind().to_string().as_str(),
        reason = providers.reason.as_ref().map(|r| r.to_string()).unwrap_or_default().as_str();
        "{}",
        running_line(&providers, &env)
    );
    crate::systemd::ready(&status_line(&providers, 0.0));
    let mut watchdog = crate::systemd::watchdog_interval().map(interval);
    let mut delivered_at_last_status = pipeline.delivered_total();

    loop {
        tokio::select! {
            _ = ring_ready(&providers.ebpf) => drain_ebpf(&mut providers, &mut pipeline),
            _ = audit_ready(&audit) => drain_audit(&mut audit, providers.ebpf.is_none(), &mut pipeline),
            _ = poll.tick() => {
                drain_ebpf(&mut providers, &mut pipeline);
                drain_audit(&mut audit, providers.ebpf.is_none(), &mut pipeline);
            }
            _ = housekeeping.tick() => {
                pipeline.tick();
                update_health(&health, &providers, &pipeline, &env, &audit, bus.is_some(), &config_errors);
            }
            Some(cmd) = bus_rx.recv() => match cmd {
                BusCommand::Reload => {
                    config_errors =
                        reload_and_report(&env, &mut providers, &mut pipeline, &mut audit, &bus, &health).await;
                }
            },
            _ = audit_status.tick() => {
                if let (Some(base), Some(s), Some(a)) = (audit_lost_base, env.refresh_audit_status(), audit.as_mut()) {
                    a.loss.kernel_lost = s.lost.saturating_sub(base);
                }
                let total = pipeline.delivered_total();
                let rate = (total - delivered_at_last_status) as f64 / AUDIT_STATUS_INTERVAL.as_secs_f64();
                delivered_at_last_status = total;
                crate::systemd::status(&status_line(&providers, rate));
            }
            _ = tick_opt(&mut watchdog) => crate::systemd::watchdog(),
            _ = sigusr1.recv() => log::info!("loss totals: {}{}", pipeline.loss_summary(), audit_summary(&audit, &pipeline)),
            _ = sigusr2.recv() => log::info!("{}", pipeline.hot_sources()),
            _ = sighup.recv() => {
                config_errors =
                    reload_and_report(&env, &mut providers, &mut pipeline, &mut audit, &bus, &health).await;
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }

    crate::systemd::stopping();
    log::info!("stopping");
    // Programs detach here, before the final count.
    let hooks = providers
        .ebpf
        .take()
        .map(|rt| detach_ebpf(rt, &mut pipeline))
        .unwrap_or(0);
    if let Some(rules) = providers.audit_rules.take() {
        // Records already in flight are read before the rules go.
        drain_audit(&mut audit, true, &mut pipeline);
        if let Err(e) = rules.stop(false) {
            log::warn!("removing the sensor's audit rules: {e}");
        }
    }
    pipeline.tick();
    pipeline.flush();
    log::info!(
        "loss totals: {}{}",
        pipeline.loss_summary(),
        audit_summary(&audit, &pipeline)
    );
    log::info!("{}", pipeline.hot_sources());
    log::info!("stopped: {hooks} hooks detached");
    Ok(())
}

fn running_line(p: &Providers, env: &Env) -> String {
    match (&p.ebpf, &p.reason) {
        (Some(rt), _) => {
            let active: Vec<&str> = rt
                .sensor
                .hooks
                .iter()
                .filter(|h| h.error.is_none())
                .map(|h| h.hook.as_str())
                .collect();
            format!(
                "sensor running: provider=ebpf hooks=[{}] ring_buffer={}B",
                active.join(", "),
                env.args.ring_buffer_size
            )
        }
        (None, reason) => format!(
            "sensor running: provider=auditd reason={:?} rules={}{}",
            reason.as_ref().map(|r| r.to_string()).unwrap_or_default(),
            if p.audit_rules.is_some() {
                "loaded"
            } else {
                "not loaded"
            },
            p.issue
                .as_ref()
                .map(|i| format!(" issue={i:?}"))
                .unwrap_or_default()
        ),
    }
}

impl Env {
    /// The last audit status read (refreshed every AUDIT_STATUS_INTERVAL
    /// and on reload: each read runs auditctl).
    fn audit_status(&self) -> Option<crate::audit::AuditStatus> {
        self.last_audit_status.lock().ok().and_then(|s| *s)
    }

    fn refresh_audit_status(&self) -> Option<crate::audit::AuditStatus> {
        let s = self.ctl.status().ok();
        if let Ok(mut last) = self.last_audit_status.lock() {
            *last = s;
        }
        s
    }

    fn setting_now(&self) -> String {
        match self.setting.lock().map(|s| *s) {
            Ok(EbpfSetting::Disabled) => "disabled".into(),
            _ => "enabled".into(),
        }
    }
}

fn status_line(p: &Providers, events_per_sec: f64) -> String {
    let mut s = format!("provider={} events/s={events_per_sec:.0}", p.kind());
    if let Some(r) = &p.reason {
        s.push_str(&format!(" reason: {r}"));
    }
    s
}

async fn tick_opt(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn start_ebpf(env: &Env) -> anyhow::Result<(EbpfRuntime, BpfCounters)> {
    let mut sensor = EbpfSensor::load(&LoadOptions {
        ring_buffer_bytes: env.args.ring_buffer_size,
        wakeup_bytes: env.args.wakeup_bytes,
        break_programs: env.args.test_break_program.clone(),
        filters: env.filters.clone(),
    })
    .context("start the eBPF event provider")?;
    let ring = sensor.take_ring()?;
    let counters = sensor.take_counters()?;
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
    // until the AsyncFd (which owns the RingBuf) is dropped.
    let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow!("register the ring buffer with tokio: {e}"))?;
    Ok((EbpfRuntime { sensor, ring }, counters))
}

/// The health issue (logged) when the eBPF provider could not clear the
/// sensor's audit rules; immutable audit gets its remedy.
fn clearing_issue(cleared: Result<(), crate::audit::AuditError>) -> Option<String> {
    let issue = match cleared {
        Ok(()) => return None,
        Err(crate::audit::AuditError::Immutable) => provider::immutable_remedy(ProviderKind::Ebpf),
        Err(e) => format!("cannot clear the sensor's audit rules: {e}"),
    };
    log::warn!("{issue}");
    Some(issue)
}

fn start_audit_rules(env: &Env, p: &mut Providers) {
    if let Some(r) = &p.reason {
        log::warn!("falling back to the audit subsystem: {r}");
    }
    match AuditRules::start(env.ctl.clone(), &env.args.audit_rules_dir, env.own_pid) {
        Ok(rules) => p.audit_rules = Some(rules),
        Err(crate::audit::AuditError::Immutable) => {
            let issue = provider::immutable_remedy(ProviderKind::Auditd);
            log::error!("{issue}");
            p.issue = Some(issue);
        }
        Err(e) => {
            let issue = format!("the auditd provider cannot load its rules: {e}");
            log::error!("{issue}; login events are still read");
            p.issue = Some(issue);
        }
    }
}

/// A reload as systemd and D-Bus see it: RELOADING, the reload, the
/// provider-change signals, fresh health, READY. Returns the problems of
/// a refused configuration.
async fn reload_and_report(
    env: &Env,
    providers: &mut Providers,
    pipeline: &mut Out,
    audit: &mut Option<AuditReader>,
    bus: &Option<crate::bus::Bus>,
    health: &Arc<Mutex<HealthSnapshot>>,
) -> Vec<String> {
    crate::systemd::reloading();
    let before = providers.kind();
    let errors = reload(env, providers, pipeline, audit);
    env.refresh_audit_status();
    announce(bus, before, providers).await;
    update_health(
        health,
        providers,
        pipeline,
        env,
        audit,
        bus.is_some(),
        &errors,
    );
    crate::systemd::ready(&status_line(providers, 0.0));
    errors
}

/// Detaches eBPF (dropping the object unloads every program), then reads
/// what the ring still holds. Returns how many hooks were attached.
fn detach_ebpf(rt: EbpfRuntime, pipeline: &mut Out) -> usize {
    let n = rt.sensor.hooks.iter().filter(|h| h.error.is_none()).count();
    let mut ring = rt.ring;
    drop(rt.sensor);
    log::debug!("eBPF programs detached; reading what the ring still holds");
    // Detached: the ring only holds what is left; read it all.
    while drain_ring(&mut ring, pipeline) == DRAIN_BATCH {}
    n
}

/// After a reload: tell D-Bus listeners when the provider changed.
async fn announce(bus: &Option<crate::bus::Bus>, before: ProviderKind, p: &Providers) {
    let now = p.kind();
    if let (Some(bus), true) = (bus, before != now) {
        let reason = p
            .reason
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "eBPF enabled".into());
        bus.provider_changed(&before.to_string(), &now.to_string(), &reason)
            .await;
    }
}

/// What Health() and the properties report, from the running state.
fn update_health(
    health: &Arc<Mutex<HealthSnapshot>>,
    p: &Providers,
    pipeline: &Out,
    env: &Env,
    audit: &Option<AuditReader>,
    bus_up: bool,
    config_errors: &[String],
) {
    let mut issues = Vec::new();
    if let Some(i) = &p.issue {
        issues.push(i.clone());
    }
    let (active, failed) = match &p.ebpf {
        Some(rt) => (
            rt.sensor
                .hooks
                .iter()
                .filter(|h| h.error.is_none())
                .map(|h| h.hook.clone())
                .collect(),
            rt.sensor
                .hooks
                .iter()
                .filter_map(|h| h.error.as_ref().map(|e| format!("{}: {e}", h.hook)))
                .collect::<Vec<_>>(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    if !failed.is_empty() {
        issues.push(format!("{} eBPF hooks failed to attach", failed.len()));
    }
    if !config_errors.is_empty() {
        issues.push("the last configuration reload was refused (see config_errors)".into());
    }
    if !bus_up {
        issues.push("D-Bus API unavailable".into());
    }
    let status = env.audit_status();
    let login_events = match (status, audit) {
        (_, None) => "unavailable: cannot read the audit netlink multicast group".to_string(),
        (Some(s), _) if s.enabled == 0 && p.ebpf.is_some() => {
            "unavailable: audit is disabled in the kernel (enabled 0)".to_string()
        }
        (None, _) => "unknown: audit status unavailable (auditctl)".to_string(),
        _ => "available".to_string(),
    };
    let mut loss = pipeline.loss_map();
    if let Some(a) = audit {
        for (k, v) in [
            ("audit_kernel_lost", a.loss.kernel_lost),
            ("audit_socket_overflows", a.loss.socket_overflows),
            ("audit_incomplete_events", a.loss.incomplete_events),
        ] {
            if v > 0 {
                loss.insert(k.to_string(), v);
            }
        }
    }
    let mut event_sources = BTreeMap::new();
    for (_, name) in mdatp_bpf::EVENT_TYPES {
        let source = match &p.ebpf {
            Some(rt) => {
                let attached = |prefix: &str| {
                    rt.sensor
                        .hooks
                        .iter()
                        .any(|h| h.error.is_none() && h.hook.contains(prefix))
                };
                let hook = match *name {
                    "process_exec" => "sched_process_exec",
                    "process_fork" => "sched_process_fork",
                    "process_exit" => "sched_process_exit",
                    "file_open" | "file_open_folded" => "sys_exit_open",
                    "file_delete" => "sys_exit_unlink",
                    "file_rename" => "sys_exit_rename",
                    "file_mkdir" => "sys_exit_mkdir",
                    "file_chmod" => "sys_exit_chmod",
                    "file_chown" => "sys_exit_chown",
                    "file_link" => "sys_exit_link",
                    "file_symlink" => "sys_exit_symlink",
                    "network_connect" => "sys_exit_connect",
                    "network_accept" => "sys_exit_accept",
                    "network_listen" => "sys_exit_listen",
                    "network_bind" => "sys_exit_bind",
                    "network_udp_send" => "sys_exit_send",
                    _ => "sys_exit_recv",
                };
                if attached(hook) {
                    "ebpf"
                } else {
                    "unavailable"
                }
            }
            None if p.audit_rules.is_none() => "unavailable",
            None => match *name {
                "process_fork" | "file_open_folded" | "network_udp_send" | "network_udp_recv" => {
                    "unavailable"
                }
                _ => "auditd",
            },
        };
        event_sources.insert(name.to_string(), source.to_string());
    }
    event_sources.insert(
        "login".into(),
        if login_events == "available" {
            "auditd (PAM records)"
        } else {
            "unavailable"
        }
        .into(),
    );
    let event_output = env
        .args
        .event_output()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdout".into());
    let snap = HealthSnapshot {
        event_sources,
        event_output,
        healthy: issues.is_empty(),
        issues,
        subsystem: p.kind().to_string(),
        setting: env.setting_now(),
        fallback_reason: p.reason.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        active_hooks: active,
        failed_hooks: failed,
        events_delivered: pipeline.delivered_map(),
        loss,
        audit_enabled: status.map(|s| s.enabled),
        audit_rules_loaded: p.audit_rules.is_some(),
        login_events,
        config_errors: config_errors.to_vec(),
        kernel: env.kernel.clone(),
    };
    if let Ok(mut h) = health.lock() {
        *h = snap;
    }
}

/// SIGHUP / D-Bus Reload: re-read the configuration; a changed provider
/// setting switches providers live. A bad tree is refused, everything
/// keeps running, and the problems are returned (for health).
fn reload(
    env: &Env,
    p: &mut Providers,
    pipeline: &mut Out,
    audit: &mut Option<AuditReader>,
) -> Vec<String> {
    let config = match crate::config::load(&env.args.config_paths()) {
        Ok(c) => c.settings,
        Err(e) => {
            log::error!("reload refused, keeping the running configuration: {e}");
            return e.0.iter().map(|p| p.to_string()).collect();
        }
    };
    if let Ok(mut s) = env.setting.lock() {
        *s = config.ebpf_supplementary_event_provider;
    }
    match (config.ebpf_supplementary_event_provider, p.kind()) {
        (EbpfSetting::Disabled, ProviderKind::Ebpf) => {
            // Make: audit rules first. Break: then detach eBPF.
            pipeline.begin_overlap(Provider::Ebpf, SWITCH_OVERLAP);
            p.reason = Some(FallbackReason::Disabled);
            start_audit_rules(env, p);
            if p.audit_rules.is_none() {
                log::error!("switch to auditd failed; staying on eBPF");
                p.reason = None;
                return Vec::new();
            }
            drain_ebpf(p, pipeline);
            if let Some(rt) = p.ebpf.take() {
                detach_ebpf(rt, pipeline);
            }
            pipeline.set_counters(None);
            log::info!(provider = "auditd", reason = "disabled by configuration"; "provider switched: ebpf -> auditd (reason: disabled by configuration)");
        }
        (EbpfSetting::Enabled, ProviderKind::Auditd) => {
            if let Err(r) = provider::preselect(EbpfSetting::Enabled, &env.os, &env.kernel) {
                log::warn!("staying on auditd: {r}");
                p.reason = Some(r);
                return Vec::new();
            }
            match start_ebpf(env) {
                Ok((rt, counters)) => {
                    pipeline.begin_overlap(Provider::Auditd, SWITCH_OVERLAP);
                    p.ebpf = Some(rt);
                    pipeline.set_counters(Some(Box::new(counters)));
                    // Records of the audit rules still in flight.
                    drain_audit(audit, true, pipeline);
                    let cleared = match p.audit_rules.take() {
                        Some(rules) => rules.stop(true),
                        None => clear_ours(&env.ctl, &env.args.audit_rules_dir).map(drop),
                    };
                    p.reason = None;
                    p.issue = clearing_issue(cleared);
                    log::info!(provider = "ebpf"; "provider switched: auditd -> ebpf");
                }
                Err(e) => {
                    log::error!("switch to eBPF failed, staying on auditd: {e:#}");
                    p.reason = Some(FallbackReason::LoadFailed(format!("{e:#}")));
                }
            }
        }
        _ => log::info!("configuration reloaded; provider unchanged ({})", p.kind()),
    }
    Vec::new()
}

async fn ring_ready(e: &Option<EbpfRuntime>) {
    match e {
        Some(rt) => {
            if let Ok(mut g) = rt.ring.readable().await {
                g.clear_ready();
            }
        }
        None => std::future::pending().await,
    }
}

async fn audit_ready(a: &Option<AuditReader>) {
    match a {
        Some(r) => {
            if r.readable().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

fn drain_ebpf(p: &mut Providers, pipeline: &mut Out) {
    if let Some(rt) = &mut p.ebpf {
        drain_ring(&mut rt.ring, pipeline);
    }
}

/// Records handled per drain pass: under a flood the ring never empties,
/// and the loop must get back to signals, timers and flushes.
const DRAIN_BATCH: usize = 32_768;

/// Longest a drain pass may take before the loop services everything else.
const DRAIN_TIME: Duration = Duration::from_millis(20);

/// One bounded pass over the ring; returns how many records it handled
/// (DRAIN_BATCH when it stopped because of a bound, not because the ring
/// was empty).
fn drain_ring(ring: &mut AsyncFd<RingBuf<MapData>>, pipeline: &mut Out) -> usize {
    let ring = ring.get_mut();
    let start = Instant::now();
    let mut n = 0usize;
    while n < DRAIN_BATCH {
        let Some(item) = ring.next() else { break };
        pipeline.handle_bytes(&item);
        n += 1;
        if n.is_multiple_of(256) && start.elapsed() > DRAIN_TIME {
            n = DRAIN_BATCH;
            break;
        }
    }
    if n > 0 {
        pipeline.flush();
    }
    n
}

/// `syscalls`: our syscall records are reported (eBPF is not running, or
/// a switch away from auditd is draining them); login records always are.
fn drain_audit(audit: &mut Option<AuditReader>, syscalls: bool, pipeline: &mut Out) {
    let Some(reader) = audit else { return };
    let events = reader.drain(Instant::now());
    if events.is_empty() {
        return;
    }
    for ev in &events {
        pipeline.handle_audit(ev, syscalls);
    }
    pipeline.flush();
}

fn audit_summary(audit: &Option<AuditReader>, pipeline: &Out) -> String {
    match audit {
        Some(a) => format!(
            "; audit: kernel lost={} socket overflows={} malformed records={} incomplete events={} skipped={:?}",
            a.loss.kernel_lost,
            a.loss.socket_overflows,
            a.loss.malformed_records,
            a.loss.incomplete_events,
            pipeline.audit_skipped
        ),
        None => "; audit: not read".into(),
    }
}

fn os_release(test: Option<&Path>) -> OsRelease {
    let path = test
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/os-release"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        log::warn!(
            "cannot read {} ({e}); the support table is not applied",
            path.display()
        );
        String::new()
    });
    OsRelease::parse(&text)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
fn raise_memlock_limit() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: lim is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        log::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}
