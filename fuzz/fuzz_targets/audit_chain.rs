//! libFuzzer target `audit_chain`; what it checks and its body are in
//! `targets/audit_chain.rs` (shared with the stable replay test).
#![no_main]

#[path = "../targets/audit_chain.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
