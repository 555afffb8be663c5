//! The audit provider's chain on any datagrams: netlink split, record
//! header, assembly by serial (interleaved, out of order, missing EOE,
//! timed out), conversion to events (hex values, huge argc, cut records),
//! and the OCSF writer. Nothing may panic; every written event is valid
//! JSON.
//!
//! The body shared by the libFuzzer target (`fuzz_targets/`) and the
//! stable replay test (`tests/fuzz-replay`).

use std::time::{Duration, Instant};

use mdatpd::audit::assemble::Assembler;
use mdatpd::audit::convert::convert;
use mdatpd::audit::netlink::parse_datagram;
use mdatpd::sink::Detail;

pub fn run(data: &[u8]) {
    let start = Instant::now();
    let mut assembler = Assembler::default();
    let mut records = Vec::new();
    let mut events = Vec::new();
    // 0xFF separates datagrams; every third one lets the clock run past
    // the incomplete-event timeout.
    for (i, datagram) in data.split(|b| *b == 0xFF).take(64).enumerate() {
        records.clear();
        parse_datagram(datagram, &mut records);
        let now = start + Duration::from_secs(i as u64 / 3 * 3);
        for rec in records.drain(..) {
            events.extend(assembler.push(rec, now));
        }
        events.extend(assembler.expire(now));
    }
    events.extend(assembler.expire(start + Duration::from_secs(3600)));
    let mut out = Vec::new();
    for ev in &events {
        if let Ok(c) = convert(ev) {
            for detail in [Detail::Full, Detail::Compact] {
                out.clear();
                mdatpd::ocsf::write(&c.event, "fuzz", detail, &mut out);
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(&out) {
                    panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&out));
                }
            }
        }
    }
}
