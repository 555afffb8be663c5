//! Diagnostics redaction on any text (a log line carries file names any
//! user can choose): it must not panic — the Kelvin-sign crash of
//! `mdatp diagnostic create` was a slice of lower-cased text at offsets
//! of the original — and a secret after a secret-looking key must not
//! survive it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let once = mdatpd::diagnostic::redact(&text);
    // A planted secret after the input's own text: never in the output.
    let planted = format!("{text}\npassword: Zq7xSecretValue9\n");
    let out = mdatpd::diagnostic::redact(&planted);
    assert!(
        !out.contains("Zq7xSecretValue9"),
        "secret survived redaction: {out:?}"
    );
    let _ = once;
});
