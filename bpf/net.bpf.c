/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Network activity from syscall exit tracepoints, in the acting process's
 * context (the events themselves: include/net_events.bpf.h).
 */
/* Syscall exit programs, in two variants: see syscall.bpf.h (first, it
 * decides whether the task is typed). */
#include "net_events.bpf.h"

#define REGS_OR_DONE(type)                                           \
	struct pt_regs *regs = mdatp_syscall_regs(ctx, type);        \
	if (!regs)                                                   \
		return 0

SEC("tracepoint/syscalls/sys_exit_connect")
int mdatp_connect(void *ctx)
{
	REGS_OR_DONE(MDATP_EV_NET_CONNECT);
	return net_connect(SYS_EXIT_RET(ctx), (int)SYS_ARG1(regs), (const void *)SYS_ARG2(regs));
}

SEC("tracepoint/syscalls/sys_exit_accept")
int mdatp_accept(void *ctx)
{
	return net_accept(SYS_EXIT_RET(ctx));
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int mdatp_accept4(void *ctx)
{
	return net_accept(SYS_EXIT_RET(ctx));
}

SEC("tracepoint/syscalls/sys_exit_listen")
int mdatp_listen(void *ctx)
{
	REGS_OR_DONE(MDATP_EV_NET_LISTEN);
	return net_listen(SYS_EXIT_RET(ctx), (int)SYS_ARG1(regs), SYS_ARG2(regs));
}

SEC("tracepoint/syscalls/sys_exit_bind")
int mdatp_bind(void *ctx)
{
	REGS_OR_DONE(MDATP_EV_NET_BIND);
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

SEC("tracepoint/syscalls/sys_exit_sendto")
int mdatp_sendto(void *ctx)
{
	REGS_OR_DONE(MDATP_EV_NET_UDP_SEND);
	return udp_first(SYS_EXIT_RET(ctx), MDATP_EV_NET_UDP_SEND, (int)SYS_ARG1(regs),
			 (const void *)SYS_ARG5(regs));
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int mdatp_sendmsg(void *ctx)
{
	REGS_OR_DONE(MDATP_EV_NET_UDP_SEND);
	return udp_first(SYS_EXIT_RET(ctx), MDATP_EV_NET_UDP_SEND, (int)SYS_ARG1(regs),
			 msg_name((const struct user_msghdr *)SYS_ARG2(regs)));
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int mdatp_recvfrom(void *ctx)
{
	REGS_OR_DONE(MDATP_EV_NET_UDP_RECV);
	return udp_first(SYS_EXIT_RET(ctx), MDATP_EV_NET_UDP_RECV, (int)SYS_ARG1(regs),
			 (const void *)SYS_ARG5(regs));
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int mdatp_recvmsg(void *ctx)
{
	REGS_OR_DONE(MDATP_EV_NET_UDP_RECV);
	return udp_first(SYS_EXIT_RET(ctx), MDATP_EV_NET_UDP_RECV, (int)SYS_ARG1(regs),
			 msg_name((const struct user_msghdr *)SYS_ARG2(regs)));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
