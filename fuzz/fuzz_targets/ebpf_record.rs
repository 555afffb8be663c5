//! libFuzzer target `ebpf_record`; what it checks and its body are in
//! `targets/ebpf_record.rs` (shared with the stable replay test).
#![no_main]

#[path = "../targets/ebpf_record.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
