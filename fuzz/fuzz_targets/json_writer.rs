//! libFuzzer target `json_writer`; what it checks and its body are in
//! `targets/json_writer.rs` (shared with the stable replay test).
#![no_main]

#[path = "../targets/json_writer.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
