//! Health values (D-Bus variants) as JSON and as a table.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use zbus::zvariant::{OwnedValue, Value};

fn to_json(v: &Value<'_>) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::U8(n) => Json::from(*n),
        Value::U16(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::I16(n) => Json::from(*n),
        Value::I32(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::F64(n) => Json::from(*n),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Value(inner) => to_json(inner),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Dict(d) => {
            let mut m = Map::new();
            for (k, v) in d.iter() {
                let key = match k {
                    Value::Str(s) => s.to_string(),
                    other => format!("{other:?}"),
                };
                m.insert(key, to_json(v));
            }
            Json::Object(m)
        }
        other => Json::String(format!("{other:?}")),
    }
}

pub fn health_json(h: &HashMap<String, OwnedValue>) -> Map<String, Json> {
    let mut m = Map::new();
    for (k, v) in h {
        m.insert(k.clone(), to_json(v));
    }
    m
}

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

pub fn table(h: &Map<String, Json>) -> String {
    let width = mdatp_dbus::HEALTH_KEYS
        .iter()
        .map(|k| k.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let known = mdatp_dbus::HEALTH_KEYS.iter().map(|k| k.to_string());
    let extra = h
        .keys()
        .filter(|k| !mdatp_dbus::HEALTH_KEYS.contains(&k.as_str()))
        .cloned();
    for k in known.chain(extra) {
        if let Some(v) = h.get(&k) {
            out.push_str(&format!("{k:<width$}  {}\n", plain(v)));
        }
    }
    out
}
