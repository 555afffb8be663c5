//! What every source's events go through: enrich (process cache, users,
//! entity ids) → de-duplicate across a provider switch → count hot
//! sources → OCSF → sink, with delivery and sink loss counted per kind.
//! Sources (`ebpf/`, `audit/`) hand in normalized events; nothing here
//! knows BPF records or audit records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::enrich::Enricher;
use crate::event::{Event, Provider};
use crate::exclusions::Exclusions;
use crate::hot::HotSources;
use crate::loss::{LossLedger, RecentLoss};
use crate::ocsf;
use crate::sink::{Detail, Flushed, OutputReport, Outputs, Sink};
use crate::switch_overlap::SwitchOverlap;

pub struct Pipeline {
    /// The host's `device` and the last actor, serialized once.
    fragments: ocsf::Fragments,
    enricher: Enricher,
    ledger: LossLedger,
    /// Loss of every stage and source in the last minute (health).
    recent: RecentLoss,
    /// The configured exclusions, for what the kernel did not filter.
    exclusions: Exclusions,
    sink: Outputs,
    overlap: Option<SwitchOverlap>,
    hot: HotSources,
    /// Old-provider events ended switches did not remember (set full).
    overlap_dropped: u64,
    /// The serialized event, reused so the hot path does not allocate.
    json: Vec<u8>,
    /// How much of each event is written (`output.detail`).
    detail: Detail,
}

impl Pipeline {
    /// One sink as the only output (tests, benchmarks).
    pub fn new(enricher: Enricher, sink: Box<dyn Sink + Send>) -> Self {
        Self::with_outputs(enricher, Outputs::single(sink))
    }

    pub fn with_outputs(enricher: Enricher, sink: Outputs) -> Self {
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            fragments: ocsf::Fragments::new(&hostname),
            enricher,
            ledger: LossLedger::default(),
            recent: RecentLoss::default(),
            exclusions: Exclusions::default(),
            sink,
            overlap: None,
            hot: HotSources::default(),
            overlap_dropped: 0,
            json: Vec::with_capacity(4096),
            detail: Detail::Full,
        }
    }

    /// How much of each event is written (at start; a reload passes it
    /// with the outputs' settings).
    pub fn with_detail(mut self, detail: Detail) -> Self {
        self.detail = detail;
        self
    }

    /// Fixed host name (golden tests).
    pub fn with_hostname(mut self, hostname: &str) -> Self {
        self.fragments = ocsf::Fragments::new(hostname);
        self
    }

    /// The running configuration's exclusions (at start and every reload).
    pub fn set_exclusions(&mut self, exclusions: Exclusions) {
        self.exclusions = exclusions;
    }

    /// Processes that ran before the sources started.
    pub fn seed(&mut self, snapshot: Vec<crate::procfs::ProcSnapshot>) {
        self.enricher.seed(snapshot);
    }

    pub fn ledger(&self) -> &LossLedger {
        &self.ledger
    }

    /// One normalized event from a source.
    pub fn submit(&mut self, mut event: Event) {
        if let Event::Loss(l) = &event {
            self.note_loss(l);
        }
        self.enricher.enrich(&mut event);
        if self.exclusions.excludes(&event) {
            if let Some(kind) = event.kind() {
                *self.ledger.filtered.entry(kind).or_default() += 1;
            }
            return;
        }
        if self.is_overlap_duplicate(&event) {
            self.ledger.overlap_duplicates += 1;
            return;
        }
        self.count_hot(&event);
        self.json.clear();
        ocsf::write_with(&event, &mut self.fragments, self.detail, &mut self.json);
        self.sink.push(&self.json, event.kind());
    }

    fn count_hot(&mut self, event: &Event) {
        match event {
            Event::File(f) => {
                let n = match &f.activity {
                    crate::event::FileActivity::OpenFolded { count, .. } => u64::from(*count),
                    _ => 1,
                };
                if let Some(p) = &f.file.path {
                    self.hot.path(p, n);
                }
                if let Some(exe) = &f.process.exe {
                    self.hot.executable(exe, n);
                }
            }
            Event::Network(e) => {
                if let Some(exe) = &e.process.exe {
                    self.hot.executable(exe, 1);
                }
            }
            _ => {}
        }
    }

    /// End of a batch: the sink writes it; an event is delivered when
    /// written, and every event of a failed write is lost, per kind.
    pub fn flush(&mut self) {
        let flushed = self.sink.flush();
        self.account(flushed);
    }

    fn account(&mut self, flushed: Flushed) {
        for (kind, n) in flushed.delivered {
            if let Some(kind) = kind {
                self.ledger.delivered(kind, n);
            }
        }
        let now = Instant::now();
        for (kind, n) in flushed.lost {
            self.ledger.sink_lost(kind, n);
            self.recent.add(now, "sink", n);
        }
    }

    /// The sink's state (health) and its settings (reload, SIGHUP: the
    /// file is reopened).
    pub fn sink_status(&self) -> crate::sink::SinkStatus {
        self.sink.file_status()
    }

    /// Every output's state (health `outputs`, `output_counters`).
    pub fn output_reports(&self) -> Vec<OutputReport> {
        self.sink.reports()
    }

    pub fn reconfigure_sink(&mut self, config: &crate::sink::OutputConfig) {
        self.detail = config.detail;
        self.sink.reconfigure(config);
    }

    /// At stop, after the last flush.
    pub fn close_sink(&mut self) {
        let flushed = self.sink.close();
        self.account(flushed);
    }

    /// Periodic housekeeping; also called at shutdown.
    pub fn tick(&mut self) {
        self.enricher.tick();
        self.sink.tick();
        // What outputs on their own threads delivered or lost since the
        // last batch: counted now, not at the next event.
        let flushed = self.sink.flush();
        self.account(flushed);
    }

    /// A source's in-band loss record, into the last minute's loss: per
    /// kind where the source knows it.
    fn note_loss(&mut self, l: &crate::event::LossRecord) {
        let now = Instant::now();
        if l.dropped_by_type.is_empty() {
            self.recent.add(now, "unknown", l.missing.max(1));
        }
        for (kind, n) in &l.dropped_by_type {
            self.recent.add(now, kind, *n);
        }
    }

    /// Loss in the last minute, per kind or stage (for health).
    pub fn loss_last_minute(&self) -> BTreeMap<String, u64> {
        self.recent.last_minute(Instant::now())
    }

    /// Events delivered per kind (for health).
    pub fn delivered_map(&self) -> BTreeMap<String, u64> {
        self.ledger
            .delivered
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// The pipeline's own loss (for health); zero entries left out.
    /// The enrichment caches', hot sources' and switch set's use.
    pub fn table_use(&self, out: &mut Vec<crate::bounds::TableUse>) {
        self.enricher.table_use(out);
        self.hot.table_use(out);
        out.push(crate::bounds::TableUse {
            name: "switch_duplicates",
            entries: self.overlap.as_ref().map_or(0, SwitchOverlap::len),
            cap: crate::switch_overlap::MAX_KEYS,
            dropped: self.overlap_dropped + self.overlap.as_ref().map_or(0, SwitchOverlap::dropped),
        });
    }

    pub fn loss_map(&self, m: &mut BTreeMap<String, u64>) {
        for (kind, n) in &self.ledger.sink_lost {
            m.insert(format!("sink_lost.{kind}"), *n);
        }
    }

    /// Events written to the sink so far.
    pub fn delivered_total(&self) -> u64 {
        self.ledger.delivered.values().sum()
    }

    /// The hot-sources table (SIGUSR2, shutdown, diagnostics archive).
    pub fn hot_sources(&self) -> String {
        self.hot.table(20)
    }

    /// Seconds counted, and the top `n` of each hot-sources table.
    pub fn hot_top(&self, n: usize) -> crate::bus::HotTop {
        (self.hot.seconds(), self.hot.top(n))
    }
    /// A provider switch starts: for `window`, events of the new provider
    /// that the old one already reported are dropped as duplicates.
    pub fn begin_overlap(&mut self, old: Provider, window: Duration) {
        self.overlap = Some(SwitchOverlap::new(old, Instant::now() + window));
    }

    /// Whether `event` duplicates one the old provider reported during a
    /// switch (and so must not be emitted).
    fn is_overlap_duplicate(&mut self, event: &Event) -> bool {
        let Some(o) = &mut self.overlap else {
            return false;
        };
        if Instant::now() > o.until() {
            self.overlap_dropped += o.dropped();
            self.overlap = None;
            return false;
        }
        o.is_duplicate(event)
    }
}
