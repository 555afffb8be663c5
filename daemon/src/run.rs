//! The daemon's main loop: attach, seed, then drain the ring buffer into
//! the pipeline until SIGINT/SIGTERM.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::args::Args;
use crate::clock::HostClock;
use crate::ebpf::{EbpfSensor, LoadOptions};
use crate::filters::{FilterConfig, KernelFilters};
use crate::pipeline::Pipeline;
use crate::process_cache::ProcessCache;
use crate::procfs;
use crate::sink::{JsonLines, Sink};

/// Tail latency bound for events below the wake-up threshold.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

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

    let filters = match &args.filter_config {
        Some(path) => FilterConfig::load(path)?,
        None => KernelFilters::default(),
    };
    // Attach before the /proc snapshot so that no process falls between
    // the two: anything started after the snapshot is seen by the probes.
    let mut sensor = EbpfSensor::load(&LoadOptions {
        ring_buffer_bytes: args.ring_buffer_size,
        wakeup_bytes: args.wakeup_bytes,
        break_programs: args.test_break_program.clone(),
        filters: filters.clone(),
    })
    .context("start the eBPF event provider")?;
    let ring = sensor.take_ring()?;
    let counters = sensor.take_counters()?;

    let snapshot = procfs::snapshot(Path::new("/proc")).context("snapshot /proc")?;
    let excluded = sensor.exclude_running(&filters, &snapshot)?;
    if excluded > 0 {
        log::info!("{excluded} running processes have an excluded executable");
    }
    let mut cache = ProcessCache::new();
    cache.seed(snapshot);
    log::info!("process cache seeded with {} processes", cache.len());

    let mut pipeline = Pipeline::new(clock, cache, sink, Box::new(counters));
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
    // until the AsyncFd (which owns the RingBuf) is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("register the ring buffer with tokio: {}", e))?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let mut sigusr2 = signal(SignalKind::user_defined2())?;
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);

    let active: Vec<&str> = sensor
        .hooks
        .iter()
        .filter(|h| h.error.is_none())
        .map(|h| h.hook.as_str())
        .collect();
    log::info!(
        "sensor running: provider=ebpf hooks=[{}] ring_buffer={}B",
        active.join(", "),
        args.ring_buffer_size
    );

    loop {
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut guard = ready.context("wait for the ring buffer")?;
                drain(guard.get_inner_mut(), &mut pipeline);
                guard.clear_ready();
            }
            _ = poll.tick() => drain(ring.get_mut(), &mut pipeline),
            _ = housekeeping.tick() => pipeline.tick(),
            _ = sigusr1.recv() => log::info!("loss totals: {}", pipeline.loss_summary()),
            _ = sigusr2.recv() => log::info!("{}", pipeline.hot_sources()),
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    log::info!("stopping: detaching eBPF programs");
    drain(ring.get_mut(), &mut pipeline);
    // Programs detach here, before the final count, so the count is final.
    let hooks = std::mem::take(&mut sensor.hooks);
    drop(sensor);
    drain(ring.get_mut(), &mut pipeline);
    pipeline.tick();
    log::info!("loss totals: {}", pipeline.loss_summary());
    log::info!("{}", pipeline.hot_sources());
    log::info!(
        "stopped: {} hooks detached",
        hooks.iter().filter(|h| h.error.is_none()).count()
    );
    Ok(())
}

fn drain<S: Sink>(ring: &mut RingBuf<MapData>, pipeline: &mut Pipeline<S>) {
    let mut n = 0usize;
    while let Some(item) = ring.next() {
        pipeline.handle_bytes(&item);
        n += 1;
    }
    if n > 0 {
        pipeline.flush();
    }
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
