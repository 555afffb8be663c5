//! Configuration files as an admin (or a broken tool) could write them:
//! up to four layers (mdatp.yaml, a drop-in, local.yaml, a managed
//! profile) with any bytes, loaded and validated; then a change through
//! the `mdatp config` path (key and value from the input). Nothing may
//! panic: a bad tree is an error naming file and key, never a crash of
//! `mdatpd validate` or of the daemon's reload.
//!
//! The body shared by the libFuzzer target (`fuzz_targets/`) and the
//! stable replay test (`tests/fuzz-replay`).

use std::path::PathBuf;
use std::sync::OnceLock;

use mdatpd::config::{ConfigPaths, load, local};

fn tree() -> &'static (tempfile::TempDir, ConfigPaths) {
    static T: OnceLock<(tempfile::TempDir, ConfigPaths)> = OnceLock::new();
    T.get_or_init(|| {
        let t = tempfile::tempdir().expect("tempdir");
        let paths = ConfigPaths::under(t.path());
        for d in ["etc/conf.d", "etc/managed", "state"] {
            std::fs::create_dir_all(t.path().join(d)).expect("mkdir");
        }
        (t, paths)
    })
}

pub fn run(data: &[u8]) {
    let (_, paths) = tree();
    let files: [PathBuf; 4] = [
        paths.base(),
        paths.config_dir.join("conf.d/10-fuzz.yaml"),
        paths.local(),
        paths.config_dir.join("managed/50-fuzz.yaml"),
    ];
    let mut parts = data.split(|b| *b == 0);
    for f in &files {
        match parts.next() {
            Some(text) => std::fs::write(f, text).expect("write layer"),
            None => {
                let _ = std::fs::remove_file(f);
            }
        }
    }
    let key = parts.next().map(String::from_utf8_lossy);
    let value = parts.next().map(String::from_utf8_lossy);
    if let Ok(running) = load(paths) {
        let _ = running.describe("folding.window_ms");
        let _ = running.explain();
        if let (Some(k), Some(v)) = (key, value) {
            let _ = local::check(paths, &running, &k, &v);
            if local::set(paths, &running, &k, &v).is_ok() {
                // What was written must load again.
                load(paths).expect("a change accepted by set does not load");
            }
        }
    }
}
