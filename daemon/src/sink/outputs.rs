//! Every configured output at once: each event goes to each, each keeps
//! its own state (health `outputs`, `output_counters`), and a reload
//! restarts only the outputs whose settings changed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::writer_thread::WriterThread;
use super::{FileSink, Flushed, JsonLines, OutputConfig, Sink, SinkStatus, nats, syslog};
use crate::kind::EventKind;

/// The outputs there are, in the order they are listed and counted:
/// `events_delivered` counts what the first enabled one accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutputKind {
    File,
    Syslog,
    Nats,
}

impl OutputKind {
    pub const ALL: [OutputKind; 3] = [OutputKind::File, OutputKind::Syslog, OutputKind::Nats];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::File => "file",
            OutputKind::Syslog => "syslog",
            OutputKind::Nats => "nats",
        }
    }

    fn enabled(self, c: &OutputConfig) -> bool {
        match self {
            OutputKind::File => c.file.enabled,
            OutputKind::Syslog => c.syslog.enabled,
            OutputKind::Nats => c.nats.enabled,
        }
    }

    fn same_settings(self, a: &OutputConfig, b: &OutputConfig) -> bool {
        match self {
            OutputKind::File => a.file == b.file,
            OutputKind::Syslog => a.syslog == b.syslog,
            OutputKind::Nats => a.nats == b.nats,
        }
    }
}

/// What outputs need from the daemon.
#[derive(Debug, Clone)]
pub struct OutputContext {
    pub hostname: String,
    /// The event file; None: stdout (foreground without --output).
    pub event_path: Option<PathBuf>,
    /// Relative spool directories are under it.
    pub state_dir: PathBuf,
}

/// One output's state for health.
#[derive(Debug, Clone)]
pub struct OutputReport {
    pub kind: OutputKind,
    pub target: String,
    pub status: SinkStatus,
    pub delivered: u64,
    pub lost: u64,
}

struct Running {
    kind: OutputKind,
    target: String,
    sink: Box<dyn Sink + Send>,
    delivered: u64,
    lost: u64,
}

pub struct Outputs {
    ctx: Option<OutputContext>,
    config: OutputConfig,
    running: Vec<Running>,
    /// Outputs that could not start at the last reload, and why.
    failed: BTreeMap<OutputKind, String>,
    /// Outcomes of outputs stopped by a reload, reported at the next flush.
    carried: Flushed,
}

#[derive(Debug, thiserror::Error)]
#[error("{kind} output ({target}): {error}")]
pub struct OpenError {
    kind: &'static str,
    target: String,
    error: std::io::Error,
}

impl Outputs {
    /// The outputs the configuration enables; one that cannot start is
    /// an error (at start the daemon refuses to run half-configured).
    pub fn open(ctx: OutputContext, config: &OutputConfig) -> Result<Self, OpenError> {
        let mut running = Vec::new();
        for kind in OutputKind::ALL {
            if kind.enabled(config) {
                running.push(start(kind, &ctx, config)?);
            }
        }
        Ok(Self {
            ctx: Some(ctx),
            config: config.clone(),
            running,
            failed: BTreeMap::new(),
            carried: Flushed::default(),
        })
    }

    /// One given sink as the file output (tests, benchmarks).
    pub fn single(sink: Box<dyn Sink + Send>) -> Self {
        Self {
            ctx: None,
            config: OutputConfig::default(),
            running: vec![Running {
                kind: OutputKind::File,
                target: String::new(),
                sink,
                delivered: 0,
                lost: 0,
            }],
            failed: BTreeMap::new(),
            carried: Flushed::default(),
        }
    }

    pub fn reports(&self) -> Vec<OutputReport> {
        let mut out: Vec<OutputReport> = self
            .running
            .iter()
            .map(|r| OutputReport {
                kind: r.kind,
                target: r.target.clone(),
                status: r.sink.status(),
                delivered: r.delivered,
                lost: r.lost,
            })
            .collect();
        for (kind, why) in &self.failed {
            out.push(OutputReport {
                kind: *kind,
                target: String::new(),
                status: SinkStatus {
                    counters: BTreeMap::new(),
                    error: Some(format!("cannot start: {why}")),
                },
                delivered: 0,
                lost: 0,
            });
        }
        out.sort_by_key(|r| r.kind);
        out
    }

    /// Each output's outcome (flush or close) into its own counts; the
    /// first output's deliveries and every output's losses for the ledger.
    fn gather(&mut self, mut each: impl FnMut(&mut Box<dyn Sink + Send>) -> Flushed) -> Flushed {
        let mut out = std::mem::take(&mut self.carried);
        for (i, r) in self.running.iter_mut().enumerate() {
            let f = each(&mut r.sink);
            r.delivered += f.delivered.values().sum::<u64>();
            r.lost += f.lost.values().sum::<u64>();
            out.absorb(Flushed {
                delivered: if i == 0 {
                    f.delivered
                } else {
                    Default::default()
                },
                lost: f.lost,
                error: f.error,
            });
        }
        out
    }

    /// The file output's state (health's `event_output_*`).
    pub fn file_status(&self) -> SinkStatus {
        self.running
            .iter()
            .find(|r| r.kind == OutputKind::File)
            .map(|r| r.sink.status())
            .unwrap_or_default()
    }
}

fn start(kind: OutputKind, ctx: &OutputContext, c: &OutputConfig) -> Result<Running, OpenError> {
    let (target, sink): (String, std::io::Result<Box<dyn Sink + Send>>) = match kind {
        OutputKind::File => match &ctx.event_path {
            None => ("stdout".into(), Ok(Box::new(JsonLines::stdout()))),
            Some(p) => (
                p.display().to_string(),
                FileSink::open(p, &c.file, &ctx.hostname)
                    .and_then(|s| WriterThread::spawn("file", s))
                    .map(|s| Box::new(s) as _),
            ),
        },
        OutputKind::Syslog => (
            syslog::target(&c.syslog),
            syslog::spawn(&c.syslog, &ctx.hostname).map(|s| Box::new(s) as _),
        ),
        OutputKind::Nats => (
            nats::target(&c.nats),
            nats::spawn(&c.nats, &ctx.hostname, &ctx.state_dir).map(|s| Box::new(s) as _),
        ),
    };
    match sink {
        Ok(sink) => Ok(Running {
            kind,
            target,
            sink,
            delivered: 0,
            lost: 0,
        }),
        Err(error) => Err(OpenError {
            kind: kind.as_str(),
            target,
            error,
        }),
    }
}

impl Sink for Outputs {
    fn push(&mut self, record: &[u8], kind: Option<EventKind>) {
        for r in &mut self.running {
            r.sink.push(record, kind);
        }
    }

    /// The first output's deliveries, every output's losses.
    fn flush(&mut self) -> Flushed {
        self.gather(|s| s.flush())
    }

    fn tick(&mut self) {
        for r in &mut self.running {
            r.sink.tick();
        }
    }

    /// SIGHUP, Reload: the file is reopened with its new settings; an
    /// output whose settings changed is restarted, one turned off is
    /// stopped (a NATS spool stays on disk for when it is back).
    fn reconfigure(&mut self, config: &OutputConfig) {
        let Some(ctx) = self.ctx.clone() else {
            for r in &mut self.running {
                r.sink.reconfigure(config);
            }
            return;
        };
        let mut next = Vec::new();
        let mut old: Vec<Running> = std::mem::take(&mut self.running);
        self.failed.clear();
        for kind in OutputKind::ALL {
            let was = old
                .iter()
                .position(|r| r.kind == kind)
                .map(|i| old.remove(i));
            let keep = kind == OutputKind::File || kind.same_settings(&self.config, config);
            match (was, kind.enabled(config)) {
                (Some(mut r), true) if keep => {
                    r.sink.reconfigure(config);
                    next.push(r);
                }
                (was, enabled) => {
                    if let Some(mut r) = was {
                        log::info!("{} output: stopping ({})", kind.as_str(), r.target);
                        self.carried.absorb(r.sink.close());
                    }
                    if enabled {
                        match start(kind, &ctx, config) {
                            Ok(r) => {
                                log::info!("{} output: started ({})", kind.as_str(), r.target);
                                next.push(r);
                            }
                            Err(e) => {
                                log::error!("{e}");
                                self.failed.insert(kind, e.to_string());
                            }
                        }
                    }
                }
            }
        }
        self.running = next;
        self.config = config.clone();
    }

    /// Every running output's error, one line each.
    fn status(&self) -> SinkStatus {
        let errors: Vec<String> = self
            .reports()
            .into_iter()
            .filter_map(|r| r.status.error.map(|e| format!("{}: {e}", r.kind.as_str())))
            .collect();
        SinkStatus {
            counters: BTreeMap::new(),
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        }
    }

    fn close(&mut self) -> Flushed {
        self.gather(|s| s.close())
    }
}
