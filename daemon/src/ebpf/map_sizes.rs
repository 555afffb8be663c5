//! How large the kernel maps are made on this host. The object declares
//! the worst case (an 8 MiB ring, 65,536 processes, 65,536 UDP flows:
//! 31.6 MiB of kernel memory, preallocated); the loader shrinks each to
//! what the host can use, from its CPUs, memory and process limit.
//!
//! A smaller table never hides an event: a process without a slot in
//! `procs` is not folded and not excluded (its events are reported), and a
//! forgotten UDP flow is reported again. Only the ring can lose, so it is
//! the one sized from the CPUs that fill it, with a floor.

const MIB: u64 = 1024 * 1024;

/// The ring's floor: what held a 60 s fork storm on 2 cores without loss
/// (docs/PERFORMANCE.md, "Kernel memory").
pub const RING_FLOOR: u32 = 4 * MIB as u32;
/// The ring's ceiling when sized automatically (an explicit
/// `--ring-buffer-size` may go beyond it).
pub const RING_CEILING: u32 = 64 * MIB as u32;
/// Ring bytes per possible CPU: a CPU that produces events can fill its
/// share while the daemon is descheduled.
const RING_PER_CPU: u64 = 2 * MIB;
/// At most this fraction of memory for the ring (a small VM keeps it).
const RING_MEMORY_SHARE: u64 = 256;

/// Declared in the object (events.h, the tables' max_entries in
/// common.bpf.h): the most either table holds.
pub const TABLE_CEILING: u32 = mdatp_bpf::abi::mdatp_bounds::MDATP_TABLE_CEILING;
const PROCS_FLOOR: u32 = 4_096;
const UDP_FLOWS_FLOOR: u32 = 8_192;
const UDP_FLOWS_PER_CPU: u32 = 4_096;

/// What the sizes are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: u32,
    pub mem_bytes: u64,
    /// min(kernel.pid_max, kernel.threads-max): how many processes can
    /// exist at once.
    pub process_limit: u32,
    /// Processes alive when the sensor loads.
    pub live_processes: u32,
}

/// The sizes handed to the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSizes {
    pub ring_bytes: u32,
    pub procs: u32,
    pub udp_flows: u32,
}

impl HostFacts {
    /// Read from /proc; a fact that cannot be read takes the value that
    /// gives the object's own (largest) size.
    pub fn read() -> Self {
        let number =
            |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
        let process_limit = [
            number("/proc/sys/kernel/pid_max"),
            number("/proc/sys/kernel/threads-max"),
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(TABLE_CEILING, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let live_processes = crate::procfs::pids(std::path::Path::new("/proc"))
            .map_or(TABLE_CEILING, |p| {
                u32::try_from(p.count()).unwrap_or(u32::MAX)
            });
        let mem_bytes = procfs::Current::current()
            .map(|m: procfs::Meminfo| m.mem_total)
            .unwrap_or(u64::MAX);
        let cpus = aya::util::nr_cpus()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(64);
        Self {
            cpus,
            mem_bytes,
            process_limit,
            live_processes,
        }
    }
}

impl MapSizes {
    /// `ring_override`: the ring size the administrator gave, kept as is.
    pub fn for_host(host: &HostFacts, ring_override: Option<u32>) -> Self {
        Self {
            ring_bytes: ring_override.unwrap_or_else(|| ring_bytes(host)),
            procs: procs_entries(host),
            udp_flows: udp_flow_entries(host),
        }
    }
}

fn ring_bytes(host: &HostFacts) -> u32 {
    let per_cpus = u64::from(host.cpus.max(1)).next_power_of_two() * RING_PER_CPU;
    let mut bytes = per_cpus.clamp(u64::from(RING_FLOOR), u64::from(RING_CEILING));
    while bytes > u64::from(RING_FLOOR) && bytes > host.mem_bytes / RING_MEMORY_SHARE {
        bytes /= 2;
    }
    // A power of two between the floor and the ceiling: fits in u32.
    u32::try_from(bytes).unwrap_or(RING_FLOOR)
}

/// Four times the processes alive at load (a host's process count swings;
/// the table is rebuilt at each load), at least the floor, at most what
/// can exist and the object's ceiling.
fn procs_entries(host: &HostFacts) -> u32 {
    let wanted = host
        .live_processes
        .saturating_mul(4)
        .max(PROCS_FLOOR)
        .checked_next_power_of_two()
        .unwrap_or(TABLE_CEILING);
    wanted
        .min(host.process_limit.max(PROCS_FLOOR))
        .min(TABLE_CEILING)
}

/// Flows are made by CPUs sending; the table only saves repeats.
fn udp_flow_entries(host: &HostFacts) -> u32 {
    host.cpus
        .clamp(1, TABLE_CEILING)
        .next_power_of_two()
        .saturating_mul(UDP_FLOWS_PER_CPU)
        .clamp(UDP_FLOWS_FLOOR, TABLE_CEILING)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * MIB;

    fn host(cpus: u32, mem_gib: u64, process_limit: u32, live: u32) -> HostFacts {
        HostFacts {
            cpus,
            mem_bytes: mem_gib * GIB,
            process_limit,
            live_processes: live,
        }
    }

    #[test]
    fn a_small_host_gets_the_floors() {
        let s = MapSizes::for_host(&host(2, 24, 32_768, 150), None);
        assert_eq!(
            s,
            MapSizes {
                ring_bytes: RING_FLOOR,
                procs: 4_096,
                udp_flows: 8_192
            }
        );
    }

    #[test]
    fn a_large_host_grows_each_map_up_to_the_ceilings() {
        let s = MapSizes::for_host(&host(96, 512, 4_194_304, 20_000), None);
        assert_eq!(
            s,
            MapSizes {
                ring_bytes: RING_CEILING,
                procs: 65_536,
                udp_flows: 65_536
            }
        );
        let s = MapSizes::for_host(&host(8, 32, 4_194_304, 1_500), None);
        assert_eq!(
            s,
            MapSizes {
                ring_bytes: 16 * MIB as u32,
                procs: 8_192,
                udp_flows: 32_768
            }
        );
    }

    #[test]
    fn little_memory_shrinks_the_ring_to_the_floor_not_below() {
        // 32 CPUs would want 64 MiB; 4 GiB of memory allows 16 MiB.
        assert_eq!(ring_bytes(&host(32, 4, 32_768, 100)), 16 * MIB as u32);
        assert_eq!(ring_bytes(&host(32, 0, 32_768, 100)), RING_FLOOR);
    }

    #[test]
    fn the_process_table_never_exceeds_what_can_exist_or_the_object() {
        assert_eq!(procs_entries(&host(2, 1, 10_000, 9_000)), 10_000);
        assert_eq!(procs_entries(&host(2, 1, 100, 90)), PROCS_FLOOR);
        assert_eq!(
            procs_entries(&host(2, 1, u32::MAX, u32::MAX)),
            TABLE_CEILING
        );
    }

    #[test]
    fn absurd_facts_do_not_overflow() {
        let s = MapSizes::for_host(&host(u32::MAX, u64::MAX / GIB, u32::MAX, u32::MAX), None);
        assert_eq!(
            s,
            MapSizes {
                ring_bytes: RING_CEILING,
                procs: 65_536,
                udp_flows: 65_536
            }
        );
    }

    #[test]
    fn an_explicit_ring_size_is_kept() {
        let s = MapSizes::for_host(&host(2, 24, 32_768, 150), Some(256 * MIB as u32));
        assert_eq!(s.ring_bytes, 256 * MIB as u32);
    }
}
