//! The endpoints audit records do not carry, read from /proc while the
//! socket is still there. A SOCKADDR record holds only the address the
//! caller passed (connect: the peer; bind: what was asked, port 0 for "any
//! port"; accept: the peer) and listen has none, while the eBPF side
//! reports the socket's own view. So for a network event the socket's fd
//! is resolved to its inode (`/proc/<pid>/fd/<fd>`) and looked up in the
//! process's own network namespace tables (`/proc/<pid>/net/{tcp,udp}{,6}`)
//! — right for containers too. Best effort: a socket closed (or a process
//! gone) before the record is read keeps what the record had, and the
//! scan reads at most `TABLE_BYTES` of each table so that a host with a
//! huge socket table cannot make every network event expensive.
//!
//! procfs parses the line found (addresses, byte order); the bounded scan
//! for the inode is ours because procfs reads a table whole.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;

use procfs::FromBufReadSI;
use procfs::net::{TcpNetEntries, UdpNetEntries};

use crate::event::{NetActivity, NetEvent};

/// Bytes read per table (one line is ~150 bytes: ~27,000 sockets).
const TABLE_BYTES: u64 = 4 << 20;

/// A socket's view of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketView {
    pub protocol: u16,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// The inode of `pid`'s fd `fd` when it is a socket.
fn socket_inode(proc_root: &Path, pid: u32, fd: i32) -> Option<u64> {
    let link = std::fs::read_link(proc_root.join(format!("{pid}/fd/{fd}"))).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The header and the line of `inode` in a /proc/net table, read up to
/// `TABLE_BYTES`.
fn find_line(path: &Path, inode: u64) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut lines = BufReader::new(file.take(TABLE_BYTES)).lines();
    let header = lines.next()?.ok()?;
    let wanted = inode.to_string();
    lines
        .map_while(Result::ok)
        // The inode is the tenth column of every table here.
        .find(|l| l.split_whitespace().nth(9) == Some(wanted.as_str()))
        .map(|l| format!("{header}\n{l}\n"))
}

/// A table line's (local, remote) addresses, parsed by procfs.
type Parse = fn(&str) -> Option<(SocketAddr, SocketAddr)>;

fn tcp(text: &str) -> Option<(SocketAddr, SocketAddr)> {
    let e = TcpNetEntries::from_buf_read(text.as_bytes(), procfs::current_system_info()).ok()?;
    e.0.first().map(|e| (e.local_address, e.remote_address))
}

fn udp(text: &str) -> Option<(SocketAddr, SocketAddr)> {
    let e = UdpNetEntries::from_buf_read(text.as_bytes(), procfs::current_system_info()).ok()?;
    e.0.first().map(|e| (e.local_address, e.remote_address))
}

fn lookup(proc_root: &Path, pid: u32, inode: u64) -> Option<SocketView> {
    let net = proc_root.join(format!("{pid}/net"));
    let (t, u) = (libc::IPPROTO_TCP as u16, libc::IPPROTO_UDP as u16);
    let tables: [(&str, u16, Parse); 4] = [
        ("tcp", t, tcp),
        ("tcp6", t, tcp),
        ("udp", u, udp),
        ("udp6", u, udp),
    ];
    tables.into_iter().find_map(|(table, protocol, parse)| {
        let (local, remote) = parse(&find_line(&net.join(table), inode)?)?;
        Some(SocketView {
            protocol,
            local,
            remote,
        })
    })
}

/// The first of `fds` of `pid` that is an inet socket, as the socket sees
/// itself.
pub fn view(proc_root: &Path, pid: u32, fds: &[i32]) -> Option<SocketView> {
    fds.iter()
        .filter(|fd| **fd >= 0)
        .find_map(|fd| lookup(proc_root, pid, socket_inode(proc_root, pid, *fd)?))
}

fn unset(a: &Option<SocketAddr>) -> bool {
    a.is_none_or(|a| a.port() == 0)
}

/// Fills what the records left open: the protocol, the local endpoint
/// (connect's source, bind's port when "any port" was asked, listen's and
/// accept's own address) and a peer the socket knows. What the record
/// carried otherwise stays.
pub fn complete(net: &mut NetEvent, v: SocketView) {
    if net.protocol == 0 {
        net.protocol = v.protocol;
    }
    if unset(&net.local) && v.local.port() != 0 {
        net.local = Some(v.local);
    }
    let accepting = matches!(net.activity, NetActivity::Accept);
    if (accepting || matches!(net.activity, NetActivity::Connect))
        && net.remote.is_none()
        && v.remote.port() != 0
    {
        net.remote = Some(v.remote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_listening_socket_is_found_with_its_bound_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        use std::os::fd::AsRawFd;
        let v = view(Path::new("/proc"), std::process::id(), &[-1, l.as_raw_fd()])
            .expect("the listener is in /proc/self/net/tcp");
        assert_eq!(v.protocol, 6);
        assert_eq!(v.local, SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(v.remote.port(), 0);
        let u = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let v = view(Path::new("/proc"), std::process::id(), &[u.as_raw_fd()]).unwrap();
        assert_eq!(v.protocol, 17);
        assert_eq!(v.local, u.local_addr().unwrap());
        // Not a socket, or no such fd: nothing.
        assert_eq!(
            view(Path::new("/proc"), std::process::id(), &[0, 9999]),
            None
        );
    }
}
