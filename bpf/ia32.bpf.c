/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * 32-bit (ia32) system calls: the syscall tracepoints never fire for them
 * (the kernel's syscall trace events skip compat calls), so a 32-bit
 * program, or a 64-bit one calling through `int 0x80`, would change files
 * and open connections unseen. The dispatcher on the raw sys_exit
 * tracepoint (sys_exit.bpf.c) sees every call; while a 32-bit call is
 * running (the task's TS_COMPAT) it tail-calls the program of that call's
 * kind here, which reads the i386 arguments (ebx, ecx, edx, esi, edi,
 * ebp) and makes the same event as the 64-bit call would
 * (include/file_events.bpf.h, include/net_events.bpf.h), flagged
 * MDATP_TASK_IA32.
 *
 * Syscall numbers: the kernel's arch/x86/entry/syscalls/syscall_32.tbl
 * (the dispatcher's ia32_slot() and the cases here). socketcall(2), old
 * 32-bit programs' one door to the socket calls, is unpacked here too.
 */
/* Rare calls: every fd read with the helper (see syscall.bpf.h; the
 * 6.1 verifier refused the typed read clang made of it here). */
#define MDATP_FD_UNTYPED 1
#include "file_events.bpf.h"
#include "net_events.bpf.h"

/* The tracepoint's arguments (syscall.bpf.h). */
#define IA32_REGS(ctx) SYS_EXIT_REGS(ctx)
#define IA32_RET(ctx) SYS_EXIT_RET(ctx)
#define IA32_NR(r) ((long)BPF_CORE_READ(r, orig_ax))
/* The i386 argument registers, zero-extended by the entry code. */
#define IA32_A1(r) ((__u32)BPF_CORE_READ(r, bx))
#define IA32_A2(r) ((__u32)BPF_CORE_READ(r, cx))
#define IA32_A3(r) ((__u32)BPF_CORE_READ(r, dx))
#define IA32_A4(r) ((__u32)BPF_CORE_READ(r, si))
#define IA32_A5(r) ((__u32)BPF_CORE_READ(r, di))
/* A 32-bit user pointer, a signed int (fds, AT_FDCWD). */
#define UPTR(v) ((const void *)(unsigned long)(__u32)(v))
#define SINT(v) ((long)(int)(v))

SEC("raw_tracepoint/sys_exit")
int mdatp_ia32_open(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *r = IA32_REGS(ctx);
	__u32 flags;

	switch (IA32_NR(r)) {
	case 5:
		flags = IA32_A2(r);
		break;
	case 8:
		flags = MDATP_O_CREAT | MDATP_O_WRONLY | MDATP_O_TRUNC;
		break;
	case 295:
		flags = IA32_A3(r);
		break;
	case 437: {
		struct open_how *how = (struct open_how *)UPTR(IA32_A3(r));
		__u64 f = 0;

		bpf_probe_read_user(&f, sizeof(f), &how->flags);
		flags = f;
		break;
	}
	default:
		return 0;
	}
	return handle_open(IA32_RET(ctx), flags);
}

/* One program per kind of path change: the call picks the arguments. */
#define IA32_OP_PROG(kind, ty, cases)                                      \
	SEC("raw_tracepoint/sys_exit")                                     \
	int mdatp_ia32_##kind(struct bpf_raw_tracepoint_args *ctx)         \
	{                                                                  \
		struct pt_regs *r = IA32_REGS(ctx);                        \
		struct op_args a = { .type = ty, .ret = IA32_RET(ctx) };   \
		switch (IA32_NR(r)) {                                      \
			cases                                              \
		default:                                                   \
			return 0;                                          \
		}                                                          \
		return emit_op(&a);                                        \
	}

#define CWD MDATP_AT_FDCWD
#define NAME(n) ((const char *)UPTR(IA32_A##n(r)))
#define FD(n) SINT(IA32_A##n(r))
/* A 16-bit id of the old chown calls: 0xffff is "unchanged" (-1). */
#define ID16(v) ((__u16)(v) == 0xffff ? (__u32)-1 : (__u32)(__u16)(v))

IA32_OP_PROG(delete, MDATP_EV_FILE_DELETE,
	case 10: a.dfd1 = CWD; a.name1 = NAME(1); break;
	case 40: a.dfd1 = CWD; a.name1 = NAME(1); a.op_flags = MDATP_AT_REMOVEDIR; break;
	case 301: a.dfd1 = FD(1); a.name1 = NAME(2); a.op_flags = IA32_A3(r); break;)

IA32_OP_PROG(rename, MDATP_EV_FILE_RENAME,
	case 38: a.dfd1 = CWD; a.name1 = NAME(1); a.dfd2 = CWD; a.name2 = NAME(2); break;
	case 302: a.dfd1 = FD(1); a.name1 = NAME(2); a.dfd2 = FD(3); a.name2 = NAME(4); break;
	case 353: a.dfd1 = FD(1); a.name1 = NAME(2); a.dfd2 = FD(3); a.name2 = NAME(4);
		  a.op_flags = IA32_A5(r); break;)

IA32_OP_PROG(mkdir, MDATP_EV_FILE_MKDIR,
	case 39: a.dfd1 = CWD; a.name1 = NAME(1); a.mode = IA32_A2(r); break;
	case 296: a.dfd1 = FD(1); a.name1 = NAME(2); a.mode = IA32_A3(r); break;)

IA32_OP_PROG(chmod, MDATP_EV_FILE_CHMOD,
	case 15: a.dfd1 = CWD; a.name1 = NAME(1); a.mode = IA32_A2(r); break;
	case 94: a.dfd1 = FD(1); a.fd_only = true; a.mode = IA32_A2(r); break;
	case 306: a.dfd1 = FD(1); a.name1 = NAME(2); a.mode = IA32_A3(r); break;)

IA32_OP_PROG(chown, MDATP_EV_FILE_CHOWN,
	case 16: case 182: a.dfd1 = CWD; a.name1 = NAME(1);
		 a.uid = ID16(IA32_A2(r)); a.gid = ID16(IA32_A3(r)); break;
	case 95: a.dfd1 = FD(1); a.fd_only = true;
		 a.uid = ID16(IA32_A2(r)); a.gid = ID16(IA32_A3(r)); break;
	case 198: case 212: a.dfd1 = CWD; a.name1 = NAME(1);
		  a.uid = IA32_A2(r); a.gid = IA32_A3(r); break;
	case 207: a.dfd1 = FD(1); a.fd_only = true; a.uid = IA32_A2(r); a.gid = IA32_A3(r); break;
	case 298: a.dfd1 = FD(1); a.name1 = NAME(2); a.uid = IA32_A3(r); a.gid = IA32_A4(r);
		  a.op_flags = IA32_A5(r); break;)

/* link and symlink share a program: both make a name for something. */
#define IA32_LINK_CASES                                                                  \
	case 9: a.dfd1 = CWD; a.name1 = NAME(1); a.dfd2 = CWD; a.name2 = NAME(2); break;  \
	case 303: a.dfd1 = FD(1); a.name1 = NAME(2); a.dfd2 = FD(3); a.name2 = NAME(4);   \
		  a.op_flags = IA32_A5(r); break;                                         \
	case 83: a.type = MDATP_EV_FILE_SYMLINK; a.name1 = NAME(1); a.name1_literal = true; \
		 a.dfd2 = CWD; a.name2 = NAME(2); break;                                  \
	case 304: a.type = MDATP_EV_FILE_SYMLINK; a.name1 = NAME(1); a.name1_literal = true; \
		  a.dfd2 = FD(2); a.name2 = NAME(3); break;
IA32_OP_PROG(link, MDATP_EV_FILE_LINK, IA32_LINK_CASES)

/* net.h: socketcall's call numbers. */
#define SC_BIND 2
#define SC_CONNECT 3
#define SC_LISTEN 4
#define SC_ACCEPT 5
#define SC_SENDTO 11
#define SC_RECVFROM 12
#define SC_SENDMSG 16
#define SC_RECVMSG 17
#define SC_ACCEPT4 18

/* compat_msghdr.msg_name when msg_namelen > 0. */
static __always_inline const void *compat_msg_name(const struct compat_msghdr *msg)
{
	__u32 name = 0;
	int len = 0;

	bpf_probe_read_user(&name, sizeof(name), &msg->msg_name);
	bpf_probe_read_user(&len, sizeof(len), &msg->msg_namelen);
	return len > 0 ? UPTR(name) : NULL;
}

SEC("raw_tracepoint/sys_exit")
int mdatp_ia32_net(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *r = IA32_REGS(ctx);
	long ret = IA32_RET(ctx);
	__u32 args[6] = {};
	long call;

	switch (IA32_NR(r)) {
	case 102: {
		/* socketcall(call, args): the arguments are in user memory;
		 * read as many as the call has (a shorter array may end a
		 * mapping). */
		__u32 n;

		call = IA32_A1(r);
		n = call == SC_SENDTO || call == SC_RECVFROM ? 6 :
		    call == SC_ACCEPT4			      ? 4 :
		    call == SC_LISTEN			      ? 2 : 3;
		if (bpf_probe_read_user(args, (n * 4) & 31, UPTR(IA32_A2(r))) < 0)
			return 0;
		break;
	}
	case 361: call = SC_BIND; break;
	case 362: call = SC_CONNECT; break;
	case 363: call = SC_LISTEN; break;
	case 364: call = SC_ACCEPT4; break;
	case 369: call = SC_SENDTO; break;
	case 370: call = SC_SENDMSG; break;
	case 371: call = SC_RECVFROM; break;
	case 372: call = SC_RECVMSG; break;
	default:
		return 0;
	}
	if (IA32_NR(r) != 102) {
		args[0] = IA32_A1(r);
		args[1] = IA32_A2(r);
		args[2] = IA32_A3(r);
		args[3] = IA32_A4(r);
		args[4] = IA32_A5(r);
	}
	switch (call) {
	case SC_BIND:
		return net_bind(ret, SINT(args[0]), UPTR(args[1]));
	case SC_CONNECT:
		return net_connect(ret, SINT(args[0]), UPTR(args[1]));
	case SC_LISTEN:
		return net_listen(ret, SINT(args[0]), SINT(args[1]));
	case SC_ACCEPT:
	case SC_ACCEPT4:
		return net_accept(ret);
	case SC_SENDTO:
		return udp_first(ret, MDATP_EV_NET_UDP_SEND, SINT(args[0]), UPTR(args[4]));
	case SC_RECVFROM:
		return udp_first(ret, MDATP_EV_NET_UDP_RECV, SINT(args[0]), UPTR(args[4]));
	case SC_SENDMSG:
		return udp_first(ret, MDATP_EV_NET_UDP_SEND, SINT(args[0]),
				 compat_msg_name(UPTR(args[1])));
	case SC_RECVMSG:
		return udp_first(ret, MDATP_EV_NET_UDP_RECV, SINT(args[0]),
				 compat_msg_name(UPTR(args[1])));
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
