//! Logging to the journal with structured fields. No journald runs on the
//! test machines, so the journal's socket is played by a datagram
//! listener at /run/systemd/journal/socket inside a private mount
//! namespace (a tmpfs over /run there; nothing on the host changes), and
//! JOURNAL_STREAM points at the daemon's stderr as systemd would set it.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

use mdatp_integration_tests::*;

/// Fields of one journal native-protocol datagram: `KEY=value` lines, or
/// `KEY\n` + u64 LE length + bytes + `\n` for values with newlines.
fn fields(mut d: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while !d.is_empty() {
        let nl = d.iter().position(|b| *b == b'\n').unwrap_or(d.len());
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            out.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            d = d.get(nl + 1..).unwrap_or(&[]);
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &d[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            out.insert(key, String::from_utf8_lossy(&rest[8..8 + len]).into_owned());
            d = rest.get(8 + len + 1..).unwrap_or(&[]);
        }
    }
    out
}

#[test]
fn logs_reach_the_journal_with_structured_fields() {
    skip_unless_root!();
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    std::fs::write(
        dir.join("listener.py"),
        "import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nout = open(sys.argv[2], 'wb')\nwhile True:\n    d = s.recv(1 << 20)\n    out.write(len(d).to_bytes(4, 'little') + d); out.flush()\n",
    )
    .unwrap();
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal
/usr/bin/python3 {dir}/listener.py /run/systemd/journal/socket {dir}/journal.bin &
L=$!
for i in $(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
: > {dir}/stderr
exec 2>>{dir}/stderr
JOURNAL_STREAM=$(stat -c '%d:%i' {dir}/stderr) {bin} --foreground --config-dir {dir}/etc --state-dir {dir}/state --audit-rules-dir {dir}/rules >/dev/null &
D=$!
for i in $(seq 150); do grep -qa "sensor running" {dir}/journal.bin 2>/dev/null && break; sleep 0.1; done
kill -TERM $D; wait $D || true
kill $L
"#,
        dir = dir.display(),
        bin = mdatpd_bin().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = std::fs::read(dir.join("journal.bin")).expect("journal datagrams");
    let mut records = Vec::new();
    let mut d = &raw[..];
    while d.len() >= 4 {
        let n = u32::from_le_bytes(d[..4].try_into().unwrap()) as usize;
        records.push(fields(&d[4..4 + n]));
        d = &d[4 + n..];
    }
    let running = records
        .iter()
        .find(|r| {
            r.get("MESSAGE")
                .is_some_and(|m| m.starts_with("sensor running"))
        })
        .unwrap_or_else(|| panic!("no 'sensor running' record in {records:#?}"));
    assert_eq!(
        running.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("mdatpd")
    );
    assert_eq!(running.get("PROVIDER").map(String::as_str), Some("ebpf"));
    // systemd-journal-logger maps log::Level::Info to notice (5).
    assert_eq!(running.get("PRIORITY").map(String::as_str), Some("5"));
    assert!(
        records
            .iter()
            .any(|r| r.get("MESSAGE").is_some_and(|m| m.starts_with("stopped:")))
    );
    // Nothing went to stderr: the journal had it all.
    assert_eq!(std::fs::read_to_string(dir.join("stderr")).unwrap(), "");
}
