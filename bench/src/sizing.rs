//! How many times a workload repeats: enough to last a measurable time
//! unmonitored, found by running it (every subcommand that compares
//! configurations on the workloads sizes them the same way).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

/// The shortest unmonitored run of a workload: shorter runs were
/// dominated by start-up and scheduling noise (a 0.3 s grep swung 0.26 s
/// to 12.6 s between repetitions).
pub const MIN_BASELINE_S: f64 = 2.0;

/// Runs `workload NAME N` once and returns its wall time.
fn time_workload(me: &Path, name: &str, n: u64) -> Result<f64> {
    let t0 = Instant::now();
    let st = Command::new(me)
        .args(["workload", name, &n.to_string()])
        .status()?;
    if !st.success() {
        bail!("workload {name} failed");
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// The size at which NAME lasts at least MIN_BASELINE_S without a
/// monitor: grown from `start` by the measured rate (10% headroom) until
/// a run confirms it. The last run is also the warm pass. The first run
/// only warms: a cold one (page cache, the binaries) can last the 2 s
/// that warm repetitions do not — `grep -r` over /usr/include took over
/// 2 s cold and 0.22 s warm, and was measured at that size.
pub fn calibrate(me: &Path, name: &str, start: u64) -> Result<u64> {
    let mut n = start.max(1);
    time_workload(me, name, n)?;
    for _ in 0..8 {
        let t = time_workload(me, name, n)?;
        if t >= MIN_BASELINE_S {
            return Ok(n);
        }
        let grown = (n as f64 * MIN_BASELINE_S * 1.1 / t.max(0.001)).ceil() as u64;
        n = grown.max(n + 1);
    }
    bail!("workload {name} did not reach {MIN_BASELINE_S} s at n={n}")
}
