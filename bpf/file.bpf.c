/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * File activity from finished system calls: one program per call, entered
 * by tail call from the raw sys_exit dispatcher (sys_exit.bpf.c).
 *
 * Opens: the returned fd leads to the kernel's struct file, so the path is
 * what the kernel opened (relative paths, "..", symlinks resolved).
 * Repeated read-only opens of one file by one process are folded here.
 * Path changes (delete, rename, mkdir, chmod, chown, link, symlink): the
 * directory the name is relative to (dirfd or cwd) is resolved from the
 * kernel's objects, the name is sent as the caller passed it.
 * Failed opens are not reported; failed changes are, with the error.
 */
/* Syscall exit programs, in two variants: see syscall.bpf.h (first, it
 * decides whether the task is typed). */
#include "file_events.bpf.h"

SEC("raw_tracepoint/sys_exit")
int mdatp_openat(void *ctx)
{
	struct pt_regs *regs = mdatp_syscall_regs(ctx);

	return handle_open(SYS_EXIT_RET(ctx), SYS_ARG3(regs));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_open(void *ctx)
{
	struct pt_regs *regs = mdatp_syscall_regs(ctx);

	return handle_open(SYS_EXIT_RET(ctx), SYS_ARG2(regs));
}

SEC("raw_tracepoint/sys_exit")
int mdatp_creat(void *ctx)
{
	return handle_open(SYS_EXIT_RET(ctx), MDATP_O_CREAT | MDATP_O_WRONLY | MDATP_O_TRUNC);
}

SEC("raw_tracepoint/sys_exit")
int mdatp_openat2(void *ctx)
{
	struct pt_regs *regs = mdatp_syscall_regs(ctx);
	struct open_how *how;
	__u64 flags = 0;

	how = (struct open_how *)SYS_ARG3(regs);
	bpf_probe_read_user(&flags, sizeof(flags), &how->flags);
	return handle_open(SYS_EXIT_RET(ctx), flags);
}

#define OP_PROG(sys, ty, ...)                                          \
	SEC("raw_tracepoint/sys_exit")                                \
	int mdatp_##sys(void *ctx)                                     \
	{                                                              \
		struct pt_regs *regs = mdatp_syscall_regs(ctx);        \
		struct op_args a = { .type = ty, .ret = SYS_EXIT_RET(ctx),   \
				      __VA_ARGS__ };                   \
		return emit_op(&a);                                    \
	}

#define NAME(n) (const char *)SYS_ARG##n(regs)
#define FD(n) (long)(int)SYS_ARG##n(regs)
#define CWD MDATP_AT_FDCWD

OP_PROG(unlink, MDATP_EV_FILE_DELETE, .dfd1 = CWD, .name1 = NAME(1))
OP_PROG(unlinkat, MDATP_EV_FILE_DELETE, .dfd1 = FD(1), .name1 = NAME(2),
	.op_flags = SYS_ARG3(regs))
OP_PROG(rmdir, MDATP_EV_FILE_DELETE, .dfd1 = CWD, .name1 = NAME(1),
	.op_flags = MDATP_AT_REMOVEDIR)
OP_PROG(rename, MDATP_EV_FILE_RENAME, .dfd1 = CWD, .name1 = NAME(1), .dfd2 = CWD,
	.name2 = NAME(2))
OP_PROG(renameat, MDATP_EV_FILE_RENAME, .dfd1 = FD(1), .name1 = NAME(2),
	.dfd2 = FD(3), .name2 = NAME(4))
OP_PROG(renameat2, MDATP_EV_FILE_RENAME, .dfd1 = FD(1), .name1 = NAME(2),
	.dfd2 = FD(3), .name2 = NAME(4), .op_flags = SYS_ARG5(regs))
OP_PROG(mkdir, MDATP_EV_FILE_MKDIR, .dfd1 = CWD, .name1 = NAME(1),
	.mode = SYS_ARG2(regs))
OP_PROG(mkdirat, MDATP_EV_FILE_MKDIR, .dfd1 = FD(1), .name1 = NAME(2),
	.mode = SYS_ARG3(regs))
OP_PROG(chmod, MDATP_EV_FILE_CHMOD, .dfd1 = CWD, .name1 = NAME(1),
	.mode = SYS_ARG2(regs))
OP_PROG(fchmod, MDATP_EV_FILE_CHMOD, .dfd1 = FD(1), .fd_only = true,
	.mode = SYS_ARG2(regs))
OP_PROG(fchmodat, MDATP_EV_FILE_CHMOD, .dfd1 = FD(1), .name1 = NAME(2),
	.mode = SYS_ARG3(regs))
OP_PROG(chown, MDATP_EV_FILE_CHOWN, .dfd1 = CWD, .name1 = NAME(1),
	.uid = SYS_ARG2(regs), .gid = SYS_ARG3(regs))
OP_PROG(lchown, MDATP_EV_FILE_CHOWN, .dfd1 = CWD, .name1 = NAME(1),
	.uid = SYS_ARG2(regs), .gid = SYS_ARG3(regs))
OP_PROG(fchown, MDATP_EV_FILE_CHOWN, .dfd1 = FD(1), .fd_only = true,
	.uid = SYS_ARG2(regs), .gid = SYS_ARG3(regs))
OP_PROG(fchownat, MDATP_EV_FILE_CHOWN, .dfd1 = FD(1), .name1 = NAME(2),
	.uid = SYS_ARG3(regs), .gid = SYS_ARG4(regs), .op_flags = SYS_ARG5(regs))
OP_PROG(link, MDATP_EV_FILE_LINK, .dfd1 = CWD, .name1 = NAME(1), .dfd2 = CWD,
	.name2 = NAME(2))
OP_PROG(linkat, MDATP_EV_FILE_LINK, .dfd1 = FD(1), .name1 = NAME(2), .dfd2 = FD(3),
	.name2 = NAME(4), .op_flags = SYS_ARG5(regs))
OP_PROG(symlink, MDATP_EV_FILE_SYMLINK, .name1 = NAME(1), .name1_literal = true,
	.dfd2 = CWD, .name2 = NAME(2))
OP_PROG(symlinkat, MDATP_EV_FILE_SYMLINK, .name1 = NAME(1), .name1_literal = true,
	.dfd2 = FD(2), .name2 = NAME(3))

char LICENSE[] SEC("license") = "Dual BSD/GPL";
