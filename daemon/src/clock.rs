//! Host identity and time: the boot id, kernel boot-time clock to wall
//! clock conversion, and stable process entity ids.

use std::io;

use uuid::Uuid;

/// Clock ticks per second that /proc/<pid>/stat reports start times in.
/// Entity ids are computed at this resolution so that an id derived from
/// a BPF event and one derived from /proc agree.
const USER_HZ: u64 = 100;
const NS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;

/// Namespace for entity-id UUIDs (v5); fixed forever so ids are stable
/// across daemon versions and restarts.
const ENTITY_NAMESPACE: Uuid = Uuid::from_u128(0x6d64_6174_7000_4e00_8000_656e_7469_7479);

#[derive(Debug, Clone)]
pub struct HostClock {
    boot_id: String,
    /// Wall-clock time of boot, in ns since the Unix epoch.
    boot_wall_ns: i128,
}

impl HostClock {
    pub fn from_system() -> io::Result<Self> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
            .trim()
            .to_string();
        let boot_wall_ns = now_ns(libc::CLOCK_REALTIME)? - now_ns(libc::CLOCK_BOOTTIME)?;
        Ok(Self {
            boot_id,
            boot_wall_ns,
        })
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// Converts a CLOCK_BOOTTIME reading (bpf_ktime_get_boot_ns, task
    /// start_boottime) to ns since the Unix epoch.
    pub fn boot_to_unix_ns(&self, boot_ns: u64) -> u64 {
        u64::try_from(self.boot_wall_ns + i128::from(boot_ns)).unwrap_or(0)
    }

    /// The inverse of boot_to_unix_ns.
    pub fn unix_to_boot_ns(&self, unix_ns: u64) -> u64 {
        u64::try_from(i128::from(unix_ns) - self.boot_wall_ns).unwrap_or(0)
    }

    pub fn now_unix_ns(&self) -> u64 {
        now_ns(libc::CLOCK_REALTIME)
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0)
    }

    /// The stable identity of a process: boot id + pid + start time, so a
    /// consumer can rebuild the tree across pid reuse and daemon restarts.
    pub fn entity_id(&self, pid: u32, start_boottime_ns: u64) -> String {
        let ticks = start_boottime_ns / NS_PER_TICK;
        let name = format!("{}:{pid}:{ticks}", self.boot_id);
        Uuid::new_v5(&ENTITY_NAMESPACE, name.as_bytes()).to_string()
    }
}

/// Start time in ns since boot from /proc/<pid>/stat's clock ticks.
pub fn ticks_to_boot_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(NS_PER_TICK)
}

/// True when two boot-time start stamps denote the same process start at
/// /proc's resolution.
pub fn same_start(a_ns: u64, b_ns: u64) -> bool {
    a_ns / NS_PER_TICK == b_ns / NS_PER_TICK
}

fn now_ns(clock: libc::clockid_t) -> io::Result<i128> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> HostClock {
        HostClock {
            boot_id: "b0".into(),
            boot_wall_ns: 1_000,
        }
    }

    #[test]
    fn entity_id_is_stable_within_a_tick_and_differs_across_pids() {
        let c = clock();
        assert_eq!(c.entity_id(7, 1_000_000_001), c.entity_id(7, 1_009_999_999));
        assert_ne!(c.entity_id(7, 1_000_000_001), c.entity_id(8, 1_000_000_001));
        assert_ne!(c.entity_id(7, 1_000_000_001), c.entity_id(7, 1_010_000_000));
    }

    #[test]
    fn boot_time_converts_to_wall_time() {
        assert_eq!(clock().boot_to_unix_ns(5), 1_005);
    }
}
