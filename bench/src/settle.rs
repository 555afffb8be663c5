//! Between two timed cells: the machine back to idle.
//!
//! What a cell leaves behind the kernel finishes later unless waited for:
//! dirty pages (auditd's log, the event file) are written back ~30 s
//! later, tens of thousands of closed sockets and deleted files are freed
//! through RCU and kworkers, a monitor that just started (mdatpd's load,
//! bpftrace's compile) is still settling. On a 2-core machine that work
//! shares a core with the next cell. So every cell starts after
//! `sync(2)` and once both cores have been idle for a while (a note on
//! stderr says when that took long or never came).

use std::time::{Duration, Instant};

/// How long one sample of the CPU counters lasts.
const WINDOW: Duration = Duration::from_millis(250);
/// Busy share of a window (all CPUs) under which the machine is idle.
const IDLE_BELOW: f64 = 0.05;
/// Consecutive idle windows needed.
const IDLE_WINDOWS: u32 = 2;
/// Longest wait: a host that is never idle still gets measured (the
/// spread column then shows it).
const MAX_WAIT: Duration = Duration::from_secs(20);

/// (busy, total) jiffies of all CPUs from /proc/stat's first line; iowait
/// counts as idle (a CPU waiting for the disk runs nothing).
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// What settling took.
pub struct Settled {
    pub waited: Duration,
    pub idle: bool,
}

impl Settled {
    /// Says so on stderr when settling took long or never got there.
    pub fn note(&self, after: &str) {
        if !self.idle || self.waited > Duration::from_secs(2) {
            eprintln!(
                "  (waited {:.1} s for {after} to finish{})",
                self.waited.as_secs_f64(),
                if self.idle {
                    ""
                } else {
                    "; the machine never became idle"
                }
            );
        }
    }
}

/// Writes every dirty page back, then waits until the CPUs are idle.
pub fn settle() -> Settled {
    let t0 = Instant::now();
    // SAFETY: sync has no preconditions; it returns once the writeback it
    // started is done.
    unsafe { libc::sync() };
    let mut quiet = 0;
    let mut last = cpu_jiffies();
    while quiet < IDLE_WINDOWS && t0.elapsed() < MAX_WAIT {
        std::thread::sleep(WINDOW);
        let now = cpu_jiffies();
        quiet = match (last, now) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                let busy = busy1.saturating_sub(busy0) as f64 / (total1 - total0) as f64;
                if busy < IDLE_BELOW { quiet + 1 } else { 0 }
            }
            // No /proc/stat: do not wait.
            _ => IDLE_WINDOWS,
        };
        last = now;
    }
    Settled {
        waited: t0.elapsed(),
        idle: quiet >= IDLE_WINDOWS,
    }
}
