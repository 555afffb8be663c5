//! Assembled audit events → normalized events, the same shapes the eBPF
//! provider produces. Identity fields the audit records lack (process
//! start time, hence entity ids) are filled in by the pipeline.
// libc's SYS_* constants keep the kernel's lower-case names in match patterns.
#![allow(non_upper_case_globals)]

use libc::{
    SYS_accept, SYS_accept4, SYS_bind, SYS_chmod, SYS_chown, SYS_connect, SYS_creat, SYS_fchmodat,
    SYS_fchownat, SYS_lchown, SYS_link, SYS_linkat, SYS_mkdir, SYS_mkdirat, SYS_open, SYS_openat,
    SYS_openat2, SYS_rename, SYS_renameat, SYS_renameat2, SYS_rmdir, SYS_symlink, SYS_symlinkat,
    SYS_unlink, SYS_unlinkat,
};
use linux_audit_parser::{Body, MessageType, Parser};

use super::arch::{Arch, I386_SOCKETCALL};
use super::assemble::AuditEvent;
use super::fields::*;
use super::netlink::RawAuditRecord;
use crate::event::{
    AuthActivity, AuthEvent, CallPath, Credentials, Event, FileActivity, FileEvent, FileInfo,
    NetActivity, NetEvent, Origin, ProcessActivity, ProcessEvent, ProcessInfo, Provider,
};
use crate::kind::{EventKind, class};
use crate::paths::{has_dotdot, join_lexical};

const SYSCALL: u32 = 1300;
const PATH: u32 = 1302;
const SOCKADDR: u32 = 1306;
const SOCKETCALL: u32 = 1304;
const CWD: u32 = 1307;
const EXECVE: u32 = 1309;

/// Why an event produced nothing; counted by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A record did not parse.
    Malformed,
    /// Not a record type or system call the sensor reports.
    NotReported,
    /// A record the event needs is missing (e.g. no PATH for an open).
    Incomplete,
}

struct Parsed {
    ty: u32,
    body: Body<'static>,
}

/// Seconds in a header beyond any a kernel writes (year 33658).
const MAX_HEADER_SECONDS: u64 = 1_000_000_000_000;

fn parse(rec: &RawAuditRecord) -> Option<Parsed> {
    // linux-audit-parser computes the header's time as 1000 × seconds +
    // milliseconds unchecked (0.2.8: a panic with overflow checks, a
    // wrapped time without; found by the fuzz replay): a header no kernel
    // writes is malformed here, before the parser sees it.
    let (sec, ms, _) = super::assemble::event_id(&rec.text)?;
    if sec >= MAX_HEADER_SECONDS || ms >= 1000 {
        return None;
    }
    // The parser takes auditd log lines, which end in a newline.
    let line = format!(
        "type={} msg={}\n",
        MessageType(u32::from(rec.ty)),
        String::from_utf8_lossy(&rec.text)
    );
    let msg = Parser::default().parse(line.as_bytes()).ok()?;
    Some(Parsed {
        ty: msg.ty.0,
        body: msg.body,
    })
}

struct Ctx<'a> {
    syscall: &'a Body<'static>,
    /// A 32-bit socketcall's own arguments (its SOCKETCALL record); the
    /// others' are in the SYSCALL record.
    socketcall_args: Option<[u64; 6]>,
    records: &'a [Parsed],
    cwd: Option<String>,
    /// A directory fd other than the cwd was passed: audit names relative
    /// paths as given, so their join with the cwd is only inferred.
    at_dirfd: bool,
}

/// Whether syscall `nr` was given a directory fd other than AT_FDCWD
/// (the arguments that are directory fds, per call).
fn uses_dirfd(nr: i64, body: &Body) -> bool {
    let dirfd_args: &[&str] = match nr {
        SYS_openat
        | SYS_openat2
        | SYS_unlinkat
        | SYS_mkdirat
        | SYS_fchmodat
        | SYS_fchownat
        | libc::SYS_execveat => &["a0"],
        SYS_renameat | SYS_renameat2 | SYS_linkat => &["a0", "a2"],
        SYS_symlinkat => &["a1"],
        _ => &[],
    };
    // AT_FDCWD is -100: ffffff9c as a 32-bit argument, sign-extended as 64.
    dirfd_args
        .iter()
        .any(|a| arg(body, a).is_some_and(|v| v as i32 != libc::AT_FDCWD))
}

impl Ctx<'_> {
    fn of_type(&self, ty: u32) -> impl Iterator<Item = &Body<'static>> {
        self.records
            .iter()
            .filter(move |r| r.ty == ty)
            .map(|r| &r.body)
    }

    /// PATH records with this nametype, as absolute paths plus identity.
    fn paths(&self, nametype: &str) -> Vec<FileInfo> {
        self.of_type(PATH)
            .filter(|b| text(b, "nametype").as_deref() == Some(nametype))
            .filter_map(|b| {
                let name = text(b, "name")?;
                let path = match (&self.cwd, name.starts_with('/')) {
                    (_, true) => join_lexical("/", &name),
                    (Some(cwd), false) => join_lexical(cwd, &name),
                    (None, false) => return None,
                };
                let known = nametype != "DELETE";
                let inferred = has_dotdot(&name) || (self.at_dirfd && !name.starts_with('/'));
                Some(FileInfo {
                    path: Some(path.into()),
                    path_inferred: inferred,
                    inode: num(b, "inode").filter(|_| known).map(|i| i as u64),
                    device: text(b, "dev").and_then(|d| audit_dev(&d)),
                    mode: num(b, "mode").filter(|_| known).map(|m| m as u32),
                    ..Default::default()
                })
            })
            .collect()
    }

    fn process(&self) -> ProcessInfo {
        let b = self.syscall;
        ProcessInfo {
            pid: id(b, "pid").unwrap_or(0),
            name: text(b, "comm").map(Into::into),
            exe: text(b, "exe").map(Into::into),
            cwd: self.cwd.clone(),
            creds: Some(Credentials {
                uid: id(b, "uid").unwrap_or(0),
                gid: id(b, "gid").unwrap_or(0),
                euid: id(b, "euid").unwrap_or(0),
                egid: id(b, "egid").unwrap_or(0),
                user_name: None,
                loginuid: id(b, "auid"),
                sessionid: id(b, "ses"),
            }),
            ..Default::default()
        }
    }

    fn error(&self) -> Option<i32> {
        let ok = text(self.syscall, "success").as_deref() == Some("yes");
        let exit = num(self.syscall, "exit").unwrap_or(0);
        // Saturating: the record's number is text (an `exit=` of i64::MIN
        // overflowed the negation).
        (!ok && exit < 0).then(|| i32::try_from(exit.saturating_neg()).unwrap_or(i32::MAX))
    }
}

fn origin(ev: &AuditEvent, arch: Option<Arch>) -> Origin {
    Origin {
        provider: Provider::Auditd,
        source: "auditd".into(),
        sequence: ev.serial,
        path: match arch {
            Some(Arch::I386) => CallPath::Ia32,
            _ => CallPath::Native,
        },
    }
}

/// One system call's records, what every event of it shares.
struct Call<'a> {
    ctx: Ctx<'a>,
    nr: i64,
    time_ns: u64,
    origin: Origin,
}

impl Call<'_> {
    /// A syscall argument (a0..a3), 0 when absent.
    fn arg(&self, key: &str) -> u64 {
        match (self.ctx.socketcall_args, key.strip_prefix('a')) {
            (Some(args), Some(i)) => i
                .parse::<usize>()
                .ok()
                .and_then(|i| args.get(i).copied())
                .unwrap_or(0),
            _ => arg(self.ctx.syscall, key).unwrap_or(0),
        }
    }

    fn first_path(&self, nametype: &str) -> Result<FileInfo, Skip> {
        self.ctx
            .paths(nametype)
            .into_iter()
            .next()
            .ok_or(Skip::Incomplete)
    }

    fn parent(&self) -> ProcessInfo {
        ProcessInfo {
            pid: id(self.ctx.syscall, "ppid").unwrap_or(0),
            ..Default::default()
        }
    }

    fn file(&self, activity: FileActivity, file: FileInfo) -> Result<Event, Skip> {
        Ok(Event::File(Box::new(FileEvent {
            time_ns: self.time_ns,
            activity,
            file,
            error: self.ctx.error(),
            process: self.ctx.process(),
            origin: self.origin.clone(),
        })))
    }
}

/// An event and, for a network event, the fds its socket can be found
/// by while it is open (sockets.rs): the records do not carry every
/// endpoint.
pub struct Converted {
    pub event: Event,
    pub socket_fds: Option<[i32; 2]>,
}

/// Converts one assembled audit event.
pub fn convert(ev: &AuditEvent) -> Result<Converted, Skip> {
    let mut socket_fds = None;
    let event = convert_event(ev, &mut socket_fds)?;
    Ok(Converted { event, socket_fds })
}

fn convert_event(ev: &AuditEvent, socket_fds: &mut Option<[i32; 2]>) -> Result<Event, Skip> {
    let records: Vec<Parsed> = ev
        .records
        .iter()
        .map(parse)
        .collect::<Option<_>>()
        .ok_or(Skip::Malformed)?;
    // Saturating: the header's time is text any record can carry.
    let time_ns = ev.time_ms.saturating_mul(1_000_000);
    let first = records.first().ok_or(Skip::Incomplete)?;
    if (1100..1200).contains(&first.ty) {
        return login(first, time_ns, origin(ev, None));
    }
    let syscall = records
        .iter()
        .find(|r| r.ty == SYSCALL)
        .ok_or(Skip::Incomplete)?;
    let cwd = records
        .iter()
        .find(|r| r.ty == CWD)
        .and_then(|r| text(&r.body, "cwd"));
    let arch = num(&syscall.body, "arch")
        .and_then(Arch::from_number)
        .ok_or(Skip::NotReported)?;
    let raw_nr = num(&syscall.body, "syscall").ok_or(Skip::Malformed)?;
    // In x86_64 numbers: a 32-bit program's calls are the same kinds.
    let nr = arch
        .call_to_x86_64(raw_nr, arg(&syscall.body, "a0").unwrap_or(u64::MAX))
        .ok_or(Skip::NotReported)?;
    // socketcall(2): the call's own arguments are in its SOCKETCALL
    // record (read from its text: the parser knows a0.. as hex only in
    // SYSCALL records).
    let socketcall_args = if arch == Arch::I386 && raw_nr == I386_SOCKETCALL {
        let rec = ev
            .records
            .iter()
            .find(|r| u32::from(r.ty) == SOCKETCALL)
            .ok_or(Skip::Incomplete)?;
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            *a = super::selection::hex_field(&rec.text, format!("a{i}").as_bytes()).unwrap_or(0);
        }
        Some(args)
    } else {
        None
    };
    let kind = EventKind::from_audit_syscall(nr).ok_or(Skip::NotReported)?;
    let call = Call {
        ctx: Ctx {
            syscall: &syscall.body,
            socketcall_args,
            records: &records,
            cwd,
            at_dirfd: uses_dirfd(nr, &syscall.body),
        },
        nr,
        time_ns,
        origin: origin(ev, Some(arch)),
    };
    match kind.spec().ocsf_class {
        class::PROCESS_ACTIVITY => process_event(&call, kind),
        class::FILE_SYSTEM_ACTIVITY => file_event(&call),
        class::NETWORK_ACTIVITY => {
            // accept: the new socket (the call's result), else the
            // listener; the others: their first argument.
            let a0 = call.arg("a0") as i32;
            let exit = num(call.ctx.syscall, "exit").unwrap_or(-1) as i32;
            *socket_fds = Some(match call.nr {
                SYS_accept | SYS_accept4 => [exit, a0],
                _ => [a0, -1],
            });
            net_event(&call)
        }
        _ => Err(Skip::NotReported),
    }
}

fn process_event(call: &Call<'_>, kind: EventKind) -> Result<Event, Skip> {
    let mut process = call.ctx.process();
    let activity = if kind == EventKind::ProcessExec {
        if call.ctx.error().is_some() {
            // A failed exec (a shell trying each PATH entry) has no
            // EXECVE record and runs nothing; eBPF sees only execs that
            // happened.
            return Err(Skip::NotReported);
        }
        if !call.ctx.records.iter().any(|r| r.ty == EXECVE) {
            return Err(Skip::Incomplete);
        }
        let args = super::execve::assemble(
            call.ctx
                .records
                .iter()
                .filter(|r| r.ty == EXECVE)
                .map(|r| &r.body),
            bytes,
        );
        process.tid = process.creds.as_ref().map(|_| process.pid);
        process.argv = Some(args.argv.into());
        process.argc = Some(args.argc);
        process.argv_truncated = args.truncated;
        ProcessActivity::Exec
    } else {
        ProcessActivity::Exit {
            code: (call.arg("a0") & 0xff) as u32,
            signal: None,
            core_dumped: false,
        }
    };
    Ok(Event::Process(Box::new(ProcessEvent {
        time_ns: call.time_ns,
        activity,
        parent: Some(call.parent()),
        process,
        origin: call.origin.clone(),
    })))
}

fn file_event(call: &Call<'_>) -> Result<Event, Skip> {
    let (nr, a) = (call.nr, |k: &str| call.arg(k));
    match nr {
        SYS_open | SYS_openat | SYS_openat2 | SYS_creat => open_event(call),
        SYS_unlink | SYS_unlinkat | SYS_rmdir => {
            let directory =
                nr == SYS_rmdir || (nr == SYS_unlinkat && a("a2") & libc::AT_REMOVEDIR as u64 != 0);
            call.file(
                FileActivity::Delete { directory },
                call.first_path("DELETE")?,
            )
        }
        SYS_rename | SYS_renameat | SYS_renameat2 => {
            let from = call.first_path("DELETE")?;
            let to = call.first_path("CREATE")?;
            let flags = if nr == SYS_renameat2 {
                a("a4") as u32
            } else {
                0
            };
            call.file(FileActivity::Rename { to, flags }, from)
        }
        SYS_mkdir | SYS_mkdirat => {
            let mode = if nr == SYS_mkdir { a("a1") } else { a("a2") } as u32;
            call.file(FileActivity::Mkdir { mode }, call.first_path("CREATE")?)
        }
        SYS_chmod | SYS_fchmodat => {
            let mode = if nr == SYS_chmod { a("a1") } else { a("a2") } as u32;
            call.file(FileActivity::Chmod { mode }, call.first_path("NORMAL")?)
        }
        SYS_chown | SYS_lchown | SYS_fchownat => {
            let (u, g) = if nr == SYS_fchownat {
                (a("a2"), a("a3"))
            } else {
                (a("a1"), a("a2"))
            };
            let own = |v: u64| (v as u32 != u32::MAX).then_some(v as u32);
            let activity = FileActivity::Chown {
                uid: own(u),
                gid: own(g),
            };
            call.file(activity, call.first_path("NORMAL")?)
        }
        SYS_link | SYS_linkat => {
            let to = call.first_path("CREATE")?;
            let existing = call.first_path("NORMAL").unwrap_or_default();
            call.file(FileActivity::Link { to, flags: 0 }, existing)
        }
        SYS_symlink | SYS_symlinkat => call.file(
            FileActivity::Symlink {
                target: String::new(),
            },
            call.first_path("CREATE")?,
        ),
        // fchmod/fchown name no path: their records carry no file.
        _ => Err(Skip::NotReported),
    }
}

fn open_event(call: &Call<'_>) -> Result<Event, Skip> {
    let nr = call.nr;
    let flags = match nr {
        SYS_open => call.arg("a1"),
        SYS_openat => call.arg("a2"),
        // creat(2) is open(O_CREAT|O_WRONLY|O_TRUNC).
        SYS_creat => 0o1101,
        _ => 0,
    } as u32;
    let created = call.ctx.paths("CREATE").into_iter().next();
    let is_created = created.is_some();
    let f = match created {
        Some(f) => f,
        None => call.first_path("NORMAL")?,
    };
    let mut access = 0u32;
    let acc = flags & 3;
    if nr != SYS_openat2 {
        if acc != 1 {
            access |= 1;
        }
        if acc == 1 || acc == 2 {
            access |= 2;
        }
        if flags & 0o1000 != 0 && access & 2 != 0 {
            access |= 8;
        }
    }
    if is_created {
        access |= 4;
    }
    let fd = num(call.ctx.syscall, "exit").unwrap_or(-1) as i32;
    call.file(FileActivity::Open { access, flags, fd }, f)
}

fn net_event(call: &Call<'_>) -> Result<Event, Skip> {
    let addr = call
        .ctx
        .records
        .iter()
        .find(|r| r.ty == SOCKADDR)
        .and_then(|r| get(&r.body, "saddr").and_then(bytes))
        .and_then(|b| sockaddr(&b));
    let (activity, local, remote) = match call.nr {
        SYS_connect => (NetActivity::Connect, None, addr),
        SYS_accept | SYS_accept4 => (NetActivity::Accept, None, addr),
        SYS_bind => (NetActivity::Bind, addr, None),
        _ => {
            let backlog = call.arg("a1") as u32;
            (NetActivity::Listen { backlog }, None, None)
        }
    };
    if addr.is_none() && !matches!(activity, NetActivity::Listen { .. }) {
        // Not an inet socket (unix, netlink): not reported.
        return Err(Skip::NotReported);
    }
    Ok(Event::Network(Box::new(NetEvent {
        time_ns: call.time_ns,
        activity,
        protocol: 0,
        local,
        remote,
        error: call.ctx.error(),
        process: call.ctx.process(),
        origin: call.origin.clone(),
    })))
}

fn login(r: &Parsed, time_ns: u64, origin: Origin) -> Result<Event, Skip> {
    let record_type = MessageType(r.ty).to_string();
    let activity = match r.ty {
        1100 | 1112 | 1105 => AuthActivity::Logon, // USER_AUTH, USER_LOGIN, USER_START
        1106 | 1113 => AuthActivity::Logoff,       // USER_END, USER_LOGOUT
        1101 | 1103 | 1104 | 1108 | 1109 | 1110 => AuthActivity::Other,
        _ => return Err(Skip::NotReported),
    };
    let b = &r.body;
    let res = msg_field(b, "res").or_else(|| text(b, "res"));
    let exe: Option<String> = msg_field(b, "exe");
    let process = ProcessInfo {
        pid: id(b, "pid").unwrap_or(0),
        // PAM records carry no comm: the executable's file name is the
        // process's name, whether or not the process is still there to be
        // found in the cache when the record is read (it is often gone).
        name: exe
            .as_deref()
            .and_then(|e| e.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .map(Into::into),
        exe: exe.map(Into::into),
        creds: Some(Credentials {
            uid: id(b, "uid").unwrap_or(0),
            loginuid: id(b, "auid"),
            sessionid: id(b, "ses"),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Event::Auth(Box::new(AuthEvent {
        time_ns,
        activity,
        record_type,
        success: matches!(res.as_deref(), Some("success") | Some("yes")),
        user: msg_field(b, "acct").or_else(|| msg_field(b, "id")),
        op: msg_field(b, "op"),
        terminal: msg_field(b, "terminal"),
        remote_host: msg_field(b, "hostname"),
        remote_addr: msg_field(b, "addr"),
        session: id(b, "ses"),
        process,
        origin,
    })))
}

#[cfg(test)]
mod tests;
