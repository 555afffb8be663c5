//! `mdatp events tail`: follows the daemon's event file (its path comes
//! from Health() over D-Bus) and prints one line per event for a person.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use serde_json::Value;

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The class caption; a compact record (output.detail) has only the id.
fn class(v: &Value) -> String {
    match (
        v.pointer("/class_name").and_then(Value::as_str),
        v["class_uid"].as_u64(),
    ) {
        (Some(name), _) => name.to_string(),
        (None, Some(1001)) => "File System Activity".into(),
        (None, Some(1007)) => "Process Activity".into(),
        (None, Some(3002)) => "Authentication".into(),
        (None, Some(4001)) => "Network Activity".into(),
        (None, uid) => format!("class {}", uid.unwrap_or(0)),
    }
}

/// The activity caption, or its id where a compact record left it out.
fn activity(v: &Value) -> String {
    match v.pointer("/activity_name").and_then(Value::as_str) {
        Some(name) => name.to_string(),
        None => format!("activity {}", v["activity_id"].as_u64().unwrap_or(0)),
    }
}

/// One event as a line: time, what, who, details.
pub fn summary(v: &Value) -> String {
    let ms = v["time"].as_u64().unwrap_or(0);
    let secs = ms / 1000;
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    );
    let what = format!("{}/{}", class(v), activity(v));
    let actor = if v.pointer("/process/pid").is_some() && v["class_uid"] == 1007 {
        "/process"
    } else {
        "/actor/process"
    };
    let who = format!(
        "pid={} {}",
        v.pointer(&format!("{actor}/pid"))
            .map(|p| p.to_string())
            .unwrap_or_default(),
        s(v, &format!("{actor}/name"))
    );
    let detail = match v["class_uid"].as_u64() {
        Some(1007) => s(v, "/process/cmd_line").to_string(),
        Some(1001) => {
            let mut d = s(v, "/file/path").to_string();
            if let Some(to) = v.pointer("/file_result/path").and_then(Value::as_str) {
                d.push_str(&format!(" -> {to}"));
            }
            if let Some(c) = v["count"].as_u64().filter(|c| *c > 1) {
                d.push_str(&format!(" (x{c})"));
            }
            d
        }
        Some(4001) => format!(
            "{}:{} -> {}:{}",
            s(v, "/src_endpoint/ip"),
            v.pointer("/src_endpoint/port")
                .map(|p| p.to_string())
                .unwrap_or_default(),
            s(v, "/dst_endpoint/ip"),
            v.pointer("/dst_endpoint/port")
                .map(|p| p.to_string())
                .unwrap_or_default()
        ),
        Some(3002) => format!("user={}", s(v, "/user/name")),
        _ => s(v, "/message").to_string(),
    };
    let status = match s(v, "/status") {
        "" | "Success" => String::new(),
        other => format!(" [{other} {}]", s(v, "/status_code")),
    };
    format!("{time}  {what:<32} {who:<24} {detail}{status}")
}

/// Follows `path` from its end; prints up to `count` events (forever when
/// None). `json`: the raw lines.
pub fn follow(path: &str, count: Option<u64>, json: bool) -> Result<(), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("open the event file {path}: {e}"))?;
    let mut r = BufReader::new(f);
    r.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    let mut printed = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 || !line.ends_with('\n') {
            if n > 0 {
                // A partial line: go back and wait for the rest.
                r.seek(SeekFrom::Current(-(n as i64)))
                    .map_err(|e| e.to_string())?;
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        if json {
            print!("{line}");
        } else {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => println!("{}", summary(&v)),
                Err(_) => continue,
            }
        }
        printed += 1;
        if count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn a_compact_record_is_summarized_from_its_ids() {
        let v = serde_json::json!({
            "class_uid": 1001, "activity_id": 14, "time": 0,
            "file": {"path": "/etc/shadow"},
            "actor": {"process": {"pid": 42}}
        });
        let line = summary(&v);
        assert!(line.contains("File System Activity/activity 14"), "{line}");
        assert!(line.contains("pid=42"), "{line}");
        assert!(line.contains("/etc/shadow"), "{line}");
    }
}
