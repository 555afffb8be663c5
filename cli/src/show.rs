//! Health as a table for a person, or as JSON; both from `mdatp_dbus::Health`.

use serde_json::{Map, Value as Json};

/// A value for a person: strings bare, lists and maps comma-separated.
pub fn plain(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(", "),
        Json::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// Every field, in the order `Health` declares them.
pub fn table(h: &Map<String, Json>) -> String {
    let fields = mdatp_dbus::Health::FIELDS;
    let width = fields.iter().map(|k| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for k in fields {
        if let Some(v) = h.get(*k) {
            out.push_str(&format!("{k:<width$}  {}\n", plain(v)));
        }
    }
    out
}
