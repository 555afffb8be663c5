//! A live switch's load of the eBPF object, on a thread of its own. The
//! verifier takes seconds of CPU (7.8 s on this project's slowest VM, a
//! minute under emulation); on the event loop that held every source, the
//! timers and the D-Bus answers for as long, while the audit subsystem
//! that still serves the events filled its backlog. The loop keeps
//! draining the old provider and takes the loaded object when it is
//! ready (make before break, as before).
//!
//! A plain thread, not tokio's blocking pool: the runtime's shutdown
//! waits for the pool's tasks, and a stop during a load must not. When
//! the daemon stops first, the thread's send fails and the object is
//! dropped there: its programs are detached and unloaded with it.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{EbpfError, EbpfSensor, LoadOptions};
use crate::filters::KernelFilters;

pub struct BackgroundLoad {
    rx: oneshot::Receiver<Result<EbpfSensor, EbpfError>>,
    started: Instant,
    /// What the object's filter maps were filled with.
    filters: KernelFilters,
}

impl BackgroundLoad {
    /// Starts loading `opts`' object; `delay` (tests only) holds the
    /// thread first, so that a test can act while the load is under way.
    pub fn spawn(opts: LoadOptions, delay: Option<Duration>) -> Result<Self, EbpfError> {
        let (tx, rx) = oneshot::channel();
        let filters = opts.filters.clone();
        std::thread::Builder::new()
            .name("ebpf-load".into())
            .spawn(move || {
                if let Some(d) = delay {
                    std::thread::sleep(d);
                }
                // Err: the switch was cancelled (or the daemon stops):
                // the object, returned, is dropped here.
                if let Err(Ok(unused)) = tx.send(EbpfSensor::load(&opts)) {
                    drop(unused);
                    log::info!("the eBPF programs loaded for a cancelled switch are unloaded");
                }
            })
            .map_err(EbpfError::LoadThread)?;
        Ok(Self {
            rx,
            started: Instant::now(),
            filters,
        })
    }

    /// The load's outcome, once the thread has it.
    pub async fn finished(&mut self) -> Result<EbpfSensor, EbpfError> {
        match (&mut self.rx).await {
            Ok(outcome) => outcome,
            // The thread ended without an answer: it panicked.
            Err(_) => Err(EbpfError::LoadThread(std::io::Error::other(
                "the load thread ended without a result",
            ))),
        }
    }

    /// The filters the object was loaded with.
    pub fn filters(&self) -> &KernelFilters {
        &self.filters
    }

    /// Since when the load runs.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
