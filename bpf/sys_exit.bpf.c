/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The 64-bit system calls the sensor reports, dispatched: one program on
 * the raw `sys_exit` tracepoint runs after every system call of every
 * task, and tail-calls the program of the finished call, found by its
 * number in `sys_calls` (the loader puts each of file.bpf.c's and
 * net.bpf.c's programs at its call's x86_64 number; an empty slot ends
 * the tail call, and the dispatcher returns). 32-bit calls have their own
 * numbers and their own dispatcher (ia32.bpf.c): they are left to it.
 *
 * Why not the tracefs `syscalls:sys_exit_*` events, one per call: each is
 * attached with perf_event_open, which kernel.perf_event_paranoid 3
 * (Debian's and Ubuntu's default) refuses without CAP_SYS_ADMIN, needs
 * tracefs mounted, and has the kernel fill a perf trace record for every
 * matching call before the program runs.
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

/* Runs after every system call of every task: a load, a branch and a
 * tail call into a mostly empty array. */
SEC("raw_tracepoint/sys_exit")
int mdatp_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	long nr;

	if (mdatp_in_ia32_syscall(MDATP_CURRENT_TASK()))
		return 0;
	nr = mdatp_syscall_nr(ctx);
	if ((unsigned long)nr < MDATP_SYS_CALL_SLOTS)
		bpf_tail_call(ctx, &sys_calls, (__u32)nr);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
