//! `mdatp diagnostic create`: one tar.gz with what support needs — health,
//! the effective configuration with its sources, kernel and distribution,
//! audit status and our rules, the BPF programs in use, the recent log —
//! with anything that looks like a secret redacted.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

use flate2::Compression;
use flate2::write::GzEncoder;

/// The most recent log lines, kept for the diagnostics archive.
pub static RECENT_LOG: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
const RECENT_LOG_LINES: usize = 2000;
/// Bound of one kept line: log lines quote event data (paths, argv), and
/// 2,000 lines of 4 KiB paths would be 8 MiB; longer lines are cut.
pub const RECENT_LOG_LINE_BYTES: usize = 1024;

pub fn remember_log_line(mut line: String) {
    if line.len() > RECENT_LOG_LINE_BYTES {
        let mut cut = RECENT_LOG_LINE_BYTES;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        let more = line.len() - cut;
        line.truncate(cut);
        line.push_str(&format!(" [{more} more bytes cut]"));
    }
    if let Ok(mut q) = RECENT_LOG.lock() {
        if q.len() >= RECENT_LOG_LINES {
            q.pop_front();
        }
        q.push_back(line);
    }
}

const SECRET_WORDS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "private_key",
    "api_key",
];

/// Masks the value of every `key = value` / `key: value` line whose key
/// names a secret.
pub fn redact(text: &str) -> String {
    text.lines()
        .map(|l| {
            let key_end = l.find(['=', ':']).unwrap_or(l.len());
            // Lower-case the key alone: lower-casing can change a text's
            // length (the Kelvin sign, 3 bytes, becomes 'k'), so offsets
            // into the original never index the lowered copy.
            let key = l[..key_end].to_lowercase();
            if SECRET_WORDS.iter().any(|w| key.contains(w)) && key_end < l.len() {
                format!("{} <redacted>", &l[..=key_end])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(cmd: &str, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output() {
        Ok(o) => format!(
            "$ {cmd} {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("$ {cmd} {}\ncannot run: {e}\n", args.join(" ")),
    }
}

/// The parts of the archive, name → text.
#[derive(Debug)]
pub struct Parts {
    pub health_json: String,
    pub config_explain: String,
    /// The hot paths and executables (as SIGUSR2 logs them).
    pub hot_sources: String,
}

#[derive(Debug, thiserror::Error)]
#[error("write the diagnostics archive {path}")]
pub struct DiagError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// The daemon's own BPF maps and programs with their kernel memory and
/// cumulative run counts (counted only while kernel.bpf_stats_enabled
/// was on; `mdatp diagnostic ebpf-statistics` samples a window).
fn bpf_objects_text() -> String {
    let mut out = String::from("kind\tid\tname\tmemlock_bytes\trun_cnt\trun_time_ns\tdetail\n");
    for o in crate::own_usage::bpf_objects(Path::new("/proc/self")) {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            o.kind.as_str(),
            o.id,
            o.name,
            o.memlock,
            o.run_cnt,
            o.run_time_ns,
            o.detail
        ));
    }
    out
}

/// Writes `mdatp-diag-<UTC time>.tar.gz` into `dir`; returns its path.
pub fn create(dir: &Path, parts: Parts) -> Result<PathBuf, DiagError> {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "-");
    let path = dir.join(format!("mdatp-diag-{stamp}.tar.gz"));
    let err = |source| DiagError {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let bpf = run("bpftool", &["prog", "show"]);
    let audit_rules: String = {
        let all = run("auditctl", &["-l"]);
        let ours: Vec<&str> = all
            .lines()
            .filter(|l| crate::audit::rules::is_ours(l))
            .collect();
        let foreign = all
            .lines()
            .filter(|l| l.starts_with('-'))
            .count()
            .saturating_sub(ours.len());
        format!(
            "rules keyed mdatp:\n{}\n(other tools' rules: {foreign}, not listed)\n",
            ours.join("\n")
        )
    };
    let log: String = RECENT_LOG
        .lock()
        .map(|q| q.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    let files: Vec<(&str, String)> = vec![
        ("health.json", parts.health_json),
        ("config.txt", redact(&parts.config_explain)),
        (
            "system.txt",
            format!("{}\n/etc/os-release:\n{os}", run("uname", &["-a"])),
        ),
        (
            "audit.txt",
            format!("{}\n{audit_rules}", run("auditctl", &["-s"])),
        ),
        ("bpf.txt", bpf),
        ("bpf-objects.txt", bpf_objects_text()),
        ("hot-sources.txt", parts.hot_sources),
        ("daemon.log", redact(&log)),
    ];
    let f = std::fs::File::create(&path).map_err(err)?;
    let mut tar = tar::Builder::new(GzEncoder::new(f, Compression::default()));
    for (name, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        header.set_cksum();
        tar.append_data(&mut header, format!("mdatp-diag/{name}"), text.as_bytes())
            .map_err(err)?;
    }
    let gz = tar.into_inner().map_err(err)?;
    gz.finish().map_err(err)?.flush().map_err(err)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_redacted() {
        let t = redact("folding.window_ms = 5\nupload.api_token = \"abc\"\nPassword: hunter2");
        assert!(t.contains("folding.window_ms = 5"));
        assert!(!t.contains("abc") && !t.contains("hunter2"), "{t}");
    }

    #[test]
    fn a_long_line_is_cut_on_a_character_boundary() {
        let long = format!("x{}", "\u{212a}".repeat(2000));
        remember_log_line(long);
        let q = RECENT_LOG.lock().unwrap();
        let kept = q.back().unwrap();
        assert!(kept.len() < RECENT_LOG_LINE_BYTES + 40, "{}", kept.len());
        assert!(kept.ends_with("more bytes cut]"), "{kept}");
    }

    #[test]
    fn text_whose_lower_case_changes_length_never_panics() {
        // Any user can plant such a path in the log (a file name the hot
        // sources list): the Kelvin sign (3 bytes) lowers to 'k' (1), 'İ'
        // (2) to "i̇" (3).
        let planted = "open \u{212a}\u{212a}\u{e9}\u{e9}/x hot 200\n\u{130}\u{130}\u{130}\u{130} token: s3cret\n\u{130}\u{e9}: v\n\u{212a}";
        let t = redact(planted);
        assert!(!t.contains("s3cret"), "{t}");
        assert!(t.contains("\u{212a}\u{212a}"), "{t}");
    }
}
