//! The throughput ceiling: an open storm with folding off on both cores at
//! rising paced rates; the highest delivered rate with zero loss, and the
//! rate at which loss begins (counted, never silent).

use std::fmt::Write;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

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

pub fn run(paths: &Paths, seconds: u64, out: &Path) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let file = scratch.path().join("ceiling.txt");
    std::fs::write(&file, b"x")?;
    let mut md = String::from(
        "| offered opens/s | opens done | events delivered | delivered/s | loss |\n|---|---|---|---|---|\n",
    );
    let mut best_zero_loss = 0.0f64;
    let mut loss_begins = None;
    for rate in [50_000u64, 100_000, 200_000, 400_000, 800_000, 1_600_000] {
        let mon = Monitor::start("mdatpd-ebpf-nofold", paths)?;
        let t0 = Instant::now();
        let done = storm(&file, rate, seconds);
        let elapsed = t0.elapsed().as_secs_f64();
        let stats = mon.stop()?;
        let delivered_rate = stats.events as f64 / elapsed;
        let _ = writeln!(
            md,
            "| {rate} | {done} | {} | {delivered_rate:.0} | {} |",
            stats.events, stats.loss
        );
        eprintln!(
            "offered {rate}/s: done {done}, delivered {} ({delivered_rate:.0}/s), loss {}",
            stats.events, stats.loss
        );
        if stats.loss == 0 {
            best_zero_loss = best_zero_loss.max(delivered_rate);
        } else if loss_begins.is_none() {
            loss_begins = Some(rate);
        }
    }
    let _ = writeln!(
        md,
        "\nhighest delivered rate with zero loss: {best_zero_loss:.0} events/s; loss begins at offered {}\n",
        loss_begins
            .map(|r| format!("{r}/s"))
            .unwrap_or_else(|| "— (none up to the highest rate offered)".into())
    );
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("ceiling.md"), &md)?;
    print!("{md}");
    Ok(())
}
