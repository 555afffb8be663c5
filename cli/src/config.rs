//! `mdatp config`: read a setting with its source, check a change, or
//! make it — telling changed from unchanged for automation (Ansible's
//! `changed_when`, Puppet's `unless`).

use std::collections::HashMap;

use mdatp_cli::args::Output;
use mdatp_dbus::Sensor1Proxy;
use zbus::zvariant::Value;

use crate::explain;

/// What a config command found.
pub enum Outcome {
    /// Done (changed, would change, or a read).
    Done,
    /// The value is already what was asked: nothing written or reloaded.
    Unchanged,
    /// `in-force`: some setting of the file is not (yet) in force.
    NotInForce,
}

fn key_of(setting: &str) -> String {
    setting.replace('-', "_")
}

fn print(map: &HashMap<String, String>, key: &str, output: Output, table: String) {
    match output {
        Output::Json => {
            let mut obj: serde_json::Map<String, serde_json::Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            obj.insert("key".into(), key.into());
            // Values are JSON text: give them back as JSON.
            for k in ["value", "current", "proposed"] {
                if let Some(serde_json::Value::String(t)) = obj.get(k)
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(t)
                {
                    obj.insert(k.into(), v);
                }
            }
            if let Some(serde_json::Value::String(c)) = obj.get("changed") {
                let b = c == "true";
                obj.insert("changed".into(), b.into());
            }
            println!("{}", serde_json::Value::Object(obj));
        }
        Output::Table => println!("{table}"),
    }
}

pub async fn get(
    proxy: &Sensor1Proxy<'_>,
    setting: &str,
    output: Output,
) -> Result<Outcome, String> {
    let key = key_of(setting);
    let d = proxy.describe_config(&key).await.map_err(explain)?;
    let value = d.get("value").map_or("(not set)", String::as_str);
    let source = d.get("source").map_or("default", String::as_str);
    let lock = match d.get("locked_by").map(String::as_str) {
        Some("") | None => String::new(),
        Some(f) => format!(" [locked by {f}]"),
    };
    print(
        &d,
        &key,
        output,
        format!("{key} = {value} ({source}){lock}"),
    );
    Ok(Outcome::Done)
}

/// `--check`: whether the change would be made; otherwise make it,
/// unless the value is already what was asked.
pub async fn set(
    proxy: &Sensor1Proxy<'_>,
    setting: &str,
    value: &str,
    check_only: bool,
    output: Output,
) -> Result<Outcome, String> {
    let key = key_of(setting);
    let v = Value::from(value);
    let outcome = proxy.check_config(&key, &v).await.map_err(explain)?;
    let changed = outcome.get("changed").is_some_and(|c| c == "true");
    let current = outcome.get("current").map_or("", String::as_str);
    let proposed = outcome.get("proposed").map_or("", String::as_str);
    if changed && !check_only {
        proxy.set_config(&key, &v).await.map_err(explain)?;
    }
    let verdict = match (changed, check_only) {
        (true, true) => "would change",
        (true, false) => "changed",
        (false, _) => "unchanged",
    };
    print(
        &outcome,
        &key,
        output,
        format!("{key}: {current} -> {proposed} ({verdict})"),
    );
    Ok(if changed {
        Outcome::Done
    } else {
        Outcome::Unchanged
    })
}

/// `in-force FILE`: whether every setting of FILE is in force in the
/// running sensor; what is not is listed with the value in force and the
/// file it comes from (a reload not applied yet, or a later layer).
pub async fn in_force(
    proxy: &Sensor1Proxy<'_>,
    file: &std::path::Path,
    output: Output,
) -> Result<Outcome, String> {
    // The daemon compares layer paths as absolute paths.
    let file = std::path::absolute(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let pending = proxy
        .not_in_force(&file.display().to_string())
        .await
        .map_err(explain)?;
    let pending: std::collections::BTreeMap<_, _> = pending.into_iter().collect();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "file": file.display().to_string(),
                "in_force": pending.is_empty(),
                "not_in_force": pending,
            })
        ),
        Output::Table if pending.is_empty() => println!("{}: in force", file.display()),
        Output::Table => {
            println!("{}: not in force:", file.display());
            for (k, why) in &pending {
                println!("  {k} = {why}");
            }
        }
    }
    Ok(if pending.is_empty() {
        Outcome::Done
    } else {
        Outcome::NotInForce
    })
}
