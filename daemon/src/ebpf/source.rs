//! The eBPF event source: attach, read the ring, convert, detach. It says
//! per kind whether it serves it now and, if not, why.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::convert::Converter;
use super::map_sizes::MapSizes;
use super::{EbpfError, EbpfSensor, HookStatus, KfuncResolution, LoadOptions};
use crate::clock::HostClock;
use crate::filters::KernelFilters;
use crate::kind::{EventKind, Served};
use crate::loss::KernelCounters;
use crate::pipeline::Pipeline;
use crate::source::EventSource;

/// Records handled per drain pass: under a flood the ring never empties,
/// and the loop must get back to signals, timers and flushes.
const DRAIN_BATCH: usize = 32_768;
/// Longest a drain pass may take before the loop services everything else.
const DRAIN_TIME: Duration = Duration::from_millis(20);

struct Attached {
    sensor: EbpfSensor,
    ring: AsyncFd<RingBuf<MapData>>,
    /// What the kernel's maps hold now.
    filters: KernelFilters,
}

pub struct EbpfSource {
    attached: Option<Attached>,
    conv: Converter,
}

impl EbpfSource {
    /// A source that is not attached yet.
    pub fn new(clock: HostClock) -> Self {
        Self {
            attached: None,
            conv: Converter::new(clock),
        }
    }

    /// Test and benchmark support: a converter fed by hand, no kernel.
    pub fn converter(&mut self) -> &mut Converter {
        &mut self.conv
    }

    pub fn is_running(&self) -> bool {
        self.attached.is_some()
    }

    /// Loads the object, fills the filters, attaches every program it can.
    pub fn start(&mut self, opts: &LoadOptions) -> Result<(), EbpfError> {
        let sensor = EbpfSensor::load(opts)?;
        self.attach(sensor, &opts.filters)
    }

    /// Takes an object loaded elsewhere (a live switch's load thread,
    /// background_load.rs) with the filters it was loaded with, and
    /// starts reading its ring.
    pub fn attach(
        &mut self,
        mut sensor: EbpfSensor,
        filters: &KernelFilters,
    ) -> Result<(), EbpfError> {
        let ring = sensor.take_ring()?;
        let counters = sensor.take_counters()?;
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
        // until the AsyncFd (which owns the RingBuf) is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| EbpfError::Register(std::io::Error::other(e.to_string())))?;
        // A new object counts from zero, and so do its sequence numbers.
        self.conv
            .restart(Some(Box::new(counters) as Box<dyn KernelCounters + Send>));
        self.attached = Some(Attached {
            sensor,
            ring,
            filters: filters.clone(),
        });
        Ok(())
    }

    /// A reload: the running configuration's filters and fold window go
    /// into the kernel's maps now (make before break). A failure is
    /// logged and the maps keep what they had.
    pub fn apply_filters(&mut self, filters: &KernelFilters) {
        let Some(a) = &mut self.attached else { return };
        if a.filters == *filters {
            return;
        }
        match a.sensor.rewrite_filters(filters, &a.filters) {
            Ok(()) => {
                a.filters = filters.clone();
                log::info!("kernel filters updated from the reloaded configuration");
            }
            Err(e) => log::error!(
                "kernel filters not updated, the previous ones stay: {}",
                crate::error_text::chain(&e)
            ),
        }
    }

    /// The loaded object's ring and table sizes (None when not loaded).
    pub fn map_sizes(&self) -> Option<MapSizes> {
        self.attached.as_ref().map(|a| a.sensor.sizes)
    }

    /// How the loaded object's kfunc calls were resolved (None when not
    /// loaded).
    pub fn kfuncs(&self) -> Option<&KfuncResolution> {
        self.attached.as_ref().map(|a| &a.sensor.kfuncs)
    }

    pub fn hooks(&self) -> &[HookStatus] {
        self.attached
            .as_ref()
            .map(|a| a.sensor.hooks.as_slice())
            .unwrap_or(&[])
    }

    /// Detaches every program (dropping the object unloads them), then
    /// reads what the ring still holds. Returns how many hooks were
    /// attached.
    pub fn stop(&mut self, pipeline: &mut Pipeline) -> usize {
        let Some(a) = self.attached.take() else {
            return 0;
        };
        let n = a.sensor.hooks.iter().filter(|h| h.attached()).count();
        let mut ring = a.ring;
        drop(a.sensor);
        log::debug!("eBPF programs detached; reading what the ring still holds");
        while drain_ring(ring.get_mut(), &mut self.conv, pipeline) {}
        // The last counted drops of this object. Its counters stay
        // readable (their map outlives the programs) for the final
        // totals, until a new object replaces them.
        self.tick(pipeline);
        n
    }

    /// The loss-totals line (SIGUSR1, shutdown).
    pub fn summary(&self, pipeline: &Pipeline) -> String {
        let kernel = self.conv.read_counters();
        crate::loss::Summary {
            ledger: pipeline.ledger(),
            kernel: &kernel,
            ebpf: &self.conv.loss,
        }
        .to_string()
    }
}

impl EventSource for EbpfSource {
    /// Whether it serves `kind` now, and if not, why.
    fn serves(&self, kind: EventKind) -> Served {
        let programs = kind.spec().programs;
        if programs.is_empty() {
            return Served::No("no eBPF program produces it".into());
        }
        let Some(a) = &self.attached else {
            return Served::No("eBPF provider not running".into());
        };
        let mine: Vec<&HookStatus> = a
            .sensor
            .hooks
            .iter()
            .filter(|h| programs.contains(&h.program))
            .collect();
        if mine.iter().any(|h| h.attached()) {
            return Served::Yes;
        }
        let why = mine
            .iter()
            .find_map(|h| {
                h.error
                    .as_ref()
                    .map(|e| format!("{}: {e}", h.program))
                    .or_else(|| h.absent.map(|w| format!("this kernel has no {w}")))
            })
            .unwrap_or_else(|| "its programs are not in the object".into());
        Served::No(why)
    }

    async fn readable(&self) {
        match &self.attached {
            Some(a) => {
                if let Ok(mut g) = a.ring.readable().await {
                    g.clear_ready();
                }
            }
            None => std::future::pending().await,
        }
    }

    /// One bounded pass over the ring; true when it stopped at its bound
    /// with records left (the kernel wakes once per `wakeup_bytes` of
    /// records, not per record: waiting for the next wake-up would leave
    /// the ring filling while the daemon idles).
    fn drain(&mut self, pipeline: &mut Pipeline) -> bool {
        match &mut self.attached {
            Some(a) => drain_ring(a.ring.get_mut(), &mut self.conv, pipeline),
            None => false,
        }
    }

    /// Periodic: drops the kernel counted that no gap has shown yet; the
    /// excluded executables' files looked up again.
    fn tick(&mut self, pipeline: &mut Pipeline) {
        if let Some(a) = &mut self.attached {
            a.sensor.refresh_exe_ids(&a.filters);
        }
        if let Some(loss) = self.conv.counted_drops() {
            pipeline.submit(loss);
            pipeline.flush();
        }
    }

    /// Loss per stage for health: kernel ring drops per kind, sequence
    /// gaps, undecodable records (zero entries left out).
    fn table_use(&self, out: &mut Vec<crate::bounds::TableUse>) {
        self.conv.table_use(out);
    }

    fn loss_map(&self, m: &mut BTreeMap<String, u64>) {
        if let Ok(k) = self.conv.read_counters() {
            for (kind, c) in k {
                if c.ringbuf_drops > 0 {
                    m.insert(format!("kernel_ringbuf/{kind}"), c.ringbuf_drops);
                }
                if c.unreadable > 0 {
                    m.insert(format!("kernel_unreadable/{kind}"), c.unreadable);
                }
            }
        }
        for (name, n) in [
            ("sequence_gaps", self.conv.loss.sequence_gaps),
            ("decode_errors", self.conv.loss.decode_errors),
        ] {
            if n > 0 {
                m.insert(name.to_string(), n);
            }
        }
    }
}

fn drain_ring(ring: &mut RingBuf<MapData>, conv: &mut Converter, pipeline: &mut Pipeline) -> bool {
    let start = Instant::now();
    let mut n = 0usize;
    let mut bounded = false;
    while n < DRAIN_BATCH {
        let Some(item) = ring.next() else { break };
        conv.record(&item, &mut |ev| pipeline.submit(ev));
        n += 1;
        if n.is_multiple_of(256) && start.elapsed() > DRAIN_TIME {
            bounded = true;
            break;
        }
    }
    if n > 0 {
        pipeline.flush();
    }
    bounded || n == DRAIN_BATCH
}
