//! The fuzz targets' bodies on every committed input (fuzz/seeds: the
//! real-shaped seeds, the minimized corpora of the million-input runs and
//! every input that once failed) and a budget of
//! generated ones (`MDATP_FUZZ_REPLAY_INPUTS` per target, default 10,000;
//! half random bytes, half mutations of committed inputs; the generator's
//! seed is `MDATP_FUZZ_SEED`, default fixed, so a run repeats). An input
//! that fails is written to `target/fuzz-replay-failures/<target>-<n>`
//! for `cargo fuzz run <target> <file>` and becomes a seed with its fix.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/targets/audit_chain.rs"]
mod audit_chain;
#[path = "../../../fuzz/targets/config_layers.rs"]
mod config_layers;
#[path = "../../../fuzz/targets/ebpf_record.rs"]
mod ebpf_record;
#[path = "../../../fuzz/targets/json_writer.rs"]
mod json_writer;
#[path = "../../../fuzz/targets/redact.rs"]
mod redact;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// xorshift64*: a generator, not a secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn committed(target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["fuzz/seeds"] {
        let Ok(entries) = std::fs::read_dir(repo().join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        out.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
    }
    out
}

/// A committed input changed a little: bytes flipped, the separators the
/// targets split on (0, 0xA5, 0xFF) inserted, a piece of another spliced.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(8) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, [0u8, 0xA5, 0xFF][rng.below(3)]);
            }
            2 if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = a + rng.below(other.len() - a + 1);
                let i = rng.below(v.len() + 1);
                v.splice(i..i, other[a..b].iter().copied());
            }
            _ => v.truncate(rng.below(v.len() + 1)),
        }
    }
    v
}

fn replay(target: &str, run: fn(&[u8])) {
    let budget: usize = std::env::var("MDATP_FUZZ_REPLAY_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("MDATP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d64_6174_7066_757a);
    let mut rng = Rng(seed | 1);
    let base = committed(target);
    let mut inputs = base.clone();
    for i in 0..budget {
        inputs.push(if i % 2 == 0 || base.is_empty() {
            let len = rng.below(2048);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let a = &base[rng.below(base.len())];
            let b = &base[rng.below(base.len())];
            mutate(&mut rng, a, b)
        });
    }
    let total = inputs.len();
    for (n, input) in inputs.into_iter().enumerate() {
        if catch_unwind(AssertUnwindSafe(|| run(&input))).is_err() {
            let dir = repo().join("target/fuzz-replay-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{target}-{n}"));
            std::fs::write(&file, &input).unwrap();
            panic!(
                "{target}: input {n} of {total} failed (the panic is above); written to {}",
                file.display()
            );
        }
    }
    eprintln!(
        "{target}: {total} inputs ({} committed, {budget} generated, seed {seed})",
        base.len()
    );
}

#[test]
fn audit_chain() {
    replay("audit_chain", audit_chain::run);
}

#[test]
fn config_layers() {
    replay("config_layers", config_layers::run);
}

#[test]
fn ebpf_record() {
    replay("ebpf_record", ebpf_record::run);
}

#[test]
fn json_writer() {
    replay("json_writer", json_writer::run);
}

#[test]
fn redact() {
    replay("redact", redact::run);
}
