//! Diagnostics redaction on any text (a log line carries file names any
//! user can choose): it must not panic — the Kelvin-sign crash of
//! `mdatp diagnostic create` was a slice of lower-cased text at offsets
//! of the original — and a secret after a secret-looking key must not
//! survive it.
//!
//! The body shared by the libFuzzer target (`fuzz_targets/`) and the
//! stable replay test (`tests/fuzz-replay`).

pub fn run(data: &[u8]) {
    const SECRET: &str = "Zq7xSecretValue9";
    let text = String::from_utf8_lossy(data);
    let _ = mdatpd::diagnostic::redact(&text);
    if text.contains(SECRET) {
        return;
    }
    // A secret on its own line after the input's text: never in the
    // output, whatever came before it.
    let planted = format!("{text}\npassword: {SECRET}\n");
    let out = mdatpd::diagnostic::redact(&planted);
    assert!(!out.contains(SECRET), "secret survived redaction: {out:?}");
}
