//! The audit netlink multicast group (AUDIT_NLGRP_READLOG): a read-only
//! copy of every audit record, whether or not auditd runs. We never
//! register as the audit daemon.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_AUDIT};

const AUDIT_NLGRP_READLOG: u32 = 1;
const NLMSG_HDRLEN: usize = 16;
const READ_BATCH: usize = 8192;

/// One audit record: its type and text ("audit(…): key=value …").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAuditRecord {
    pub ty: u16,
    pub text: Vec<u8>,
}

pub struct AuditMulticast {
    sock: Socket,
    buf: Vec<u8>,
}

impl AsRawFd for AuditMulticast {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// The receive buffer the sensor asks for: a burst of audit records
/// (a package install, a build) must wait here while the loop is busy.
const RECEIVE_BUFFER: usize = 32 << 20;

/// SO_RCVBUFFORCE (CAP_NET_ADMIN, which the unit grants) goes past the
/// host's net.core.rmem_max, which caps SO_RCVBUF at ~200 KiB by default:
/// too small for a burst. Without the capability, SO_RCVBUF's best.
fn grow_receive_buffer(sock: &Socket) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    use std::os::fd::BorrowedFd;
    // SAFETY: the socket's fd is open for the duration of this call.
    let fd = unsafe { BorrowedFd::borrow_raw(sock.as_raw_fd()) };
    if let Err(e) = setsockopt(&fd, sockopt::RcvBufForce, &RECEIVE_BUFFER) {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
        log::warn!(
            "audit socket: cannot force a {} MiB receive buffer ({e}); bursts may overflow it (counted as loss)",
            RECEIVE_BUFFER >> 20
        );
    }
    if let Ok(n) = getsockopt(&fd, sockopt::RcvBuf) {
        log::debug!("audit socket receive buffer: {n} bytes");
    }
}

/// What a read produced.
pub enum Received {
    /// Records, and the socket is empty now.
    Records,
    /// Records, and more are waiting (the batch limit was reached).
    More,
    /// The socket buffer overflowed: records were lost here (more are
    /// waiting: the read stopped at the error).
    Overflow,
    Nothing,
}

impl AuditMulticast {
    pub fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_AUDIT)?;
        sock.bind(&SocketAddr::new(0, 0))?;
        sock.add_membership(AUDIT_NLGRP_READLOG)?;
        sock.set_non_blocking(true)?;
        grow_receive_buffer(&sock);
        Ok(Self {
            sock,
            buf: vec![0u8; 1 << 16],
        })
    }

    /// Reads waiting datagrams into `out`, at most a batch per call so a
    /// flood cannot keep the caller from its other work.
    pub fn read(&mut self, out: &mut Vec<RawAuditRecord>) -> io::Result<Received> {
        let mut got = Received::Nothing;
        for _ in 0..READ_BATCH {
            match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => {
                    parse_datagram(&self.buf[..n], out);
                    got = Received::Records;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(Received::Overflow),
                Err(e) => return Err(e),
            }
        }
        Ok(Received::More)
    }
}

/// Splits a datagram into netlink messages (audit sends one per datagram,
/// but the format allows several).
pub fn parse_datagram(mut d: &[u8], out: &mut Vec<RawAuditRecord>) {
    while d.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as usize;
        let ty = u16::from_ne_bytes([d[4], d[5]]);
        if len < NLMSG_HDRLEN || len > d.len() {
            // The kernel's audit multicast sets nlmsg_len to the payload
            // length in some versions; take the rest of the datagram.
            let text = trim_nul(&d[NLMSG_HDRLEN..]);
            out.push(RawAuditRecord {
                ty,
                text: text.to_vec(),
            });
            return;
        }
        out.push(RawAuditRecord {
            ty,
            text: trim_nul(&d[NLMSG_HDRLEN..len]).to_vec(),
        });
        let aligned = (len + 3) & !3;
        d = d.get(aligned..).unwrap_or(&[]);
    }
}

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let b = &b[..end];
    b.strip_suffix(b"\n").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, text: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + text.len()) as u32;
        let mut v = len.to_ne_bytes().to_vec();
        v.extend(ty.to_ne_bytes());
        v.extend([0u8; 10]);
        v.extend(text);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    #[test]
    fn datagrams_split_into_records() {
        let mut d = msg(1300, b"audit(1.2:3): a=1");
        d.extend(msg(1320, b"audit(1.2:3): "));
        let mut out = vec![];
        parse_datagram(&d, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].ty, 1300);
        assert_eq!(out[0].text, b"audit(1.2:3): a=1");
        assert_eq!(out[1].ty, 1320);
    }

    #[test]
    fn a_short_length_takes_the_rest() {
        let mut d = msg(1112, b"audit(1.2:9): op=login");
        d[0..4].copy_from_slice(&3u32.to_ne_bytes());
        let mut out = vec![];
        parse_datagram(&d, &mut out);
        assert_eq!(out[0].text, b"audit(1.2:9): op=login");
    }
}
