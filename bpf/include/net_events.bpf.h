/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The network events, from a finished system call: connect (with its
 * result), accept (with the peer), listen, bind, and the first datagram of
 * each UDP flow. Shared by the syscall exit tracepoints (net.bpf.c) and
 * the 32-bit (ia32) calls (ia32.bpf.c): the caller reads the arguments of
 * its ABI and passes them, with the call's return value.
 */
#ifndef MDATP_NET_EVENTS_BPF_H
#define MDATP_NET_EVENTS_BPF_H

#include "syscall.bpf.h"
#include "common.bpf.h"
#include "proc_state.bpf.h"
#include "task.bpf.h"

#define MDATP_AF_INET 2
#define MDATP_AF_INET6 10

/* The sock of a socket fd, or NULL when fd is not an inet socket. */
static __always_inline struct sock *inet_sock_of(long fd)
{
	bool typed;
	struct file *f = mdatp_fd_file(fd, &typed);
	struct inode *inode;
	struct socket *sock;
	struct sock *sk;
	__u16 family;

	if (!f)
		return NULL;
	/* S_IFSOCK */
	inode = MDATP_RD(typed, f, f_inode);
	if ((MDATP_RD(typed, inode, i_mode) & 0170000) != 0140000)
		return NULL;
	/* void *: never typed */
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != MDATP_AF_INET && family != MDATP_AF_INET6)
		return NULL;
	return sk;
}

static __always_inline void sock_fill(struct mdatp_net_event *ev, struct sock *sk, bool remote)
{
	ev->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev->protocol = BPF_CORE_READ(sk, sk_protocol);
	ev->sock_type = BPF_CORE_READ(sk, sk_type);
	ev->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (ev->family == MDATP_AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

		__builtin_memcpy(ev->local_addr, &a, 4);
	} else {
		BPF_CORE_READ_INTO(&ev->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	}
	if (!remote)
		return;
	ev->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (ev->family == MDATP_AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(ev->remote_addr, &a, 4);
	} else {
		BPF_CORE_READ_INTO(&ev->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/* Reads a user sockaddr_in/in6 into the remote (or local) fields.
 * Returns false for other families. */
static __always_inline bool user_addr_fill(struct mdatp_net_event *ev, const void *uaddr,
					   bool as_remote)
{
	__u16 family = 0, port = 0;
	__u8 *addr = as_remote ? ev->remote_addr : ev->local_addr;

	if (bpf_probe_read_user(&family, sizeof(family), uaddr) < 0)
		return false;
	bpf_probe_read_user(&port, sizeof(port), (const char *)uaddr + 2);
	if (family == MDATP_AF_INET)
		bpf_probe_read_user(addr, 4, (const char *)uaddr + 4);
	else if (family == MDATP_AF_INET6)
		bpf_probe_read_user(addr, 16, (const char *)uaddr + 8);
	else
		return false;
	ev->family = family;
	if (as_remote)
		ev->remote_port = bpf_ntohs(port);
	else
		ev->local_port = bpf_ntohs(port);
	return true;
}

static __always_inline bool remote_excluded(struct mdatp_net_event *ev)
{
	struct mdatp_net_key key = { .prefixlen = 128 };

	if (ev->family == MDATP_AF_INET) {
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], ev->remote_addr, 4);
	} else {
		__builtin_memcpy(key.addr, ev->remote_addr, 16);
	}
	return bpf_map_lookup_elem(&excluded_nets, &key) != NULL;
}

static __always_inline int finish(struct mdatp_net_event *ev, __u32 type, bool check_remote)
{
	if (check_remote && remote_excluded(ev)) {
		mdatp_count_filtered(type);
		return 0;
	}
	mdatp_fill_task(&ev->task);
	mdatp_fill_header(&ev->hdr, type, sizeof(*ev));
	mdatp_output(ev, sizeof(*ev), type);
	return 0;
}

/* connect(fd, uaddr): the remote address the caller passed (still
 * there after a failure). */
static __always_inline int net_connect(long ret, long fd, const void *uaddr)
{
	struct mdatp_net_event ev = {};
	struct sock *sk;

	if (!mdatp_wanted(MDATP_EV_NET_CONNECT))
		return 0;
	sk = inet_sock_of(fd);
	if (!sk)
		return 0;
	sock_fill(&ev, sk, false);
	if (!user_addr_fill(&ev, uaddr, true))
		return 0;
	ev.ret = ret;
	return finish(&ev, MDATP_EV_NET_CONNECT, true);
}

/* accept/accept4: `fd` is the new connection (the return value). */
static __always_inline int net_accept(long fd)
{
	struct mdatp_net_event ev = {};
	struct sock *sk;

	if (fd < 0 || !mdatp_wanted(MDATP_EV_NET_ACCEPT))
		return 0;
	sk = inet_sock_of(fd);
	if (!sk)
		return 0;
	sock_fill(&ev, sk, true);
	ev.ret = fd;
	return finish(&ev, MDATP_EV_NET_ACCEPT, true);
}

static __always_inline int net_listen(long ret, long fd, long backlog)
{
	struct mdatp_net_event ev = {};
	struct sock *sk;

	if (!mdatp_wanted(MDATP_EV_NET_LISTEN))
		return 0;
	sk = inet_sock_of(fd);
	if (!sk)
		return 0;
	sock_fill(&ev, sk, false);
	ev.backlog = backlog;
	ev.ret = ret;
	return finish(&ev, MDATP_EV_NET_LISTEN, false);
}

static __always_inline int net_bind(long ret, long fd, const void *uaddr)
{
	struct mdatp_net_event ev = {};
	struct sock *sk;

	if (!mdatp_wanted(MDATP_EV_NET_BIND))
		return 0;
	sk = inet_sock_of(fd);
	if (!sk)
		return 0;
	sock_fill(&ev, sk, false);
	ev.ret = ret;
	/* Bound: the socket has the real port (port 0 asks for any). Failed:
	 * report what was asked for. */
	if (ev.ret < 0 && !user_addr_fill(&ev, uaddr, false))
		return 0;
	return finish(&ev, MDATP_EV_NET_BIND, false);
}

/* ---- UDP: the first datagram of each flow ---- */

#define MDATP_IPPROTO_UDP 17

/*
 * uaddr: the peer address the caller passed (send) or received into
 * (recv), or NULL for a connected socket (then the socket's peer).
 */
static __always_inline int udp_first(long ret, __u32 type, long fd, const void *uaddr)
{
	struct mdatp_udp_flow_key key = {};
	struct mdatp_net_event ev = {};
	__u8 one = 1;
	struct sock *sk;

	if (ret < 0)
		return 0;
	sk = inet_sock_of(fd);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != MDATP_IPPROTO_UDP)
		return 0;
	sock_fill(&ev, sk, true);
	if (uaddr && !user_addr_fill(&ev, uaddr, true))
		return 0;
	key.sock = (__u64)sk;
	__builtin_memcpy(key.addr, ev.remote_addr, 16);
	key.port = ev.remote_port;
	key.direction = type;
	/* Already reported: the common case, no event. */
	if (bpf_map_update_elem(&udp_flows, &key, &one, BPF_NOEXIST) != 0)
		return 0;
	if (!mdatp_wanted(type))
		return 0;
	ev.ret = ret;
	return finish(&ev, type, true);
}

#endif
