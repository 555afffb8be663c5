//! Normalized events → OCSF 1.5.0 JSON objects (see docs/EVENTS.md).
//! Fields OCSF has no place for go under `unmapped`, never top level.

use serde_json::{Map, Value, json};

use crate::event::{
    AuthActivity, AuthEvent, Event, FileActivity, FileEvent, FileInfo, LossRecord, NetActivity,
    NetEvent, ProcessActivity, ProcessEvent, ProcessInfo,
};

pub const OCSF_VERSION: &str = "1.5.0";
const PROCESS_ACTIVITY: u64 = 1007;
const SYSTEM_CATEGORY: u64 = 1;

pub fn to_ocsf(event: &Event, hostname: &str) -> Value {
    match event {
        Event::Process(p) => process_event(p, hostname),
        Event::Auth(a) => auth_event(a, hostname),
        Event::File(f) => file_event(f, hostname),
        Event::Network(n) => net_event(n, hostname),
        Event::Loss(l) => loss_record(l, hostname),
    }
}

const FILE_ACTIVITY: u64 = 1001;
const NETWORK_ACTIVITY: u64 = 4001;
const NETWORK_CATEGORY: u64 = 4;
const EINPROGRESS: i32 = 115;
const ECONNREFUSED: i32 = 111;

/// The fields every class shares.
fn base(
    class_uid: u64,
    class_name: &str,
    category: (u64, &str),
    activity: (u64, &str),
    time_ns: u64,
    origin: &crate::event::Origin,
    hostname: &str,
) -> Map<String, Value> {
    let v = json!({
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category.0,

        "activity_id": activity.0,
        "activity_name": activity.1,
        "type_uid": class_uid * 100 + activity.0,
        "severity_id": 1,
        "time": ms(time_ns),
        "metadata": metadata(&origin.source, Some(origin.sequence)),
        "device": { "hostname": hostname },
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// status fields from an errno (None = success).
fn status(o: &mut Map<String, Value>, error: Option<i32>) {
    match error {
        None => {
            o.insert("status_id".into(), json!(1));
            o.insert("status".into(), json!("Success"));
        }
        Some(e) => {
            let errno = nix::errno::Errno::from_raw(e);
            o.insert("status_id".into(), json!(2));
            o.insert("status".into(), json!("Failure"));
            o.insert("status_code".into(), json!(format!("{errno:?}")));
            o.insert("status_detail".into(), json!(errno.desc()));
        }
    }
}

fn file_type(mode: Option<u32>) -> (u32, &'static str) {
    match mode.map(|m| m & 0o170000) {
        Some(0o100000) => (1, "Regular File"),
        Some(0o040000) => (2, "Folder"),
        Some(0o020000) => (3, "Character Device"),
        Some(0o060000) => (4, "Block Device"),
        Some(0o140000) => (5, "Local Socket"),
        Some(0o010000) => (6, "Named Pipe"),
        Some(0o120000) => (7, "Symbolic Link"),
        _ => (0, "Unknown"),
    }
}

fn file_obj(f: &FileInfo, type_override: Option<(u32, &'static str)>) -> Value {
    let mut o = Map::new();
    if let Some(path) = &f.path {
        o.insert("path".into(), json!(path));
        let (parent, name) = match path.rfind('/') {
            Some(0) => ("/", &path[1..]),
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        o.insert("name".into(), json!(name));
        o.insert("parent_folder".into(), json!(parent));
    }
    let (tid, tname) = type_override.unwrap_or_else(|| file_type(f.mode));
    o.insert("type_id".into(), json!(tid));
    o.insert("type".into(), json!(tname));
    if f.path_truncated {
        o.insert("is_truncated".into(), json!(true));
    }
    Value::Object(o)
}

/// File details OCSF's file object lacks: `unmapped.file` and friends.
/// Unknown values are left out, as is `path_truncated` when false.
fn file_ext(f: &FileInfo) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.into(), v);
        }
    };
    put("inode", json!(f.inode));
    put("device", json!(f.device));
    put("mount_id", json!(f.mount_id));
    put("mode", json!(f.mode.map(|m| format!("{:o}", m & 0o7777))));
    put("parent_inode", json!(f.parent_inode));
    if f.path_truncated {
        put("path_truncated", json!(true));
    }
    put("identity_from", json!(f.identity_from.as_str()));
    Value::Object(m)
}

fn access_names(access: u32) -> Vec<&'static str> {
    use mdatp_bpf::abi::mdatp_access as a;
    [
        (a::MDATP_ACCESS_READ, "read"),
        (a::MDATP_ACCESS_WRITE, "write"),
        (a::MDATP_ACCESS_CREATE, "create"),
        (a::MDATP_ACCESS_TRUNCATE, "truncate"),
    ]
    .into_iter()
    .filter(|(bit, _)| access & bit != 0)
    .map(|(_, n)| n)
    .collect()
}

fn file_event(e: &FileEvent, hostname: &str) -> Value {
    use mdatp_bpf::abi::mdatp_access as a;
    let activity = match &e.activity {
        FileActivity::Open { access, .. } if access & a::MDATP_ACCESS_CREATE != 0 => (1, "Create"),
        FileActivity::Open { .. } | FileActivity::OpenFolded { .. } => (14, "Open"),
        FileActivity::Delete { .. } => (4, "Delete"),
        FileActivity::Rename { .. } => (5, "Rename"),
        FileActivity::Mkdir { .. } | FileActivity::Link { .. } | FileActivity::Symlink { .. } => {
            (1, "Create")
        }
        FileActivity::Chmod { .. } | FileActivity::Chown { .. } => (7, "Set Security"),
    };
    let mut o = base(
        FILE_ACTIVITY,
        "File System Activity",
        (SYSTEM_CATEGORY, "System Activity"),
        activity,
        e.time_ns,
        &e.origin,
        hostname,
    );
    status(&mut o, e.error);
    let type_override = match e.activity {
        FileActivity::Mkdir { .. } => Some((2, "Folder")),
        FileActivity::Delete { directory: true } => Some((2, "Folder")),
        FileActivity::Symlink { .. } => Some((7, "Symbolic Link")),
        _ => None,
    };
    o.insert("file".into(), file_obj(&e.file, type_override));
    o.insert("actor".into(), json!({ "process": actor_obj(&e.process) }));
    let mut u = Map::new();
    u.insert("provider".into(), json!(e.origin.provider.as_str()));
    u.insert("file".into(), file_ext(&e.file));
    match &e.activity {
        FileActivity::Open { access, flags, .. } => {
            u.insert("access".into(), json!(access_names(*access)));
            u.insert("open_flags".into(), json!(format!("{flags:#o}")));
            o.insert("count".into(), json!(1));
        }
        FileActivity::OpenFolded {
            access,
            count,
            first_ns,
            last_ns,
        } => {
            u.insert("access".into(), json!(access_names(*access)));
            u.insert("folded".into(), json!(true));
            o.insert("count".into(), json!(count));
            o.insert("start_time".into(), json!(ms(*first_ns)));
            o.insert("end_time".into(), json!(ms(*last_ns)));
            u.insert("start_time_ns".into(), json!(first_ns));
            u.insert("end_time_ns".into(), json!(last_ns));
        }
        FileActivity::Delete { directory } => {
            u.insert("directory".into(), json!(directory));
        }
        FileActivity::Rename { to, flags } => {
            o.insert("file_result".into(), file_obj(to, None));
            u.insert("file_result".into(), file_ext(to));
            u.insert("rename_flags".into(), json!(flags));
        }
        FileActivity::Mkdir { mode } | FileActivity::Chmod { mode } => {
            u.insert("mode".into(), json!(format!("{:o}", mode & 0o7777)));
        }
        FileActivity::Chown { uid, gid } => {
            u.insert("owner_uid".into(), json!(uid));
            u.insert("owner_gid".into(), json!(gid));
        }
        FileActivity::Link { to, flags } => {
            // The new name is the created file; the existing one its target.
            o.insert("file".into(), file_obj(to, None));
            u.insert("file".into(), file_ext(to));
            u.insert("link_target".into(), json!(e.file.path));
            u.insert("link_target_file".into(), file_ext(&e.file));
            u.insert("link_flags".into(), json!(flags));
        }
        FileActivity::Symlink { target } => {
            u.insert("symlink_target".into(), json!(target));
        }
    }
    u.insert("time_ns".into(), json!(e.time_ns));
    o.insert("unmapped".into(), Value::Object(u));
    Value::Object(o)
}

const AUTHENTICATION: u64 = 3002;
const IAM_CATEGORY: u64 = 3;

fn auth_event(e: &AuthEvent, hostname: &str) -> Value {
    let activity = match e.activity {
        AuthActivity::Logon => (1, "Logon"),
        AuthActivity::Logoff => (2, "Logoff"),
        AuthActivity::Other => (99, "Other"),
    };
    let mut o = base(
        AUTHENTICATION,
        "Authentication",
        (IAM_CATEGORY, "Identity & Access Management"),
        activity,
        e.time_ns,
        &e.origin,
        hostname,
    );
    if e.success {
        o.insert("status_id".into(), json!(1));
        o.insert("status".into(), json!("Success"));
    } else {
        o.insert("status_id".into(), json!(2));
        o.insert("status".into(), json!("Failure"));
    }
    let mut user = Map::new();
    if let Some(u) = &e.user {
        user.insert("name".into(), json!(u));
    }
    o.insert("user".into(), Value::Object(user));
    let mut src = Map::new();
    if let Some(h) = &e.remote_host {
        src.insert("hostname".into(), json!(h));
    }
    if let Some(a) = &e.remote_addr {
        src.insert("ip".into(), json!(a));
    }
    if !src.is_empty() {
        o.insert("src_endpoint".into(), Value::Object(src));
    }
    if let Some(s) = e.session {
        o.insert("session".into(), json!({ "uid": s.to_string() }));
    }
    o.insert("actor".into(), json!({ "process": actor_obj(&e.process) }));
    o.insert(
        "unmapped".into(),
        json!({
            "provider": e.origin.provider.as_str(),
            "audit_type": e.record_type,
            "pam_op": e.op,
            "terminal": e.terminal,
            "time_ns": e.time_ns,
        }),
    );
    Value::Object(o)
}

fn endpoint(a: &std::net::SocketAddr) -> Value {
    json!({ "ip": a.ip().to_string(), "port": a.port() })
}

fn net_event(e: &NetEvent, hostname: &str) -> Value {
    let activity = match (e.activity, e.error) {
        (NetActivity::Connect, Some(ECONNREFUSED)) => (5, "Refuse"),
        (NetActivity::Connect, Some(EINPROGRESS)) | (NetActivity::Connect, None) => (1, "Open"),
        (NetActivity::Connect, Some(_)) => (4, "Fail"),
        (NetActivity::Accept, _) | (NetActivity::UdpFirst { .. }, _) => (1, "Open"),
        (NetActivity::Listen { .. }, _) => (7, "Listen"),
        (NetActivity::Bind, _) => (99, "Bind"),
    };
    let mut o = base(
        NETWORK_ACTIVITY,
        "Network Activity",
        (NETWORK_CATEGORY, "Network Activity"),
        activity,
        e.time_ns,
        &e.origin,
        hostname,
    );
    match e.error {
        Some(EINPROGRESS) => {
            o.insert("status_id".into(), json!(99));
            o.insert("status".into(), json!("In Progress"));
            o.insert("status_code".into(), json!("EINPROGRESS"));
        }
        err => status(&mut o, err),
    }
    let (direction_id, direction) = match e.activity {
        NetActivity::Connect | NetActivity::UdpFirst { inbound: false } => (2, "Outbound"),
        NetActivity::Accept | NetActivity::UdpFirst { inbound: true } => (1, "Inbound"),
        _ => (0, "Unknown"),
    };
    let (src, dst) = match e.activity {
        NetActivity::Accept | NetActivity::UdpFirst { inbound: true } => (e.remote, e.local),
        NetActivity::Connect | NetActivity::UdpFirst { inbound: false } => (e.local, e.remote),
        _ => (e.local, None),
    };
    if let Some(a) = &src {
        o.insert("src_endpoint".into(), endpoint(a));
    }
    if let Some(a) = &dst {
        o.insert("dst_endpoint".into(), endpoint(a));
    }
    let proto_name = match e.protocol {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "icmpv6",
        _ => "other",
    };
    let ver = match e.local.or(e.remote) {
        Some(std::net::SocketAddr::V4(_)) => 4,
        _ => 6,
    };
    o.insert(
        "connection_info".into(),
        json!({
            "protocol_num": e.protocol,
            "protocol_name": proto_name,
            "protocol_ver_id": ver,
            "direction_id": direction_id,
            "direction": direction,
        }),
    );
    o.insert("actor".into(), json!({ "process": actor_obj(&e.process) }));
    let mut u = Map::new();
    u.insert("provider".into(), json!(e.origin.provider.as_str()));
    u.insert("local".into(), json!(e.local.map(|a| a.to_string())));
    u.insert("remote".into(), json!(e.remote.map(|a| a.to_string())));
    match e.activity {
        NetActivity::Listen { backlog } => {
            u.insert("backlog".into(), json!(backlog));
        }
        NetActivity::UdpFirst { .. } => {
            u.insert("first_datagram".into(), json!(true));
        }
        _ => {}
    }
    u.insert("time_ns".into(), json!(e.time_ns));
    o.insert("unmapped".into(), Value::Object(u));
    Value::Object(o)
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

fn metadata(source: &str, sequence: Option<u64>) -> Value {
    let mut m = json!({
        "version": OCSF_VERSION,
        "product": {
            "name": "mdatp",
            "vendor_name": "mdatp",
            "version": env!("CARGO_PKG_VERSION"),
        },
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
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": PROCESS_ACTIVITY * 100 + activity_id,
        "severity_id": 1,
        "status_id": 1,
        "status": "Success",
        "time": ms(e.time_ns),
        "metadata": metadata(&e.origin.source, Some(e.origin.sequence)),
        "device": { "hostname": hostname },
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

/// The acting process of a file, network or login event, in brief: its
/// entity id (`uid`) leads to the exec event with everything else.
fn actor_obj(p: &ProcessInfo) -> Value {
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.pid));
    if let Some(tid) = p.tid.filter(|t| *t != p.pid) {
        o.insert("tid".into(), json!(tid));
    }
    if !p.entity_id.is_empty() {
        o.insert("uid".into(), json!(p.entity_id));
    }
    if let Some(name) = &p.name {
        o.insert("name".into(), json!(name));
    }
    if let Some(exe) = &p.exe {
        o.insert("file".into(), json!({ "path": exe }));
    }
    if let Some(c) = &p.creds {
        o.insert("user".into(), json!({ "uid": c.uid.to_string() }));
    }
    Value::Object(o)
}

fn process_obj(p: &ProcessInfo) -> Value {
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.pid));
    if !p.entity_id.is_empty() {
        o.insert("uid".into(), json!(p.entity_id));
    }
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
        "activity_id": 99,
        "activity_name": "Loss",
        "type_uid": 99,
        "severity_id": 3,
        "time": ms(l.time_ns),
        "message": format!("{} record(s) from {} were lost before delivery", l.missing, l.source),
        "metadata": metadata(&l.source, None),
        "device": { "hostname": hostname },
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
