/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The system calls the sensor reports, dispatched: one program on the raw
 * `sys_exit` tracepoint runs after every system call of every task and
 * tail-calls the program of the finished call. A 64-bit call is found by
 * its number in `sys_calls` (the loader puts each of file.bpf.c's and
 * net.bpf.c's programs at its call's x86_64 number); a 32-bit call (the
 * task's TS_COMPAT) by its kind in `ia32_calls` (ia32.bpf.c's programs).
 * An empty slot ends the tail call, and the dispatcher returns.
 *
 * One program for both ABIs: every program attached to the tracepoint
 * costs every system call of the host its own entry (≈ 65 ns here, an
 * empty program's price, docs/PERFORMANCE.md), and a refused 32-bit
 * program only leaves its slot empty.
 *
 * Why not the tracefs `syscalls:sys_exit_*` events, one per call: each is
 * attached with perf_event_open, which kernel.perf_event_paranoid 3
 * (Debian's and Ubuntu's default) refuses without CAP_SYS_ADMIN, needs
 * tracefs mounted, never fires for 32-bit calls, and has the kernel fill
 * a perf trace record for every matching call before the program runs.
 */
#include "syscall.bpf.h"

/* Above every x86_64 system call number the sensor reports (the highest,
 * openat2, is 437). */
#define MDATP_SYS_CALL_SLOTS 512

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, MDATP_SYS_CALL_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} sys_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, MDATP_IA32_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} ia32_calls SEC(".maps");

/* The ia32_calls slot of a 32-bit call (its i386 number), or -1. */
static __always_inline int ia32_slot(long nr)
{
	switch (nr) {
	case 5: case 8: case 295: case 437: /* open creat openat openat2 */
		return MDATP_IA32_OPEN;
	case 10: case 40: case 301: /* unlink rmdir unlinkat */
		return MDATP_IA32_DELETE;
	case 38: case 302: case 353: /* rename renameat renameat2 */
		return MDATP_IA32_RENAME;
	case 39: case 296: /* mkdir mkdirat */
		return MDATP_IA32_MKDIR;
	case 15: case 94: case 306: /* chmod fchmod fchmodat */
		return MDATP_IA32_CHMOD;
	/* lchown fchown chown (16-bit ids), lchown32 fchown32 chown32, fchownat */
	case 16: case 95: case 182: case 198: case 207: case 212: case 298:
		return MDATP_IA32_CHOWN;
	case 9: case 83: case 303: case 304: /* link symlink linkat symlinkat */
		return MDATP_IA32_LINK;
	/* socketcall bind connect listen accept4 sendto sendmsg recvfrom recvmsg */
	case 102: case 361: case 362: case 363: case 364: case 369: case 370: case 371: case 372:
		return MDATP_IA32_NET;
	}
	return -1;
}

/* Runs after every system call of every task: the call's number (in
 * orig_ax for either ABI), the task's ABI and a tail call into a mostly
 * empty array. */
SEC("raw_tracepoint/sys_exit")
int mdatp_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = MDATP_CURRENT_TASK();
	long nr = mdatp_syscall_nr(ctx, task);

	if (mdatp_in_ia32_syscall(task)) {
		int slot = ia32_slot(nr);

		if (slot >= 0)
			bpf_tail_call(ctx, &ia32_calls, slot);
		return 0;
	}
	if ((unsigned long)nr < MDATP_SYS_CALL_SLOTS)
		bpf_tail_call(ctx, &sys_calls, (__u32)nr);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
