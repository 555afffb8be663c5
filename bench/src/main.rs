//! `mdatp-bench`: every workload under every monitoring configuration in
//! one run, interleaved and repeated; ratios against the baseline measured
//! in the same run. Writes a Markdown table and a JSON file.
//!
//!   mdatp-bench run [--reps 3] [--scale 1.0] [--out DIR] [--workloads a,b] [--configs a,b]
//!   mdatp-bench ceiling [--seconds 3]
//!   mdatp-bench kernel-cost [--pairs 500000] [--reps 3]
//!   mdatp-bench apart [--workloads read-heavy,connect] [--reps 5]
//!   mdatp-bench workload NAME N        (used by `run`; times one workload)

mod apart;
mod ceiling;
mod config;
mod delivery;
mod kernel_cost;
mod monitors;
mod proc;
mod process_memory;
mod report;
mod settle;
mod sizing;
mod soak;
mod stages;
mod workloads;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mdatp-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Run {
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Multiplies every workload's size.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        #[arg(long, value_delimiter = ',')]
        workloads: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        configs: Vec<config::Config>,
        /// mdatpd to measure (default: target/release/mdatpd).
        #[arg(long)]
        mdatpd: Option<PathBuf>,
    },
    Ceiling {
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        #[arg(long)]
        mdatpd: Option<PathBuf>,
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// What an open costs in the kernel: the sensor's BPF programs' run
    /// time per open+close pair (folded, emitted, the floor).
    KernelCost {
        #[arg(long, default_value_t = 500_000)]
        pairs: u64,
        #[arg(long, default_value_t = 3)]
        reps: usize,
        #[arg(long)]
        mdatpd: Option<PathBuf>,
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// A workload's added time taken apart: the workload's user and
    /// system CPU, its waiting, the sensor's programs' run time, against
    /// the baseline, the floor (every event type off), defaults and
    /// folding off.
    Apart {
        #[arg(long, value_delimiter = ',', default_value = "read-heavy,connect")]
        workloads: Vec<String>,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        #[arg(long)]
        mdatpd: Option<PathBuf>,
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    Workload {
        name: String,
        n: u64,
    },
    /// The load tests (docs/RELIABILITY.md): fork storm, 10,000 live
    /// processes with 4 KiB argv, pid churn, a D-Bus flood from an
    /// unprivileged user, an install storm on busy cores.
    Soak {
        /// Length of the fork storm.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only these loads (fork-storm, argv, pid-churn, dbus-flood,
        /// install-storm).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[arg(long)]
        mdatpd: Option<PathBuf>,
    },
    /// The D-Bus flood's client (run by `soak` as an unprivileged user).
    DbusClient {
        #[arg(long)]
        address: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        tasks: usize,
    },
    /// User-space cost per event, by pipeline stage.
    Stages {
        #[arg(long, default_value_t = 200_000)]
        n: u64,
        /// Only the in-memory stages (decode, OCSF, the whole pipeline):
        /// no event file, nats-server or rsyslogd; for callgrind.
        #[arg(long)]
        pipeline_only: bool,
    },
    /// The heap the event loop holds per short process (fork, exec,
    /// exit) while the exited processes' grace period keeps them.
    ProcessMemory {
        #[arg(long, value_delimiter = ',', default_value = "2000,10000,50000")]
        counts: Vec<u32>,
    },
}

/// One measured cell.
#[derive(Debug, Clone)]
pub struct Cell {
    pub workload: String,
    pub config: config::Config,
    pub rep: usize,
    pub wall_s: f64,
    pub stats: monitors::Stats,
}

fn default_mdatpd() -> PathBuf {
    PathBuf::from("target/release/mdatpd")
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Workload { .. }) {
        // Start the workloads from a clean descriptor table, as a service
        // manager or a login would: a descriptor leaked into this process
        // above 63 (some terminals and CI runners leave one) would grow
        // every workload's table and change what the kernel side measures.
        // open-one-grown measures that case on purpose.
        // SAFETY: nothing in this process has opened a descriptor yet.
        unsafe { libc::close_range(3, u32::MAX, 0) };
    }
    match cli.cmd {
        Cmd::Stages { n, pipeline_only } => stages::run(n, pipeline_only),
        Cmd::ProcessMemory { counts } => process_memory::run(&counts),
        Cmd::Soak {
            seconds,
            only,
            mdatpd,
        } => soak::run(
            &monitors::Paths {
                mdatpd: mdatpd.unwrap_or_else(default_mdatpd),
            },
            seconds,
            &only,
        ),
        Cmd::DbusClient {
            address,
            seconds,
            tasks,
        } => soak::dbus_client(&address, seconds, tasks),
        Cmd::KernelCost {
            pairs,
            reps,
            mdatpd,
            out,
        } => kernel_cost::run(
            &monitors::Paths {
                mdatpd: mdatpd.unwrap_or_else(default_mdatpd),
            },
            pairs,
            reps,
            &out,
        ),
        Cmd::Apart {
            workloads: wl,
            reps,
            mdatpd,
            out,
        } => apart::run(
            &monitors::Paths {
                mdatpd: mdatpd.unwrap_or_else(default_mdatpd),
            },
            &wl,
            reps,
            &out,
        ),
        Cmd::Workload { name, n } => {
            let scratch = tempfile::tempdir()?;
            workloads::run(&name, n, scratch.path())
        }
        Cmd::Ceiling {
            seconds,
            mdatpd,
            out,
        } => {
            let paths = monitors::Paths {
                mdatpd: mdatpd.unwrap_or_else(default_mdatpd),
            };
            // The audit part changes the kernel's backlog limit.
            let saved = monitors::AuditSaved::save();
            let result = ceiling::run(&paths, seconds, &out);
            saved.restore();
            result
        }
        Cmd::Run {
            reps,
            scale,
            out,
            workloads: wl,
            configs,
            mdatpd,
        } => {
            let paths = monitors::Paths {
                mdatpd: mdatpd.unwrap_or_else(default_mdatpd),
            };
            if !paths.mdatpd.exists() {
                bail!(
                    "{} not found: cargo build --release -p mdatpd",
                    paths.mdatpd.display()
                );
            }
            monitors::check_audit_idle()?;
            let me = std::env::current_exe()?;
            // Each workload is sized so that it lasts at least
            // MIN_BASELINE_S unmonitored; the sizing runs are its untimed
            // warm pass (page cache, dentries, the binaries it runs).
            let mut chosen: Vec<(&str, u64)> = Vec::new();
            for (name, size, _) in workloads::WORKLOADS
                .iter()
                .filter(|(n, _, _)| wl.is_empty() || wl.iter().any(|w| w == n))
            {
                let n = sizing::calibrate(&me, name, *size)?;
                let n = ((n as f64) * scale).max(1.0) as u64;
                eprintln!(
                    "{name:<14} n={n} (at least {} s unmonitored, warm)",
                    sizing::MIN_BASELINE_S
                );
                chosen.push((name, n));
            }
            let cfgs: Vec<config::Config> = config::Config::ALL
                .into_iter()
                .filter(|c| configs.is_empty() || configs.contains(c))
                .collect();
            if !cfgs.contains(&config::Config::Baseline) {
                bail!("the baseline configuration is required: ratios are against it");
            }
            let saved = monitors::AuditSaved::save();
            let mut cells = Vec::new();
            let result = (|| -> Result<()> {
                for rep in 0..reps {
                    for (wname, n) in &chosen {
                        // Warm again, untimed: without it read-heavy's first
                        // cell of each repetition was 0.6–0.9 s slower,
                        // whatever its configuration (after the other
                        // workloads' cells; cause not pinned down:
                        // docs/PERFORMANCE.md, Method).
                        settle::settle().note("the last cell's leftovers");
                        let st = Command::new(&me)
                            .args(["workload", wname, &n.to_string()])
                            .status()?;
                        if !st.success() {
                            bail!("workload {wname} failed in its warm pass");
                        }
                        // Interleaved: the configuration order rotates per repetition.
                        for i in 0..cfgs.len() {
                            let cfg = cfgs[(i + rep) % cfgs.len()];
                            // Idle before the monitor starts (what the last
                            // cell left) and after (its own start-up).
                            settle::settle().note("the last cell's leftovers");
                            let mut mon = monitors::Monitor::start(cfg, &paths)
                                .with_context(|| format!("start {cfg}"))?;
                            settle::settle().note("the monitor's start-up");
                            mon.mark_start();
                            let t0 = Instant::now();
                            let st = Command::new(&me)
                                .args(["workload", wname, &n.to_string()])
                                .status()?;
                            let wall_s = t0.elapsed().as_secs_f64();
                            let stats = mon.stop().with_context(|| format!("stop {cfg}"))?;
                            if !st.success() {
                                bail!("workload {wname} failed under {cfg}");
                            }
                            eprintln!(
                                "rep {rep} {wname:<11} {:<19} {wall_s:8.3} s  events {:>9}  loss {}",
                                cfg.name(),
                                stats.events,
                                stats.loss
                            );
                            cells.push(Cell {
                                workload: wname.to_string(),
                                config: cfg,
                                rep,
                                wall_s,
                                stats,
                            });
                        }
                    }
                }
                Ok(())
            })();
            saved.restore();
            result?;
            report::write(&cells, &chosen, &out)
        }
    }
}
