//! libFuzzer target `redact`; what it checks and its body are in
//! `targets/redact.rs` (shared with the stable replay test).
#![no_main]

#[path = "../targets/redact.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
