//! libFuzzer target `config_layers`; what it checks and its body are in
//! `targets/config_layers.rs` (shared with the stable replay test).
#![no_main]

#[path = "../targets/config_layers.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
