//! The netlink process connector's wire format (linux/connector.h,
//! linux/cn_proc.h): the subscription message we send and the process
//! events the kernel multicasts. Hand-written: no maintained crate parses
//! these few fixed-layout structs (`cnproc` on crates.io is unmaintained
//! and hides the per-CPU sequence numbers that tell us about loss).

/// `CN_IDX_PROC` / `CN_VAL_PROC`: the connector id of process events, and
/// the multicast group they are sent to.
pub const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_DONE: u16 = 3;
const CN_MSG_LEN: usize = 20;
/// `proc_event` header: what (u32), cpu (u32), timestamp_ns (u64).
const EVENT_HDR_LEN: usize = 16;

const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// A process event, as the kernel sent it (thread events included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcEvent {
    Fork {
        parent_tgid: u32,
        child_pid: u32,
        child_tgid: u32,
    },
    Exec {
        pid: u32,
        tgid: u32,
    },
    /// `status` is the wait status (code << 8 | core 0x80 | signal).
    Exit {
        pid: u32,
        tgid: u32,
        status: u32,
    },
}

/// One received message: the per-CPU sequence number, the CPU, and the
/// event when it is one we report (None for uid/gid/comm/... changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub cpu: u32,
    pub seq: u32,
    pub event: Option<ProcEvent>,
}

/// The netlink message that subscribes to process events.
pub fn listen_message() -> Vec<u8> {
    let payload = PROC_CN_MCAST_LISTEN.to_ne_bytes();
    let len = NLMSG_HDRLEN + CN_MSG_LEN + payload.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&std::process::id().to_ne_bytes());
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // ack
    m.extend_from_slice(&(payload.len() as u16).to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&payload);
    m
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// Every connector message of a datagram; anything not a process event
/// (another connector id, a truncated message) is skipped.
pub fn parse_datagram(mut d: &[u8], out: &mut Vec<Received>) {
    while d.len() >= NLMSG_HDRLEN {
        let len = u32_at(d, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || len > d.len() {
            return;
        }
        if let Some(r) = parse_message(&d[NLMSG_HDRLEN..len]) {
            out.push(r);
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        d = d.get(next..).unwrap_or(&[]);
    }
}

fn parse_message(m: &[u8]) -> Option<Received> {
    if u32_at(m, 0)? != CN_IDX_PROC || u32_at(m, 4)? != CN_VAL_PROC {
        return None;
    }
    let seq = u32_at(m, 8)?;
    let ev = m.get(CN_MSG_LEN..)?;
    let what = u32_at(ev, 0)?;
    let cpu = u32_at(ev, 4)?;
    let data = ev.get(EVENT_HDR_LEN..)?;
    let event = match what {
        PROC_EVENT_FORK => Some(ProcEvent::Fork {
            parent_tgid: u32_at(data, 4)?,
            child_pid: u32_at(data, 8)?,
            child_tgid: u32_at(data, 12)?,
        }),
        PROC_EVENT_EXEC => Some(ProcEvent::Exec {
            pid: u32_at(data, 0)?,
            tgid: u32_at(data, 4)?,
        }),
        PROC_EVENT_EXIT => Some(ProcEvent::Exit {
            pid: u32_at(data, 0)?,
            tgid: u32_at(data, 4)?,
            status: u32_at(data, 8)?,
        }),
        _ => None,
    };
    Some(Received { cpu, seq, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(what: u32, seq: u32, data: &[u32]) -> Vec<u8> {
        let mut body = Vec::new();
        for v in [CN_IDX_PROC, CN_VAL_PROC, seq, 0] {
            body.extend_from_slice(&v.to_ne_bytes());
        }
        let ev_len = (EVENT_HDR_LEN + data.len() * 4) as u16;
        body.extend_from_slice(&ev_len.to_ne_bytes());
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(&what.to_ne_bytes());
        body.extend_from_slice(&1u32.to_ne_bytes()); // cpu
        body.extend_from_slice(&123u64.to_ne_bytes());
        for v in data {
            body.extend_from_slice(&v.to_ne_bytes());
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn fork_exec_exit_and_others_parse() {
        let mut d = message(PROC_EVENT_FORK, 7, &[10, 10, 11, 11]);
        d.extend(message(PROC_EVENT_EXEC, 8, &[11, 11]));
        d.extend(message(PROC_EVENT_EXIT, 9, &[11, 11, 2 << 8, 17]));
        d.extend(message(0x200, 10, &[11, 11, 0, 0])); // comm change
        let mut out = Vec::new();
        parse_datagram(&d, &mut out);
        let events: Vec<_> = out.iter().map(|r| r.event).collect();
        assert_eq!(
            events,
            [
                Some(ProcEvent::Fork {
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                }),
                Some(ProcEvent::Exec { pid: 11, tgid: 11 }),
                Some(ProcEvent::Exit {
                    pid: 11,
                    tgid: 11,
                    status: 2 << 8
                }),
                None,
            ]
        );
        assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), [7, 8, 9, 10]);
        assert!(out.iter().all(|r| r.cpu == 1));
    }

    #[test]
    fn truncated_and_foreign_messages_are_skipped() {
        let mut d = message(PROC_EVENT_EXEC, 1, &[5]);
        d[16] = 9; // another connector id
        let mut out = Vec::new();
        parse_datagram(&d, &mut out);
        parse_datagram(&d[..10], &mut out);
        let mut short = message(PROC_EVENT_EXEC, 1, &[]);
        short.truncate(short.len());
        parse_datagram(&short, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_listen_message_is_a_connector_message() {
        let m = listen_message();
        assert_eq!(u32_at(&m, 0), Some(m.len() as u32));
        assert_eq!(u32_at(&m, NLMSG_HDRLEN), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&m, m.len() - 4), Some(PROC_CN_MCAST_LISTEN));
    }
}
