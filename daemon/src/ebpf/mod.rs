//! The eBPF event source: loads mdatp's BPF object, attaches each program
//! on its own, reads the ring buffer and turns its records into
//! normalized events, counting every loss.

mod background_load;
mod convert;
mod counters;
pub mod decode;
mod filter_maps;
mod io_uring;
mod kfunc;
mod loader;
pub mod map_sizes;
pub mod probe;
pub mod records;
mod source;

pub use background_load::BackgroundLoad;
pub use convert::{Converter, EbpfLoss};
pub use counters::BpfCounters;
pub use kfunc::KfuncResolution;
pub use loader::{EbpfError, EbpfSensor, HookStatus, KfuncChoice, LoadOptions};
pub use source::EbpfSource;
