//! A ring-buffer record as the kernel could hand it over, any bytes:
//! decoded, converted, enriched, filtered and written as OCSF by the
//! daemon's own pipeline. Nothing may panic, and every event written is
//! one line of valid JSON.
//!
//! The body shared by the libFuzzer target (`fuzz_targets/`) and the
//! stable replay test (`tests/fuzz-replay`).

use std::sync::{Mutex, OnceLock};

use mdatpd::clock::HostClock;
use mdatpd::ebpf::EbpfSource;
use mdatpd::enrich::Enricher;
use mdatpd::kind::EventKind;
use mdatpd::pipeline::Pipeline;
use mdatpd::process_cache::ProcessCache;
use mdatpd::sink::{Flushed, Sink};

/// Checks each record as the file output would receive it.
struct Checked;

impl Sink for Checked {
    fn push(&mut self, record: &[u8], _kind: Option<EventKind>) {
        assert!(!record.contains(&b'\n'), "a record spans lines");
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(record) {
            panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(record));
        }
    }
    fn flush(&mut self) -> Flushed {
        Flushed::default()
    }
}

struct State {
    source: EbpfSource,
    pipeline: Pipeline,
}

fn state() -> &'static Mutex<State> {
    static S: OnceLock<Mutex<State>> = OnceLock::new();
    S.get_or_init(|| {
        let clock = HostClock::from_system().expect("clock");
        Mutex::new(State {
            source: EbpfSource::new(clock.clone()),
            pipeline: Pipeline::new(Enricher::new(clock, ProcessCache::new()), Box::new(Checked))
                .with_hostname("fuzz"),
        })
    })
}

pub fn run(data: &[u8]) {
    let mut s = state().lock().unwrap_or_else(|p| p.into_inner());
    let State { source, pipeline } = &mut *s;
    // Several records per input: state carried between them (process
    // cache, folding reports, sequence numbers) is part of what is tested.
    for record in data.split(|b| *b == 0xA5).take(8) {
        source
            .converter()
            .record(record, &mut |ev| pipeline.submit(ev));
    }
    pipeline.flush();
}
