//! The throughput ceiling: an open storm with folding off on both cores at
//! rising paced rates; the highest delivered rate with zero loss, and the
//! rate at which loss begins (counted, never silent). Then the drain rate:
//! what the daemon delivers end to end when the storm does not compete
//! with it for the two cores.

use std::fmt::Write;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::Config;
use crate::monitors::{Monitor, Paths};

fn storm(path: &Path, rate_per_s: u64, seconds: u64) -> u64 {
    let per_worker = rate_per_s / 2;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let p = path.to_path_buf();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut done = 0u64;
                while start.elapsed() < Duration::from_secs(seconds) {
                    // Pace in batches of 1,000 opens.
                    for _ in 0..1000 {
                        if File::open(&p).is_ok() {
                            done += 1;
                        }
                    }
                    let due = Duration::from_secs_f64(done as f64 / per_worker.max(1) as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                done
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
}

/// Paced storms at each of `rates` under monitoring configuration `kind`
/// (`setup` runs once the monitor is up): a Markdown row per rate, each
/// starting with the cells in `label`, and the summary (highest zero-loss
/// delivered rate, where loss begins).
fn sweep(
    paths: &Paths,
    file: &Path,
    seconds: u64,
    kind: Config,
    rates: &[u64],
    label: &str,
    setup: &dyn Fn() -> Result<()>,
) -> Result<(String, String)> {
    let mut rows = String::new();
    let mut best_zero_loss = 0.0f64;
    let mut loss_begins = None;
    for &rate in rates {
        let mon = Monitor::start(kind, paths)?;
        setup()?;
        let t0 = Instant::now();
        let done = storm(file, rate, seconds);
        let elapsed = t0.elapsed().as_secs_f64();
        let stats = mon.stop()?;
        let delivered_rate = stats.events as f64 / elapsed;
        let _ = writeln!(
            rows,
            "| {label}{rate} | {done} | {} | {delivered_rate:.0} | {} |",
            stats.events, stats.loss
        );
        eprintln!(
            "{kind} {label}offered {rate}/s: done {done}, delivered {} ({delivered_rate:.0}/s), loss {}",
            stats.events, stats.loss
        );
        if stats.loss == 0 {
            best_zero_loss = best_zero_loss.max(delivered_rate);
        } else if loss_begins.is_none() {
            loss_begins = Some(rate);
        }
    }
    let summary = format!(
        "highest delivered rate with zero loss: {best_zero_loss:.0} events/s; loss begins at offered {}",
        loss_begins
            .map(|r| format!("{r}/s"))
            .unwrap_or_else(|| "— (none up to the highest rate offered)".into())
    );
    Ok((rows, summary))
}

pub fn run(paths: &Paths, seconds: u64, out: &Path) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let file = scratch.path().join("ceiling.txt");
    std::fs::write(&file, b"x")?;
    let rates = [50_000u64, 100_000, 200_000, 400_000, 800_000, 1_600_000];
    let (rows, summary) = sweep(
        paths,
        &file,
        seconds,
        Config::EbpfNoFold,
        &rates,
        "",
        &|| Ok(()),
    )?;
    let mut md = format!(
        "| offered opens/s | opens done | events delivered | delivered/s | loss |\n|---|---|---|---|---|\n{rows}\n{summary}\n\n"
    );
    let _ = writeln!(md, "{}", drain(paths, &file, DRAIN_OPENS)?);
    let _ = writeln!(md, "{}", audit_ceiling(paths, &file, seconds)?);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("ceiling.md"), &md)?;
    print!("{md}");
    Ok(())
}

/// The auditd provider's ceiling (with auditd running beside it, as on a
/// fleet host), per kernel backlog limit: the highest offered open rate
/// at which nothing is lost — counted from the sensor's loss totals
/// (events never received, the kernel's lost counter, conversion
/// failures) — and the rate at which loss begins.
fn audit_ceiling(paths: &Paths, file: &Path, seconds: u64) -> Result<String> {
    let mut md = String::from(
        "auditd provider (auditd running too):\n\n| backlog limit | offered opens/s | opens done | events delivered | delivered/s | loss |\n|---|---|---|---|---|---|\n",
    );
    let mut summaries = String::new();
    for backlog in [8192u64, 65_536] {
        let setup = || crate::monitors::auditctl(&["-b", &backlog.to_string()]).map(drop);
        let rates = [5_000u64, 10_000, 20_000, 40_000, 80_000];
        let label = format!("{backlog} | ");
        let (rows, summary) = sweep(
            paths,
            file,
            seconds,
            Config::MdatpdAuditd,
            &rates,
            &label,
            &setup,
        )?;
        md.push_str(&rows);
        let _ = writeln!(summaries, "backlog {backlog}: {summary}");
    }
    Ok(format!("{md}\n{summaries}"))
}

/// Opens queued for the drain measurement, and a ring that holds them all
/// (a record of the storm's file is ~230 bytes).
const DRAIN_OPENS: u64 = 600_000;
const DRAIN_RING_BYTES: &str = "268435456";

/// The daemon is stopped (SIGSTOP) while one thread opens the file
/// `opens` times, so the records queue in a ring large enough for all of
/// them; then it is continued and timed until its event file stops
/// growing. Delivered = records in the file (decoded, enriched, serialized,
/// written), so this is the end-to-end rate with a core to itself.
fn drain(paths: &Paths, file: &Path, opens: u64) -> Result<String> {
    let mon = Monitor::start_with(
        Config::EbpfNoFold,
        paths,
        &["--ring-buffer-size", DRAIN_RING_BYTES],
    )?;
    let pid = Pid::from_raw(mon.sensor_pid().context("no sensor")? as i32);
    let events = mon.events_path();
    let size = || std::fs::metadata(&events).map(|m| m.len()).unwrap_or(0);
    // Let start-up records drain first.
    std::thread::sleep(Duration::from_millis(500));
    kill(pid, Signal::SIGSTOP)?;
    let written = std::fs::read(&events).unwrap_or_default();
    let before = written.len() as u64;
    let queued_before = written.iter().filter(|&&c| c == b'\n').count() as u64;
    for _ in 0..opens {
        drop(File::open(file));
    }
    let t0 = Instant::now();
    kill(pid, Signal::SIGCONT)?;
    let (mut last, mut last_change) = (before, t0);
    while last_change.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(2));
        let now = size();
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
    }
    let secs = last_change.duration_since(t0).as_secs_f64().max(1e-3);
    let stats = mon.stop()?;
    let drained = stats.events.saturating_sub(queued_before);
    let rate = drained as f64 / secs;
    eprintln!(
        "drain: {drained} records in {secs:.3} s ({rate:.0}/s), loss {}",
        stats.loss
    );
    Ok(format!(
        "Drain rate (the daemon stopped while {opens} opens queue in a {DRAIN_RING_BYTES}-byte ring, then continued): \
         {drained} events delivered in {secs:.3} s = **{rate:.0} events/s** end to end, loss {}\n",
        stats.loss
    ))
}
