/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Network activity from finished system calls, in the acting process's
 * context: one program per call, entered by tail call from the raw
 * sys_exit dispatcher (sys_exit.bpf.c); the events themselves are in
 * include/net_events.bpf.h.
 */
/* Syscall exit programs, in two variants: see syscall.bpf.h (first, it
 * decides whether the task is typed). */
#include "net_events.bpf.h"

/* The call's saved user registers, where its arguments are. */
#define REGS struct pt_regs *regs = mdatp_syscall_regs(ctx)

SEC("raw_tracepoint/sys_exit")
int mdatp_connect(void *ctx)
{
	REGS;
	return net_connect(SYS_EXIT_RET(ctx), (int)SYS_ARG1(regs), (const void *)SYS_ARG2(regs));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_accept(void *ctx)
{
	return net_accept(SYS_EXIT_RET(ctx));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_accept4(void *ctx)
{
	return net_accept(SYS_EXIT_RET(ctx));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_listen(void *ctx)
{
	REGS;
	return net_listen(SYS_EXIT_RET(ctx), (int)SYS_ARG1(regs), SYS_ARG2(regs));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_bind(void *ctx)
{
	REGS;
	return net_bind(SYS_EXIT_RET(ctx), (int)SYS_ARG1(regs), (const void *)SYS_ARG2(regs));
}

/* msghdr.msg_name and its length from user memory. */
static __always_inline const void *msg_name(const struct user_msghdr *msg)
{
	void *name = NULL;
	int len = 0;

	bpf_probe_read_user(&name, sizeof(name), &msg->msg_name);
	bpf_probe_read_user(&len, sizeof(len), &msg->msg_namelen);
	return len > 0 ? name : NULL;
}

SEC("raw_tracepoint/sys_exit")
int mdatp_sendto(void *ctx)
{
	REGS;
	return udp_first(SYS_EXIT_RET(ctx), MDATP_EV_NET_UDP_SEND, (int)SYS_ARG1(regs),
			 (const void *)SYS_ARG5(regs));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_sendmsg(void *ctx)
{
	REGS;
	return udp_first(SYS_EXIT_RET(ctx), MDATP_EV_NET_UDP_SEND, (int)SYS_ARG1(regs),
			 msg_name((const struct user_msghdr *)SYS_ARG2(regs)));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_recvfrom(void *ctx)
{
	REGS;
	return udp_first(SYS_EXIT_RET(ctx), MDATP_EV_NET_UDP_RECV, (int)SYS_ARG1(regs),
			 (const void *)SYS_ARG5(regs));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_recvmsg(void *ctx)
{
	REGS;
	return udp_first(SYS_EXIT_RET(ctx), MDATP_EV_NET_UDP_RECV, (int)SYS_ARG1(regs),
			 msg_name((const struct user_msghdr *)SYS_ARG2(regs)));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
