//! The eBPF event provider: loads mdatp's BPF object, attaches each
//! program on its own, and hands out the ring buffer and loss counters.

mod counters;
mod loader;

pub use counters::BpfCounters;
pub use loader::{EbpfError, EbpfSensor, HookStatus, LoadOptions};
