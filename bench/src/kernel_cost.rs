//! What an open costs in the kernel: the sensor's BPF programs' run time
//! (`bpf_stats`, BPF_ENABLE_STATS for the measurement only) per open+close
//! pair, for a folded open, an emitted one with and without folding, and
//! the floor with every event type off (the open and close still
//! dispatched, the open's program entered). The emitted opens are
//! measured with and without the far-behind wake-ups: in a storm faster
//! than the daemon drains, every record past a quarter of the ring wakes
//! user space (an interrupt, a VM exit on a VM), the brake that keeps
//! such storms lossless; without it the programs' own work shows (with a
//! ring that holds the whole storm, so that every record is still
//! copied), and with the default ring the loss that is the brake's reason.
//!
//! The figures are the sum over every program of the sensor while the
//! workload runs: the dispatcher runs on every system call of the host, so
//! the daemon's own calls (its reads of the ring, its writes) count too,
//! as they do in a fleet.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::monitors::{Monitor, Paths};

/// One measured case: which configuration, which workload, and what it
/// shows.
struct Case {
    config: Config,
    /// mdatpd's arguments beyond the configuration's.
    args: &'static [&'static str],
    workload: &'static str,
    what: &'static str,
}

/// The storm's brake off (the far-behind wake-ups: interrupts that slow
/// the producer to the daemon's pace) and a 256 MiB ring, more than the
/// storm's records: every record is reserved, copied and committed, none
/// dropped, and no interrupt beyond one per `wakeup_bytes`.
const NO_BRAKE_BIG_RING: &[&str] = &[
    "--test-no-far-behind-wakeups",
    "--ring-buffer-size",
    "268435456",
];

const CASES: &[Case] = &[
    Case {
        config: Config::EbpfAllOff,
        args: &[],
        workload: "open-one",
        what: "floor: every event type off",
    },
    Case {
        config: Config::Ebpf,
        args: &[],
        workload: "open-one",
        what: "folded open (defaults, one file)",
    },
    Case {
        config: Config::Ebpf,
        args: &[],
        workload: "open-many",
        what: "emitted open at defaults (1,000 files: every open a new fold window)",
    },
    Case {
        config: Config::EbpfNoFold,
        args: &[],
        workload: "open-many",
        what: "emitted open, folding off, 1,000 files (the row above without the fold table)",
    },
    Case {
        config: Config::EbpfNoFold,
        args: &[],
        workload: "open-one",
        what: "emitted open, folding off",
    },
    Case {
        config: Config::Ebpf,
        args: NO_BRAKE_BIG_RING,
        workload: "open-many",
        what: "emitted open at defaults, 1,000 files: the programs' own work (no far-behind wake-ups, a ring that holds the storm)",
    },
    Case {
        config: Config::EbpfNoFold,
        args: NO_BRAKE_BIG_RING,
        workload: "open-one",
        what: "emitted open, folding off: the programs' own work (no far-behind wake-ups, a ring that holds the storm)",
    },
    Case {
        config: Config::EbpfNoFold,
        args: &["--test-no-far-behind-wakeups"],
        workload: "open-one",
        what: "emitted open, folding off, no far-behind wake-ups, the default ring: the loss that is the brake's reason",
    },
];

/// Program run time and wall time of one workload run, per pair.
struct Sample {
    prog_ns: f64,
    wall_ns: f64,
    events: u64,
    loss: u64,
}

/// The sensor's programs' summed run time (ns).
fn prog_time(pid: u32) -> u64 {
    mdatpd::own_usage::bpf_objects(&Path::new("/proc").join(pid.to_string()))
        .iter()
        .filter(|o| o.kind == mdatpd::own_usage::BpfKind::Program)
        .map(|o| o.run_time_ns)
        .sum()
}

fn measure(paths: &Paths, me: &Path, case: &Case, workload: &str, pairs: u64) -> Result<Sample> {
    crate::settle::settle().note("the last cell's leftovers");
    let mon = Monitor::start_with(case.config, paths, case.args)?;
    crate::settle::settle().note("the monitor's start-up");
    let pid = mon
        .sensor_pid()
        .context("the configuration runs no sensor")?;
    let t0 = prog_time(pid);
    let start = Instant::now();
    let st = Command::new(me)
        .args(["workload", workload, &pairs.to_string()])
        .status()?;
    let wall = start.elapsed();
    let t1 = prog_time(pid);
    let stats = mon.stop()?;
    if !st.success() {
        bail!("workload {workload} failed under {}", case.config);
    }
    if t1 == t0 {
        bail!("no program run time counted: BPF statistics did not switch on");
    }
    Ok(Sample {
        prog_ns: (t1 - t0) as f64 / pairs as f64,
        wall_ns: wall.as_nanos() as f64 / pairs as f64,
        events: stats.events,
        loss: stats.loss,
    })
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    if (hi - lo).abs() < 0.5 {
        format!("{lo:.0}")
    } else {
        format!("{lo:.0}–{hi:.0}")
    }
}

pub fn run(paths: &Paths, pairs: u64, reps: usize, out: &Path) -> Result<()> {
    let me = std::env::current_exe()?;
    // Switched off again when the descriptor closes, whatever happens.
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("switch BPF run-time statistics on (BPF_ENABLE_STATS)")?;
    let mut rows: Vec<(&Case, Vec<Sample>)> = CASES.iter().map(|c| (c, Vec::new())).collect();
    for rep in 0..reps {
        // Every row once per repetition, rotated, as `run` interleaves.
        let n = rows.len();
        for i in 0..n {
            let (case, samples) = &mut rows[(i + rep) % n];
            let workload = case.workload;
            let s = measure(paths, &me, case, workload, pairs)?;
            eprintln!(
                "rep {rep} {:<20} {workload:<16} {:6.0} ns/pair in programs, {:6.0} ns/pair wall, events {}, loss {} {}",
                case.config.name(),
                s.prog_ns,
                s.wall_ns,
                s.events,
                s.loss,
                case.args.join(" ")
            );
            samples.push(s);
        }
    }
    let floor = rows
        .iter()
        .filter(|(c, _)| c.config == Config::EbpfAllOff)
        .flat_map(|(_, s)| s.iter().map(|s| s.prog_ns))
        .fold(f64::INFINITY, f64::min);
    let mut md = format!(
        "{pairs} open+close pairs per cell, {reps} repetitions; programs: the sensor's BPF programs' run time per pair (bpf_stats); beyond the floor: minus the lowest floor measured\n\n| case | workload | programs ns/pair | beyond the floor | wall ns/pair | events | loss |\n|---|---|---|---|---|---|---|\n"
    );
    for (case, samples) in &rows {
        let prog: Vec<f64> = samples.iter().map(|s| s.prog_ns).collect();
        let beyond: Vec<f64> = prog.iter().map(|p| p - floor).collect();
        let wall: Vec<f64> = samples.iter().map(|s| s.wall_ns).collect();
        let events: Vec<f64> = samples.iter().map(|s| s.events as f64).collect();
        let loss: u64 = samples.iter().map(|s| s.loss).sum();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {loss} |",
            case.what,
            case.workload,
            range(&prog),
            if case.config == Config::EbpfAllOff {
                "—".to_string()
            } else {
                range(&beyond)
            },
            range(&wall),
            range(&events),
        );
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("kernel-cost.md"), &md)?;
    print!("{md}");
    Ok(())
}
