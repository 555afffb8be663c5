//! A workload's overhead taken apart (`mdatp-bench apart`): where the
//! time a monitored run adds over the baseline goes. For each
//! configuration the same workload runs interleaved and repeated, and
//! each cell records the wall time, the workload's own CPU time split
//! into user and system (getrusage of the reaped workload and everything
//! it ran), what is left of the wall (waiting: the disk, the scheduler,
//! the other core's work), the sensor's BPF programs' run time
//! (bpf_stats, switched on for the measurement) and the daemon's CPU.
//!
//! The run's ratios carry bpf_stats' own price (a clock read around every
//! program run), so they sit slightly above `run`'s; the split is the
//! point. The programs' time includes the dispatcher's runs for the
//! daemon's own system calls, on the other core.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::monitors::{Monitor, Paths};

/// The configurations compared: the baseline, the hooks with every event
/// type off (the floor), the defaults, and folding off.
const CONFIGS: [Config; 4] = [
    Config::Baseline,
    Config::EbpfAllOff,
    Config::Ebpf,
    Config::EbpfNoFold,
];

/// One cell.
struct Sample {
    wall_s: f64,
    user_s: f64,
    sys_s: f64,
    /// Summed over the sensor's programs.
    prog_s: f64,
    /// Per program name: (runs, run time ns).
    per_prog: BTreeMap<String, (u64, u64)>,
    sensor_cpu_s: f64,
    events: u64,
    loss: u64,
}

/// User and system CPU seconds of every reaped child of this process (and
/// what they reaped in turn).
fn children_cpu() -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// The sensor's programs by id: (name, runs, run time ns).
fn programs(pid: Option<u32>) -> BTreeMap<u32, (String, u64, u64)> {
    let Some(pid) = pid else {
        return BTreeMap::new();
    };
    mdatpd::own_usage::bpf_objects(&Path::new("/proc").join(pid.to_string()))
        .into_iter()
        .filter(|o| o.kind == mdatpd::own_usage::BpfKind::Program)
        .map(|o| (o.id, (o.name, o.run_cnt, o.run_time_ns)))
        .collect()
}

fn measure(paths: &Paths, me: &Path, config: Config, workload: &str, n: u64) -> Result<Sample> {
    crate::settle::settle().note("the last cell's leftovers");
    let mut mon = Monitor::start(config, paths).with_context(|| format!("start {config}"))?;
    crate::settle::settle().note("the monitor's start-up");
    mon.mark_start();
    let pid = mon.sensor_pid();
    let p0 = programs(pid);
    let (u0, s0) = children_cpu();
    let t0 = Instant::now();
    let st = Command::new(me)
        .args(["workload", workload, &n.to_string()])
        .status()?;
    let wall_s = t0.elapsed().as_secs_f64();
    let (u1, s1) = children_cpu();
    let p1 = programs(pid);
    let stats = mon.stop().with_context(|| format!("stop {config}"))?;
    if !st.success() {
        bail!("workload {workload} failed under {config}");
    }
    let mut per_prog: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (id, (name, cnt, ns)) in &p1 {
        let (c0, t0) = p0.get(id).map_or((0, 0), |(_, c, t)| (*c, *t));
        let e = per_prog.entry(name.clone()).or_default();
        e.0 += cnt.saturating_sub(c0);
        e.1 += ns.saturating_sub(t0);
    }
    let prog_ns: u64 = per_prog.values().map(|(_, t)| t).sum();
    if pid.is_some() && config != Config::EbpfAllOff && prog_ns == 0 {
        bail!("no program run time counted under {config}: BPF statistics did not switch on");
    }
    Ok(Sample {
        wall_s,
        user_s: u1 - u0,
        sys_s: s1 - s0,
        prog_s: prog_ns as f64 / 1e9,
        per_prog,
        sensor_cpu_s: stats.sensor_cpu_s,
        events: stats.events,
        loss: stats.loss,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians of one configuration's cells.
struct Medians {
    wall: f64,
    user: f64,
    sys: f64,
    wait: f64,
    prog: f64,
    sensor: f64,
    events: f64,
    loss: u64,
}

fn medians(s: &[Sample]) -> Medians {
    let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
    Medians {
        wall: m(|s| s.wall_s),
        user: m(|s| s.user_s),
        sys: m(|s| s.sys_s),
        wait: m(|s| (s.wall_s - s.user_s - s.sys_s).max(0.0)),
        prog: m(|s| s.prog_s),
        sensor: m(|s| s.sensor_cpu_s),
        events: m(|s| s.events as f64),
        loss: s.iter().map(|s| s.loss).sum(),
    }
}

/// One workload's tables: the cells' medians, where the added time went,
/// and the programs at defaults.
fn report(md: &mut String, workload: &str, n: u64, cells: &[(Config, Vec<Sample>)]) {
    let Some(base) = cells
        .iter()
        .find(|(c, _)| *c == Config::Baseline)
        .map(|(_, s)| medians(s))
    else {
        let _ = writeln!(md, "\n### {workload}: no baseline cell, nothing to compare");
        return;
    };
    let _ = writeln!(
        md,
        "\n### {workload} (n={n}), medians\n\n| configuration | wall s | × baseline (range) | workload user s | workload system s | waiting s | sensor programs s | sensor CPU s | events | loss |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for (config, samples) in cells {
        let m = medians(samples);
        let ratios: Vec<f64> = samples.iter().map(|s| s.wall_s / base.wall).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.3} ({lo:.2}–{hi:.2}) | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {} |",
            config.name(),
            m.wall,
            m.wall / base.wall,
            m.user,
            m.sys,
            m.wait,
            m.prog,
            m.sensor,
            m.events,
            m.loss
        );
    }
    let _ = writeln!(
        md,
        "\nAdded over the baseline, as a share of the baseline's wall (medians):\n\n| configuration | wall | workload user | workload system | waiting | sensor programs (all cores) |\n|---|---|---|---|---|---|"
    );
    let pct = |x: f64| format!("{:+.1}%", 100.0 * x / base.wall);
    for (config, samples) in cells.iter().filter(|(c, _)| *c != Config::Baseline) {
        let m = medians(samples);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            config.name(),
            pct(m.wall - base.wall),
            pct(m.user - base.user),
            pct(m.sys - base.sys),
            pct(m.wait - base.wait),
            pct(m.prog)
        );
    }
    for (config, samples) in cells.iter().filter(|(c, _)| *c != Config::Baseline) {
        let mut total: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for s in samples {
            for (name, (c, t)) in &s.per_prog {
                let e = total.entry(name).or_default();
                e.0 += c;
                e.1 += t;
            }
        }
        let mut rows: Vec<_> = total.into_iter().filter(|(_, (c, _))| *c > 0).collect();
        rows.sort_by_key(|(_, (_, t))| std::cmp::Reverse(*t));
        let cells_n = samples.len().max(1) as f64;
        let _ = writeln!(
            md,
            "\nPrograms under {} (per cell, mean of {} cells):\n\n| program | runs | run time ms | ns a run |\n|---|---|---|---|",
            config.name(),
            samples.len()
        );
        for (name, (c, t)) in rows {
            let _ = writeln!(
                md,
                "| {name} | {:.0} | {:.1} | {:.0} |",
                c as f64 / cells_n,
                t as f64 / cells_n / 1e6,
                t as f64 / c as f64
            );
        }
    }
}

pub fn run(paths: &Paths, workloads: &[String], reps: usize, out: &Path) -> Result<()> {
    if !paths.mdatpd.exists() {
        bail!(
            "{} not found: cargo build --release -p mdatpd",
            paths.mdatpd.display()
        );
    }
    crate::monitors::check_audit_idle()?;
    let me = std::env::current_exe()?;
    // Switched off again when the descriptor closes, whatever happens.
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("switch BPF run-time statistics on (BPF_ENABLE_STATS)")?;
    let mut md = format!(
        "{reps} repetitions, the configurations interleaved; workload CPU: getrusage of the workload and what it ran; waiting: wall minus that CPU; sensor programs: bpf_stats run time of every program of the sensor (its dispatcher also runs for the daemon's own calls)\n"
    );
    for workload in workloads {
        let size = crate::workloads::WORKLOADS
            .iter()
            .find(|(n, _, _)| n == workload)
            .map(|(_, s, _)| *s)
            .with_context(|| format!("unknown workload {workload}"))?;
        let n = crate::sizing::calibrate(&me, workload, size)?;
        eprintln!("{workload:<14} n={n}");
        let mut cells: Vec<(Config, Vec<Sample>)> =
            CONFIGS.iter().map(|c| (*c, Vec::new())).collect();
        for rep in 0..reps {
            for i in 0..cells.len() {
                let k = (i + rep) % cells.len();
                let config = cells[k].0;
                let s = measure(paths, &me, config, workload, n)?;
                eprintln!(
                    "rep {rep} {workload:<11} {:<19} {:7.3} s wall, {:6.3} user, {:6.3} sys, programs {:6.3} s, sensor {:6.3} s, events {}, loss {}",
                    config.name(),
                    s.wall_s,
                    s.user_s,
                    s.sys_s,
                    s.prog_s,
                    s.sensor_cpu_s,
                    s.events,
                    s.loss
                );
                cells[k].1.push(s);
            }
        }
        report(&mut md, workload, n, &cells);
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("apart.md"), &md)?;
    print!("{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall_s: f64, user_s: f64, sys_s: f64, prog_s: f64) -> Sample {
        Sample {
            wall_s,
            user_s,
            sys_s,
            prog_s,
            per_prog: BTreeMap::from([("mdatp_sys_exit".to_string(), (1000, 124_000))]),
            sensor_cpu_s: 0.0,
            events: 0,
            loss: 0,
        }
    }

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn the_added_time_is_split_against_the_baseline() {
        let cells = vec![
            (
                Config::Baseline,
                vec![sample(2.0, 0.5, 1.4, 0.0), sample(2.2, 0.5, 1.6, 0.0)],
            ),
            (
                Config::EbpfAllOff,
                vec![sample(2.5, 0.5, 1.9, 0.1), sample(2.5, 0.5, 1.9, 0.1)],
            ),
        ];
        let mut md = String::new();
        report(&mut md, "read-heavy", 14, &cells);
        // Baseline medians: wall 2.1, user 0.5, sys 1.5; the floor adds
        // 0.4 s of wall (19.0%), all of it system time, 0.1 s of it in
        // the programs (4.8%).
        assert!(
            md.contains("| mdatpd-ebpf-all-off | +19.0% | +0.0% | +19.0% | +0.0% | +4.8% |"),
            "{md}"
        );
        assert!(md.contains("| mdatp_sys_exit | 1000 | 0.1 | 124 |"), "{md}");
    }
}
