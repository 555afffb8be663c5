//! Normalized events → OCSF 1.5.0 JSON objects (see docs/EVENTS.md).
//! Fields OCSF has no place for go under `unmapped`, never top level.

use serde_json::{Map, Value, json};

use crate::event::{Event, LossRecord, ProcessActivity, ProcessEvent, ProcessInfo};

pub const OCSF_VERSION: &str = "1.5.0";
const PROCESS_ACTIVITY: u64 = 1007;
const SYSTEM_CATEGORY: u64 = 1;

pub fn to_ocsf(event: &Event, hostname: &str) -> Value {
    match event {
        Event::Process(p) => process_event(p, hostname),
        Event::Loss(l) => loss_record(l, hostname),
    }
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

fn metadata(provider: &str, source: &str, sequence: Option<u64>) -> Value {
    let mut m = json!({
        "version": OCSF_VERSION,
        "product": {
            "name": "mdatp",
            "vendor_name": "mdatp",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "log_provider": provider,
        "log_name": source,
    });
    if let (Some(seq), Some(obj)) = (sequence, m.as_object_mut()) {
        obj.insert("sequence".into(), json!(seq));
    }
    m
}

fn process_event(e: &ProcessEvent, hostname: &str) -> Value {
    let (activity_id, activity_name, launch) = match e.activity {
        ProcessActivity::Exec => (1, "Launch", Some((3, "Exec"))),
        ProcessActivity::Fork => (1, "Launch", Some((2, "Fork"))),
        ProcessActivity::Exit { .. } => (2, "Terminate", None),
    };
    let mut process = process_obj(&e.process);
    if let (Some(parent), Some(obj)) = (&e.parent, process.as_object_mut()) {
        obj.insert("parent_process".into(), process_obj(parent));
    }
    // The actor of a launch is the parent; a process terminates itself.
    let actor = match (&e.activity, &e.parent) {
        (ProcessActivity::Exit { .. }, _) | (_, None) => process_obj(&e.process),
        (_, Some(parent)) => process_obj(parent),
    };
    let mut unmapped = Map::new();
    unmapped.insert("provider".into(), json!(e.origin.provider.as_str()));
    unmapped.insert("process".into(), process_ext(&e.process));
    if let Some(parent) = &e.parent {
        unmapped.insert("parent_process".into(), process_ext(parent));
    }
    let mut v = json!({
        "class_uid": PROCESS_ACTIVITY,
        "class_name": "Process Activity",
        "category_uid": SYSTEM_CATEGORY,
        "category_name": "System Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": PROCESS_ACTIVITY * 100 + activity_id,
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 1,
        "status": "Success",
        "time": ms(e.time_ns),
        "metadata": metadata(e.origin.provider.as_str(), &e.origin.source, Some(e.origin.sequence)),
        "device": { "hostname": hostname, "type_id": 0, "os": { "name": "Linux", "type_id": 200 } },
        "actor": { "process": actor },
        "process": process,
    });
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    if let Some((id, name)) = launch {
        obj.insert("launch_type_id".into(), json!(id));
        obj.insert("launch_type".into(), json!(name));
    }
    if let ProcessActivity::Exit {
        code,
        signal,
        core_dumped,
    } = e.activity
    {
        obj.insert("exit_code".into(), json!(code));
        unmapped.insert("exit_signal".into(), json!(signal));
        unmapped.insert("core_dumped".into(), json!(core_dumped));
    }
    unmapped.insert("time_ns".into(), json!(e.time_ns));
    obj.insert("unmapped".into(), Value::Object(unmapped));
    v
}

fn process_obj(p: &ProcessInfo) -> Value {
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.pid));
    o.insert("uid".into(), json!(p.entity_id));
    if let Some(tid) = p.tid {
        o.insert("tid".into(), json!(tid));
    }
    if let Some(name) = &p.name {
        o.insert("name".into(), json!(name));
    }
    if let Some(t) = p.start_time_ns {
        o.insert("created_time".into(), json!(ms(t)));
    }
    if let Some(exe) = &p.exe {
        let name = exe.rsplit('/').next().unwrap_or(exe);
        let mut file = json!({ "path": exe, "name": name, "type_id": 1, "type": "Regular File" });
        if let (true, Some(f)) = (p.exe_truncated, file.as_object_mut()) {
            f.insert("is_truncated".into(), json!(true));
        }
        o.insert("file".into(), file);
    }
    if let Some(argv) = &p.argv {
        o.insert("cmd_line".into(), json!(argv.join(" ")));
    }
    if let Some(c) = &p.creds {
        let mut user =
            json!({ "uid": c.uid.to_string(), "type_id": if c.uid == 0 { 2 } else { 1 } });
        if let (Some(name), Some(u)) = (&c.user_name, user.as_object_mut()) {
            u.insert("name".into(), json!(name));
        }
        o.insert("user".into(), user);
        if let Some(sid) = c.sessionid {
            o.insert("session".into(), json!({ "uid": sid.to_string() }));
        }
    }
    Value::Object(o)
}

/// Linux specifics OCSF's process object lacks; emitted under
/// `unmapped.process` / `unmapped.parent_process`.
fn process_ext(p: &ProcessInfo) -> Value {
    let mut x = Map::new();
    if let Some(argv) = &p.argv {
        x.insert("argv".into(), json!(argv));
        x.insert("argv_truncated".into(), json!(p.argv_truncated));
    }
    if let Some(argc) = p.argc {
        x.insert("argc".into(), json!(argc));
    }
    if let Some(cwd) = &p.cwd {
        x.insert("cwd".into(), json!(cwd));
        x.insert("cwd_truncated".into(), json!(p.cwd_truncated));
    }
    if let Some(c) = &p.creds {
        x.insert("gid".into(), json!(c.gid));
        x.insert("euid".into(), json!(c.euid));
        x.insert("egid".into(), json!(c.egid));
        x.insert("loginuid".into(), json!(c.loginuid));
    }
    if let Some(cg) = p.cgroup_id {
        x.insert("cgroup_id".into(), json!(cg));
    }
    Value::Object(x)
}

fn loss_record(l: &LossRecord, hostname: &str) -> Value {
    json!({
        "class_uid": 0,
        "class_name": "Base Event",
        "category_uid": 0,
        "category_name": "Uncategorized",
        "activity_id": 99,
        "activity_name": "Loss",
        "type_uid": 99,
        "severity_id": 3,
        "severity": "Medium",
        "time": ms(l.time_ns),
        "message": format!("{} record(s) from {} were lost before delivery", l.missing, l.source),
        "metadata": metadata(l.provider.as_str(), &l.source, None),
        "device": { "hostname": hostname, "type_id": 0, "os": { "name": "Linux", "type_id": 200 } },
        "unmapped": {
            "provider": l.provider.as_str(),
            "record": "loss",
            "detected_by": l.detected_by.as_str(),
            "source": l.source,
            "first_missing_sequence": l.first_missing,
            "missing": l.missing,
            "kernel_drops_by_type": l.dropped_by_type,
        },
    })
}
