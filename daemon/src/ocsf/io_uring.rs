//! io_uring events: a ring set up is Process Activity (99 Other); an
//! operation submitted to one is written in the class of what it does —
//! File System Activity or Network Activity — so that rules keyed on
//! paths and addresses see it too. Reported when submitted: the status is
//! Unknown (the result is the ring's). `unmapped.io_uring` carries the
//! operation, and `unmapped.call_path` says `io_uring`.

use super::file::{file_ext, file_obj};
use super::{
    Class, FILE_ACTIVITY, Fragments, NETWORK_ACTIVITY, PROCESS_ACTIVITY, actor, base, endpoint,
    origin_unmapped, process_obj,
};
use crate::event::{IoUringEvent, IoUringOp, IoUringOpcode};
use crate::json::{Obj, object_in};

/// What every io_uring event shares: the class's base, the status (a
/// setup succeeded; an operation's result is the ring's), the class's own
/// fields (`fields`), the actor, and `unmapped` with the `io_uring`
/// object (`io`) and what else OCSF has no place for (`extra`).
#[allow(clippy::too_many_arguments)]
fn frame(
    out: &mut Vec<u8>,
    compact: bool,
    e: &IoUringEvent,
    fx: &mut Fragments,
    class: &Class,
    activity: (u64, &'static str),
    fields: impl FnOnce(&mut Obj<'_>),
    io: impl FnOnce(&mut Obj<'_>),
    extra: impl FnOnce(&mut Obj<'_>),
) {
    object_in(out, compact, |o| {
        base(o, class, activity, e.time_ns, &e.origin, fx);
        if matches!(e.op, IoUringOp::Setup { .. }) {
            o.u64("status_id", 1).label("status", "Success");
        } else {
            o.u64("status_id", 0).label("status", "Unknown").str(
                "status_detail",
                "submitted to an io_uring; the result is the ring's",
            );
        }
        fields(o);
        actor(o, fx, &e.process);
        o.obj("unmapped", |u| {
            origin_unmapped(u, &e.origin);
            u.obj("io_uring", io);
            extra(u);
            u.u64("time_ns", e.time_ns);
        });
    });
}

pub(super) fn io_uring_event(
    e: &IoUringEvent,
    fx: &mut Fragments,
    compact: bool,
    out: &mut Vec<u8>,
) {
    let this_process = |o: &mut Obj<'_>| {
        o.obj("process", |p| process_obj(p, &e.process, None));
    };
    match &e.op {
        IoUringOp::Other { opcode } => frame(
            out,
            compact,
            e,
            fx,
            &PROCESS_ACTIVITY,
            (99, "Other"),
            this_process,
            |x| {
                x.caption("operation", "OTHER")
                    .u64("opcode", (*opcode).into());
            },
            |_| {},
        ),
        IoUringOp::Setup {
            ring_fd,
            sq_entries,
            flags,
        } => frame(
            out,
            compact,
            e,
            fx,
            &PROCESS_ACTIVITY,
            (99, "Other"),
            this_process,
            |x| {
                x.caption("operation", "SETUP")
                    .i64("ring_fd", (*ring_fd).into())
                    .u64("sq_entries", (*sq_entries).into())
                    .u64("setup_flags", (*flags).into());
            },
            |_| {},
        ),
        IoUringOp::File {
            opcode,
            dirfd,
            file,
            to,
        } => {
            let activity = match opcode {
                IoUringOpcode::Unlinkat => (4, "Delete"),
                IoUringOpcode::Renameat => (5, "Rename"),
                IoUringOpcode::Mkdirat | IoUringOpcode::Symlinkat | IoUringOpcode::Linkat => {
                    (1, "Create")
                }
                _ => (14, "Open"),
            };
            frame(
                out,
                compact,
                e,
                fx,
                &FILE_ACTIVITY,
                activity,
                |o| {
                    o.obj("file", |f| file_obj(f, file, None));
                    if let Some(to) = to {
                        o.obj("file_result", |f| file_obj(f, to, None));
                    }
                },
                |x| {
                    x.caption("operation", opcode.as_str())
                        .i64("dirfd", (*dirfd).into());
                },
                |u| {
                    u.obj("file", |f| file_ext(f, file));
                },
            )
        }
        IoUringOp::Net {
            opcode,
            fd,
            fixed_file,
            remote,
        } => {
            let (activity, direction) = match opcode {
                IoUringOpcode::Connect => ((1, "Open"), (2, "Outbound")),
                IoUringOpcode::Accept => ((1, "Open"), (1, "Inbound")),
                IoUringOpcode::Listen => ((7, "Listen"), (0, "Unknown")),
                _ => ((99, "Other"), (0, "Unknown")),
            };
            frame(
                out,
                compact,
                e,
                fx,
                &NETWORK_ACTIVITY,
                activity,
                |o| {
                    if let Some(a) = remote {
                        o.obj("dst_endpoint", |x| endpoint(x, a));
                    }
                    o.obj("connection_info", |c| {
                        c.u64("direction_id", direction.0)
                            .caption("direction", direction.1);
                    });
                },
                |x| {
                    x.caption("operation", opcode.as_str())
                        .i64("fd", (*fd).into())
                        .bool("fixed_file", *fixed_file);
                },
                |_| {},
            )
        }
    }
}
