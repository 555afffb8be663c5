//! The daemon as one owner of the running state: the loaded
//! configuration (every key), the sources, the pipeline and the health.
//! Signals, timers and D-Bus calls are commands to it (`commands.rs`);
//! provider selection and switching are in `providers.rs`, the health
//! report in `health.rs`.

mod commands;
mod health;
mod providers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::health_cell::HealthCell;
use anyhow::{Context, anyhow};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::args::Args;
use crate::audit::source::AuditSource;
use crate::audit::{AuditError, AuditStatus, Auditctl};
use crate::bus::{Bus, BusCommand};
use crate::clock::HostClock;
use crate::cnproc::ProcConnectorSource;
use crate::config::{ConfigProblem, LoadedConfig};
use crate::ebpf::probe::KernelProbe;
use crate::ebpf::{BackgroundLoad, EbpfError, EbpfSensor, EbpfSource};
use crate::enrich::Enricher;
use crate::exclusions::Exclusions;
use crate::pipeline::Pipeline;
use crate::process_cache::ProcessCache;
use crate::procfs;
use crate::provider::support::OsRelease;
use crate::provider::{EbpfSetting, FallbackReason};
use crate::sink::{OutputContext, Outputs};
use crate::source::EventSource;

/// Tail latency bound for events below the wake-up threshold.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
const AUDIT_STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// `auditctl -s` answers from the blocking pool.
struct StatusReads {
    tx: mpsc::UnboundedSender<Result<AuditStatus, AuditError>>,
    rx: mpsc::UnboundedReceiver<Result<AuditStatus, AuditError>>,
    in_flight: bool,
    /// Asked again while a read was out: that read may predate the change
    /// (a reload, `auditctl -e 2`), so one more follows its answer.
    again: bool,
}

impl StatusReads {
    fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx,
            in_flight: false,
            again: false,
        }
    }
}

/// How long the stop may spend reading audit records already queued.
const STOP_DRAIN: Duration = Duration::from_secs(5);

/// What does not change while the daemon runs.
struct Host {
    args: Args,
    os: OsRelease,
    kernel: String,
    ctl: Auditctl,
    own_pid: u32,
}

pub struct Daemon {
    host: Host,
    /// The one running configuration: validated once, applied whole.
    config: LoadedConfig,
    /// The provider setting in force (configuration, or the flag at start).
    setting: EbpfSetting,
    ebpf: EbpfSource,
    audit: AuditSource,
    /// Process events where neither of the above can serve them.
    procs: ProcConnectorSource,
    /// eBPF was loaded once (test refusals apply to the first load only).
    ebpf_loaded_before: bool,
    /// A live switch to eBPF whose programs are loading (providers.rs).
    pending_ebpf: Option<BackgroundLoad>,
    /// What the kernel offers eBPF: probed at start and before every
    /// switch back to eBPF.
    probed: KernelProbe,
    /// Why eBPF does not serve the events (None while it does).
    reason: Option<FallbackReason>,
    /// A problem an admin must act on (immutable audit, ...).
    issue: Option<String>,
    pipeline: Pipeline,
    config_errors: Vec<ConfigProblem>,
    audit_status: Option<AuditStatus>,
    audit_lost_base: Option<u64>,
    /// `auditctl -s` runs off the loop; its answers come back here.
    status_reads: StatusReads,
    health: Arc<HealthCell>,
    bus: Option<Bus>,
    /// The sensor's own CPU, memory and BPF memory (health `resources`).
    usage: Mutex<crate::own_usage::OwnUsage>,
}

impl Daemon {
    /// Loads the configuration, starts the sources (eBPF before the /proc
    /// snapshot, so that no process falls between the two) and the bus.
    pub async fn start(args: Args) -> anyhow::Result<(Self, mpsc::UnboundedReceiver<BusCommand>)> {
        raise_memlock_limit();
        let clock = HostClock::from_system().context("read boot id and clocks")?;
        let config = crate::config::load(&args.config_paths()).map_err(|e| anyhow!("{e}"))?;
        let outputs = Outputs::open(
            OutputContext {
                hostname: nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                event_path: args.event_output(),
                state_dir: args.state_dir.clone(),
            },
            &config.settings.output,
        )
        .context("start the event outputs")?;
        let setting = match args.ebpf_supplementary_event_provider.as_deref() {
            None => config.settings.ebpf_supplementary_event_provider,
            Some("enabled") => EbpfSetting::Enabled,
            Some("disabled") => EbpfSetting::Disabled,
            Some(other) => {
                return Err(anyhow!(
                    "--ebpf-supplementary-event-provider {other}: expected enabled or disabled"
                ));
            }
        };
        let host = Host {
            os: os_release(args.test_os_release.as_deref()),
            kernel: match &args.test_kernel_release {
                Some(r) => r.clone(),
                None => nix::sys::utsname::uname()
                    .map(|u| u.release().to_string_lossy().into_owned())
                    .context("uname")?,
            },
            ctl: Auditctl::default()
                .with_bin(args.test_auditctl.clone())
                .with_enabled_override(args.test_audit_enabled),
            own_pid: std::process::id(),
            args,
        };
        let probed = KernelProbe::run(host.args.test_syscall_variant.map(Into::into));
        let detail = config.settings.output.detail;
        let mut daemon = Daemon {
            ebpf: EbpfSource::new(clock.clone()),
            audit: AuditSource::default(),
            procs: ProcConnectorSource::default(),
            ebpf_loaded_before: false,
            pending_ebpf: None,
            probed,
            pipeline: Pipeline::with_outputs(Enricher::new(clock, ProcessCache::new()), outputs)
                .with_detail(detail),
            host,
            config,
            setting,
            reason: None,
            issue: None,
            config_errors: Vec::new(),
            audit_status: None,
            audit_lost_base: None,
            status_reads: StatusReads::new(),
            health: Arc::default(),
            usage: Mutex::default(),
            bus: None,
        };
        daemon
            .pipeline
            .set_exclusions(Exclusions::new(&daemon.config.filters));
        // One reader for the daemon's life, open before the provider
        // selection: whether audit serves a kind depends on it (and the
        // process connector on that).
        daemon.audit = AuditSource::open();
        daemon.select_initial_provider();
        daemon.seed_processes()?;
        daemon.read_audit_status_at_start();
        let (tx, rx) = mpsc::unbounded_channel();
        daemon.bus = match crate::bus::start(
            Arc::clone(&daemon.health),
            daemon.host.args.log_dir.join("diag"),
            tx,
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
        daemon.update_health();
        Ok((daemon, rx))
    }

    fn seed_processes(&mut self) -> anyhow::Result<()> {
        let snapshot = procfs::snapshot(Path::new("/proc")).context("snapshot /proc")?;
        let n = snapshot.len();
        self.pipeline.seed(snapshot);
        log::info!("process cache seeded with {n} processes");
        Ok(())
    }

    fn read_audit_status_at_start(&mut self) {
        match self.host.ctl.status() {
            Ok(s) => {
                self.audit_status = Some(s);
                self.audit_lost_base = Some(s.lost);
                if s.enabled == 0 && self.ebpf.is_running() {
                    log::warn!(
                        "login events unavailable: audit is disabled in the kernel (enabled 0); enable it with auditctl -e 1 or audit=1 on the kernel command line"
                    );
                }
            }
            Err(e) => log::warn!(
                "audit status unavailable ({e}); login events and the audit fallback need auditd's tools"
            ),
        }
    }

    /// Asks for a fresh audit status: auditctl runs off the loop (a slow
    /// one delays only the status, never the events); the answer comes
    /// back through `status_reads` into `apply_audit_status`.
    fn request_audit_status(&mut self) {
        let r = &mut self.status_reads;
        if r.in_flight {
            r.again = true;
            return;
        }
        r.in_flight = true;
        let ctl = self.host.ctl.clone();
        let tx = r.tx.clone();
        tokio::task::spawn_blocking(move || {
            let _ = tx.send(ctl.status());
        });
    }

    /// A fresh audit status: kept for health; the kernel's `lost` counter
    /// growth becomes a loss record.
    fn apply_audit_status(&mut self, status: Result<AuditStatus, AuditError>) {
        if let Err(e) = &status {
            log::debug!("audit status: {e}");
        }
        self.audit_status = status.ok();
        if let (Some(base), Some(s), Some(r)) = (
            self.audit_lost_base,
            self.audit_status,
            self.audit.reader.as_mut(),
        ) {
            let lost = s.lost.saturating_sub(base);
            let grown = lost.saturating_sub(r.loss.kernel_lost);
            r.loss.kernel_lost = lost;
            if grown > 0 {
                log::warn!("the kernel lost {grown} audit records (backlog full or rate limit)");
                self.pipeline.submit(crate::audit::loss::kernel_lost(grown));
                self.pipeline.flush();
            }
        }
    }

    /// Syscall records of our key are reported while our rules serve kinds
    /// or eBPF does not run (a switch away from audit drains them itself).
    fn drain_audit(&mut self) {
        self.audit
            .report_syscalls(self.audit.rules.is_some() || !self.ebpf.is_running());
        self.audit.drain(&mut self.pipeline);
    }

    fn loss_totals(&self) -> String {
        format!(
            "{}{}",
            self.ebpf.summary(&self.pipeline),
            self.audit.summary()
        )
    }

    /// Runs until SIGINT/SIGTERM, then detaches everything.
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<BusCommand>,
    ) -> anyhow::Result<()> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sighup = signal(SignalKind::hangup())?;
        let mut sigusr1 = signal(SignalKind::user_defined1())?;
        let mut sigusr2 = signal(SignalKind::user_defined2())?;
        let mut poll = interval(POLL_INTERVAL);
        let mut housekeeping = interval(HOUSEKEEPING_INTERVAL);
        let mut audit_status = interval(AUDIT_STATUS_INTERVAL);
        let mut watchdog = crate::systemd::watchdog_interval().map(interval);
        self.log_running();
        crate::systemd::ready(&self.status_line(0.0));
        let mut delivered_at_last_status = self.pipeline.delivered_total();
        // A source whose last drain stopped at its bound with more waiting
        // is drained again in turn with the other branches: its readiness
        // may not come back (the ring wakes once per batch of records).
        // Through `yield_now`, not an always-ready future: the runtime
        // polls its driver (signals, timers, sockets) before resuming, so
        // SIGTERM is still taken during a flood (tests/loss.rs).
        let (mut ebpf_more, mut procs_more) = (false, false);

        loop {
            tokio::select! {
                _ = self.ebpf.readable() => {
                    ebpf_more = self.ebpf.drain(&mut self.pipeline);
                }
                _ = tokio::task::yield_now(), if ebpf_more => {
                    ebpf_more = self.ebpf.drain(&mut self.pipeline);
                }
                _ = self.audit.readable() => self.drain_audit(),
                _ = self.procs.readable() => procs_more = self.procs.drain(&mut self.pipeline),
                _ = tokio::task::yield_now(), if procs_more => {
                    procs_more = self.procs.drain(&mut self.pipeline);
                }
                _ = poll.tick() => {
                    ebpf_more = self.ebpf.drain(&mut self.pipeline);
                    self.drain_audit();
                }
                _ = housekeeping.tick() => {
                    self.pipeline.tick();
                    self.ebpf.tick(&mut self.pipeline);
                    self.update_health();
                }
                Some(cmd) = commands.recv() => self.command(cmd).await,
                loaded = pending_load(&mut self.pending_ebpf), if self.pending_ebpf.is_some() => {
                    let before = self.provider_kind();
                    self.finish_switch_to_ebpf(loaded);
                    self.announce(before).await;
                    self.update_health();
                    crate::systemd::status(&self.status_line(0.0));
                }
                _ = audit_status.tick() => self.request_audit_status(),
                Some(status) = self.status_reads.rx.recv() => {
                    self.status_reads.in_flight = false;
                    self.apply_audit_status(status);
                    self.update_health();
                    if std::mem::take(&mut self.status_reads.again) {
                        self.request_audit_status();
                    }
                    let total = self.pipeline.delivered_total();
                    let rate = (total - delivered_at_last_status) as f64 / AUDIT_STATUS_INTERVAL.as_secs_f64();
                    delivered_at_last_status = total;
                    crate::systemd::status(&self.status_line(rate));
                }
                _ = tick_opt(&mut watchdog) => crate::systemd::watchdog(),
                _ = sigusr1.recv() => log::info!("loss totals: {}", self.loss_totals()),
                _ = sigusr2.recv() => log::info!("{}", self.pipeline.hot_sources()),
                _ = sighup.recv() => self.reload_from_disk().await,
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
            }
        }
        self.shutdown();
        Ok(())
    }

    fn shutdown(mut self) {
        crate::systemd::stopping();
        log::info!("stopping");
        // Programs detach here, before the final count.
        let hooks = self.ebpf.stop(&mut self.pipeline);
        self.procs.stop(&mut self.pipeline);
        if let Some(rules) = self.audit.rules.take() {
            let selection = rules.selection().clone();
            // Rules and file go with the service: a stopped (or disabled)
            // sensor leaves no rule to be loaded at the next boot. Under
            // immutable audit nothing can change until reboot: both stay.
            let immutable = self.host.ctl.status().is_ok_and(|s| s.immutable());
            if immutable {
                log::warn!(
                    "audit rules are immutable (enabled 2): the sensor's rules and its rules file stay until reboot"
                );
            } else if let Err(e) = rules.stop(true) {
                log::warn!("removing the sensor's audit rules: {e}");
            }
            // Then every record the rules produced before they went (a
            // busy host can have thousands queued): none left unread.
            self.audit.drain_until(
                Some(&selection),
                &mut self.pipeline,
                Instant::now() + STOP_DRAIN,
            );
        }
        self.pipeline.tick();
        self.pipeline.flush();
        self.pipeline.close_sink();
        log::info!("loss totals: {}", self.loss_totals());
        log::info!("{}", self.pipeline.hot_sources());
        log::info!("stopped: {hooks} hooks detached");
    }

    fn event_output(&self) -> String {
        self.host
            .args
            .event_output()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "stdout".into())
    }
}

/// Missed ticks are skipped, not made up in a burst: under a flood a
/// drain pass outlasts the poll period, and a burst of ready ticks would
/// keep the loop from yielding to the signal and I/O drivers.
fn interval(period: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    i
}

/// The outcome of a switch's load, when one runs.
async fn pending_load(load: &mut Option<BackgroundLoad>) -> Result<EbpfSensor, EbpfError> {
    match load {
        Some(l) => l.finished().await,
        None => std::future::pending().await,
    }
}

async fn tick_opt(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
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
