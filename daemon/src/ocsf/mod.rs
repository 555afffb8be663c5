//! Normalized events → OCSF 1.5.0 JSON (see docs/EVENTS.md), written
//! straight into a byte buffer (`json.rs`). Fields OCSF has no place for
//! go under `unmapped`, never top level. A field that is unknown is left
//! out, or null where docs/EVENTS.md says so.

use crate::event::{
    AuthActivity, AuthEvent, CallPath, Event, LossRecord, NetActivity, NetEvent, Origin,
    ProcessActivity, ProcessEvent, ProcessInfo,
};
use crate::json::{Obj, object, object_in};
use crate::kind::class;
use crate::sink::Detail;

mod file;
mod fragments;
mod io_uring;

use file::file_event;
pub use fragments::Fragments;

pub const OCSF_VERSION: &str = "1.5.0";
/// `metadata.product` as one JSON constant, with the fields between the
/// name and the version given (a literal): written once per record, never
/// formatted.
macro_rules! product {
    ($between:literal) => {
        concat!(
            r#"{"name":"mdatp","#,
            $between,
            r#""version":""#,
            env!("CARGO_PKG_VERSION"),
            r#""}"#
        )
    };
}
/// `metadata.product`, the same in every event.
const PRODUCT: &str = product!(r#""vendor_name":"mdatp","#);
/// `metadata.product` of a compact record: the vendor is the product.
const PRODUCT_COMPACT: &str = product!("");
const EINPROGRESS: i32 = 115;
const ECONNREFUSED: i32 = 111;

/// Appends the event's JSON object (no newline) to `out`. A compact
/// record (docs/EVENTS.md, "Compact records") leaves out what `full`
/// repeats or derives; loss records are always written in full. `fx`
/// holds what repeats between records (one per pipeline).
pub fn write_with(event: &Event, fx: &mut Fragments, detail: Detail, out: &mut Vec<u8>) {
    let compact = detail == Detail::Compact;
    match event {
        Event::Process(p) => process_event(p, fx, compact, out),
        Event::Auth(a) => auth_event(a, fx, compact, out),
        Event::File(f) => file_event(f, fx, compact, out),
        Event::Network(n) => net_event(n, fx, compact, out),
        Event::IoUring(u) => io_uring::io_uring_event(u, fx, compact, out),
        Event::Loss(l) => loss_record(l, fx, out),
    }
}

/// `write_with` for one event alone (tools, tests, fuzzing).
pub fn write(event: &Event, hostname: &str, detail: Detail, out: &mut Vec<u8>) {
    write_with(event, &mut Fragments::new(hostname), detail, out)
}

/// The event as a JSON value, for tests and tools; the daemon uses `write_with`.
pub fn to_ocsf(event: &Event, hostname: &str) -> serde_json::Value {
    let mut out = Vec::new();
    write(event, hostname, Detail::Full, &mut out);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}

struct Class {
    uid: u64,
    name: &'static str,
    category: u64,
}

const PROCESS_ACTIVITY: Class = Class {
    uid: class::PROCESS_ACTIVITY as u64,
    name: "Process Activity",
    category: 1,
};
const FILE_ACTIVITY: Class = Class {
    uid: class::FILE_SYSTEM_ACTIVITY as u64,
    name: "File System Activity",
    category: 1,
};
const AUTHENTICATION: Class = Class {
    uid: class::AUTHENTICATION as u64,
    name: "Authentication",
    category: 3,
};
const NETWORK_ACTIVITY: Class = Class {
    uid: class::NETWORK_ACTIVITY as u64,
    name: "Network Activity",
    category: 4,
};

/// The class and activity: the same fields for every record of the pair
/// (`Fragments::head` writes them once).
fn class_fields(o: &mut Obj<'_>, class: &Class, activity: (u64, &'static str)) {
    o.u64("class_uid", class.uid)
        .label("class_name", class.name)
        .u64("category_uid", class.category)
        .u64("activity_id", activity.0)
        .label("activity_name", activity.1)
        .u64("type_uid", class.uid * 100 + activity.0)
        .u64("severity_id", 1);
}

/// The fields every event class shares.
fn base(
    o: &mut Obj<'_>,
    class: &Class,
    activity: (u64, &'static str),
    time_ns: u64,
    origin: &Origin,
    fx: &mut Fragments,
) {
    fx.head(o, class, activity);
    o.u64("time", ms(time_ns)).obj("metadata", |m| {
        metadata(m, &origin.source, Some(origin.sequence))
    });
    fx.device(o);
}

/// status fields from an errno (None = success).
fn status(o: &mut Obj<'_>, error: Option<i32>) {
    match error {
        // The same bytes in every successful record: one copy.
        None => {
            o.fields(if o.is_compact() {
                br#""status_id":1"#
            } else {
                br#""status_id":1,"status":"Success""#
            });
        }
        Some(e) => {
            let errno = nix::errno::Errno::from_raw(e);
            o.u64("status_id", 2)
                .label("status", "Failure")
                .display("status_code", format_args!("{errno:?}"))
                .str("status_detail", errno.desc());
        }
    }
}

fn auth_event(e: &AuthEvent, fx: &mut Fragments, compact: bool, out: &mut Vec<u8>) {
    let activity = match e.activity {
        AuthActivity::Logon => (1, "Logon"),
        AuthActivity::Logoff => (2, "Logoff"),
        AuthActivity::Other => (99, "Other"),
    };
    object_in(out, compact, |o| {
        base(o, &AUTHENTICATION, activity, e.time_ns, &e.origin, fx);
        if e.success {
            o.u64("status_id", 1).label("status", "Success");
        } else {
            o.u64("status_id", 2).label("status", "Failure");
        }
        o.obj("user", |u| {
            if let Some(name) = &e.user {
                u.str("name", name);
            }
        });
        if e.remote_host.is_some() || e.remote_addr.is_some() {
            o.obj("src_endpoint", |s| {
                if let Some(h) = &e.remote_host {
                    s.str("hostname", h);
                }
                if let Some(a) = &e.remote_addr {
                    s.str("ip", a);
                }
            });
        }
        if let Some(s) = e.session {
            o.obj("session", |x| {
                x.u64_str("uid", s.into());
            });
        }
        actor(o, fx, &e.process);
        o.obj("unmapped", |u| {
            origin_unmapped(u, &e.origin);
            u.str("audit_type", &e.record_type)
                .opt_str("pam_op", e.op.as_deref())
                .opt_str("terminal", e.terminal.as_deref())
                .u64("time_ns", e.time_ns);
        });
    });
}

fn endpoint(o: &mut Obj<'_>, a: &std::net::SocketAddr) {
    o.display("ip", a.ip()).u64("port", a.port().into());
}

fn net_event(e: &NetEvent, fx: &mut Fragments, compact: bool, out: &mut Vec<u8>) {
    let activity = match (e.activity, e.error) {
        (NetActivity::Connect, Some(ECONNREFUSED)) => (5, "Refuse"),
        (NetActivity::Connect, Some(EINPROGRESS)) | (NetActivity::Connect, None) => (1, "Open"),
        (NetActivity::Connect, Some(_)) => (4, "Fail"),
        (NetActivity::Accept, _) | (NetActivity::UdpFirst { .. }, _) => (1, "Open"),
        (NetActivity::Listen { .. }, _) => (7, "Listen"),
        (NetActivity::Bind, _) => (99, "Bind"),
    };
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
    object_in(out, compact, |o| {
        base(o, &NETWORK_ACTIVITY, activity, e.time_ns, &e.origin, fx);
        match e.error {
            Some(EINPROGRESS) => {
                o.u64("status_id", 99)
                    .label("status", "In Progress")
                    .caption("status_code", "EINPROGRESS");
            }
            err => status(o, err),
        }
        if let Some(a) = &src {
            o.obj("src_endpoint", |x| endpoint(x, a));
        }
        if let Some(a) = &dst {
            o.obj("dst_endpoint", |x| endpoint(x, a));
        }
        o.obj("connection_info", |c| {
            c.u64("protocol_num", e.protocol.into())
                .caption("protocol_name", proto_name)
                .u64("protocol_ver_id", ver)
                .u64("direction_id", direction_id)
                .label("direction", direction);
        });
        actor(o, fx, &e.process);
        o.obj("unmapped", |u| net_unmapped(u, e));
    });
}

/// Where the event came from: the provider, and how the operation
/// reached the kernel when not by a native system call.
pub(crate) fn origin_unmapped(u: &mut Obj<'_>, origin: &Origin) {
    u.caption("provider", origin.provider.as_str());
    if origin.path != CallPath::Native {
        u.caption("call_path", origin.path.as_str());
    }
}

/// What OCSF's network classes have no place for. A compact record
/// leaves out what the endpoints already say and the nanosecond time
/// (a listen's backlog and a UDP flow's first-datagram mark stay).
fn net_unmapped(u: &mut Obj<'_>, e: &NetEvent) {
    origin_unmapped(u, &e.origin);
    if !u.is_compact() {
        match &e.local {
            Some(a) => u.display("local", a),
            None => u.null("local"),
        };
        match &e.remote {
            Some(a) => u.display("remote", a),
            None => u.null("remote"),
        };
    }
    match e.activity {
        NetActivity::Listen { backlog } => {
            u.u64("backlog", backlog.into());
        }
        NetActivity::UdpFirst { .. } => {
            u.bool("first_datagram", true);
        }
        _ => {}
    }
    if !u.is_compact() {
        u.u64("time_ns", e.time_ns);
    }
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

fn metadata(m: &mut Obj<'_>, source: &str, sequence: Option<u64>) {
    let product = if m.is_compact() {
        PRODUCT_COMPACT
    } else {
        PRODUCT
    };
    m.caption("version", OCSF_VERSION)
        .raw("product", product)
        .str("log_name", source);
    if let Some(seq) = sequence {
        m.u64("sequence", seq);
    }
}

fn process_event(e: &ProcessEvent, fx: &mut Fragments, compact: bool, out: &mut Vec<u8>) {
    let (activity_id, activity_name, launch) = match e.activity {
        ProcessActivity::Exec => (1, "Launch", Some((3, "Exec"))),
        ProcessActivity::Fork => (1, "Launch", Some((2, "Fork"))),
        ProcessActivity::Exit { .. } => (2, "Terminate", None),
    };
    // The actor of a launch is the parent; a process terminates itself.
    let actor = match (&e.activity, &e.parent) {
        (ProcessActivity::Exit { .. }, _) | (_, None) => &e.process,
        (_, Some(parent)) => parent,
    };
    object_in(out, compact, |o| {
        base(
            o,
            &PROCESS_ACTIVITY,
            (activity_id, activity_name),
            e.time_ns,
            &e.origin,
            fx,
        );
        status(o, None);
        o.obj("actor", |a| {
            a.obj("process", |p| process_obj(p, actor, None));
        })
        .obj("process", |p| process_obj(p, &e.process, e.parent.as_ref()));
        if let ProcessActivity::Exit { code, .. } = e.activity {
            o.u64("exit_code", code.into());
        }
        o.obj("unmapped", |u| {
            origin_unmapped(u, &e.origin);
            // launch_type arrived in OCSF 1.6; the pinned 1.5.0 lacks it.
            if let Some((id, name)) = launch {
                u.u64("launch_type_id", id).label("launch_type", name);
            }
            u.obj("process", |x| process_ext(x, &e.process));
            if let Some(parent) = &e.parent {
                u.obj("parent_process", |x| process_ext(x, parent));
            }
            if let ProcessActivity::Exit {
                signal,
                core_dumped,
                ..
            } = e.activity
            {
                u.opt_u64("exit_signal", signal.map(u64::from))
                    .bool("core_dumped", core_dumped);
            }
            u.u64("time_ns", e.time_ns);
        });
    });
}

/// `actor.process`, in brief; the same bytes while the same process acts.
fn actor(o: &mut Obj<'_>, fx: &mut Fragments, p: &ProcessInfo) {
    fx.actor(o, p, actor_obj);
}

/// The acting process of a file, network or login event, in brief: its
/// entity id (`uid`) leads to the exec event with everything else. A
/// compact record keeps only its identity and its user (credentials can
/// change after the exec).
fn actor_obj(o: &mut Obj<'_>, p: &ProcessInfo) {
    o.u64("pid", p.pid.into());
    if let Some(tid) = p.tid.filter(|t| *t != p.pid) {
        o.u64("tid", tid.into());
    }
    if !p.entity_id.is_empty() {
        o.str("uid", &p.entity_id);
    }
    if !o.is_compact() {
        if let Some(name) = &p.name {
            o.str("name", name);
        }
        if let Some(exe) = &p.exe {
            o.obj("file", |f| exe_file(f, exe));
        }
    }
    if let Some(c) = &p.creds {
        o.obj("user", |u| {
            u.u64_str("uid", c.uid.into());
        });
    }
}

/// A process's executable as an OCSF file object (a truncated path is
/// flagged in `unmapped.process.exe_truncated`: OCSF 1.5.0's file has no
/// such flag).
fn exe_file(f: &mut Obj<'_>, exe: &str) {
    let name = exe.rsplit('/').next().unwrap_or(exe);
    f.str("path", exe)
        .str("name", name)
        .u64("type_id", 1)
        .label("type", "Regular File");
}

/// A full process object; `parent` nests as `parent_process`.
fn process_obj(o: &mut Obj<'_>, p: &ProcessInfo, parent: Option<&ProcessInfo>) {
    o.u64("pid", p.pid.into());
    if !p.entity_id.is_empty() {
        o.str("uid", &p.entity_id);
    }
    if let Some(tid) = p.tid {
        o.u64("tid", tid.into());
    }
    if let Some(name) = &p.name {
        o.str("name", name);
    }
    if let Some(t) = p.start_time_ns {
        o.u64("created_time", ms(t));
    }
    if let Some(exe) = &p.exe {
        o.obj("file", |f| exe_file(f, exe));
    }
    if let Some(argv) = &p.argv {
        o.joined("cmd_line", argv.iter());
    }
    if let Some(c) = &p.creds {
        o.obj("user", |u| {
            u.u64_str("uid", c.uid.into())
                .u64("type_id", if c.uid == 0 { 2 } else { 1 });
            if let Some(name) = &c.user_name {
                u.str("name", name);
            }
        });
        if let Some(sid) = c.sessionid {
            o.obj("session", |s| {
                s.u64_str("uid", sid.into());
            });
        }
    }
    if let Some(parent) = parent {
        o.obj("parent_process", |x| process_obj(x, parent, None));
    }
}

/// Linux specifics OCSF's process object lacks; emitted under
/// `unmapped.process` / `unmapped.parent_process`.
fn process_ext(x: &mut Obj<'_>, p: &ProcessInfo) {
    if p.exe_truncated {
        x.bool("exe_truncated", true);
    }
    if let Some(argv) = &p.argv {
        x.strs("argv", argv.iter())
            .bool("argv_truncated", p.argv_truncated);
    }
    if let Some(argc) = p.argc {
        x.u64("argc", argc.into());
    }
    if let Some(cwd) = &p.cwd {
        x.str("cwd", cwd).bool("cwd_truncated", p.cwd_truncated);
    }
    if let Some(c) = &p.creds {
        x.u64("gid", c.gid.into())
            .u64("euid", c.euid.into())
            .u64("egid", c.egid.into())
            .opt_u64("loginuid", c.loginuid.map(u64::from));
    }
    if let Some(cg) = p.cgroup_id {
        x.u64("cgroup_id", cg);
    }
}

/// What every loss record starts with: OCSF Base Event, activity Loss.
fn loss_header<'o, 'a>(
    o: &'o mut Obj<'a>,
    time_ns: u64,
    message: &str,
    source: &str,
    fx: &Fragments,
) -> &'o mut Obj<'a> {
    o.u64("class_uid", 0)
        .caption("class_name", "Base Event")
        .u64("category_uid", 0)
        .u64("activity_id", 99)
        .caption("activity_name", "Loss")
        .u64("type_uid", 99)
        .u64("severity_id", 3)
        .u64("time", ms(time_ns))
        .str("message", message)
        .obj("metadata", |m| metadata(m, source, None));
    fx.device(o);
    o
}

fn loss_record(l: &LossRecord, fx: &Fragments, out: &mut Vec<u8>) {
    let message = format!(
        "{} record(s) from {} were lost before delivery",
        l.missing, l.source
    );
    object(out, |o| {
        loss_header(o, l.time_ns, &message, &l.source, fx).obj("unmapped", |u| {
            u.caption("provider", l.provider.as_str())
                .caption("record", "loss")
                .caption("detected_by", l.detected_by.as_str())
                .str("source", &l.source)
                .opt_u64("first_missing_sequence", l.first_missing)
                .u64("missing", l.missing)
                .counts("kernel_drops_by_type", &l.dropped_by_type);
        });
    });
}

/// An output's own loss, written into that output when it accepts events
/// again: how many events of each kind it could not deliver, and why.
pub fn output_loss_record(
    output: &str,
    lost: &std::collections::BTreeMap<String, u64>,
    why: &str,
    time_ns: u64,
    hostname: &str,
    out: &mut Vec<u8>,
) {
    let missing: u64 = lost.values().sum();
    let source = format!("output:{output}");
    let message =
        format!("{missing} event(s) could not be delivered to the {output} output: {why}");
    object(out, |o| {
        loss_header(o, time_ns, &message, &source, &Fragments::new(hostname)).obj(
            "unmapped",
            |u| {
                u.caption("record", "loss")
                    .caption("detected_by", "output_failed")
                    .str("source", &source)
                    .u64("missing", missing)
                    .counts("lost_by_type", lost);
            },
        );
    });
}
