/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user event ABI of mdatp: the only definition of every struct
 * that crosses the BPF ring buffer or a BPF map. The Rust side gets these
 * types from bindgen (bpf/build.rs); nothing mirrors them by hand.
 *
 * Rules:
 *  - event type ids are explicit and never reused; a retired id stays
 *    reserved in the enum with a comment;
 *  - every struct has a _Static_assert on its size, and the Rust side
 *    asserts the same sizes and offsets in a test;
 *  - fixed-width types only, laid out without implicit padding.
 */
#ifndef MDATP_EVENTS_H
#define MDATP_EVENTS_H

#ifdef __BPF__
/* vmlinux.h already provides the __u* types. */
#else
#include <linux/types.h>
#endif

/* Event type ids (stable; never reuse a number). */
enum mdatp_event_type {
	MDATP_EV_EXEC = 1,
	MDATP_EV_FORK = 2,
	MDATP_EV_EXIT = 3,
	/* One past the largest id: size of per-type counter arrays. */
	MDATP_EV_MAX = 16,
};

/* Bounds of the variable-length parts of an exec event. */
enum mdatp_bounds {
	/* A path is at most this many bytes, without a terminating NUL. */
	MDATP_PATH_MAX = 4095,
	/* Path components walked before a path is flagged truncated. */
	MDATP_PATH_DEPTH_MAX = 64,
	/* argv: at most this many bytes of the NUL-separated argument area. */
	MDATP_ARGV_MAX = 4096,
	MDATP_COMM_LEN = 16,
	/* Bytes of the data area of an exec event. */
	MDATP_EXEC_DATA_LEN = 16384,
};

/* Flags of mdatp_exec_event.flags. */
enum mdatp_exec_flags {
	MDATP_EXEC_EXE_TRUNCATED = 1 << 0,
	MDATP_EXEC_CWD_TRUNCATED = 1 << 1,
	MDATP_EXEC_ARGV_TRUNCATED = 1 << 2,
	/* The executable could not be resolved (no mm or exe_file). */
	MDATP_EXEC_EXE_MISSING = 1 << 3,
	/* Reading argv from user memory failed. */
	MDATP_EXEC_ARGV_MISSING = 1 << 4,
};

/* Flags of mdatp_task_info.flags. */
enum mdatp_task_flags {
	/* loginuid/sessionid are absent (kernel without CONFIG_AUDITSYSCALL). */
	MDATP_TASK_NO_AUDIT_IDS = 1 << 0,
};

/* Leads every record in the ring buffer. */
struct mdatp_event_header {
	__u32 type;     /* enum mdatp_event_type */
	__u32 size;     /* bytes of the whole record, header included */
	__u64 seq;      /* per-CPU sequence number: a gap is a counted loss */
	__u64 boot_ns;  /* bpf_ktime_get_boot_ns() at the event */
	__u32 cpu;      /* CPU whose sequence `seq` belongs to */
	__u32 _pad;
};
_Static_assert(sizeof(struct mdatp_event_header) == 32, "header ABI");

/* The acting thread group, read from task_struct. */
struct mdatp_task_info {
	__u32 pid;      /* thread group id (what user space calls pid) */
	__u32 tid;      /* thread id */
	__u32 ppid;     /* real parent's thread group id */
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 loginuid; /* audit login uid; 4294967295 = unset */
	__u32 sessionid;/* audit session id; 4294967295 = unset */
	__u32 flags;    /* enum mdatp_task_flags */
	__u64 start_boottime_ns;        /* thread group leader's start */
	__u64 parent_start_boottime_ns; /* real parent's leader's start */
	__u64 cgroup_id;                /* cgroup v2 id */
	char comm[MDATP_COMM_LEN];
};
_Static_assert(sizeof(struct mdatp_task_info) == 80, "task ABI");

/*
 * exec: the data area holds exe path, cwd and argv back to back, each of
 * the stated length, no NUL terminators between exe and cwd; argv keeps
 * its NUL separators as the kernel stores them.
 */
struct mdatp_exec_event {
	struct mdatp_event_header hdr;
	struct mdatp_task_info task;
	__u16 exe_len;
	__u16 cwd_len;
	__u16 argv_len;
	__u16 flags;    /* enum mdatp_exec_flags */
	__u32 argc;     /* argument count the kernel reports (not bounded) */
	__u32 _pad;
	char data[MDATP_EXEC_DATA_LEN];
};
_Static_assert(sizeof(struct mdatp_exec_event) == 32 + 80 + 16 + 16384, "exec ABI");

/* fork/clone of a new thread group (threads are not reported). */
struct mdatp_fork_event {
	struct mdatp_event_header hdr;
	struct mdatp_task_info parent;
	__u32 child_pid;
	__u32 child_tid;
	__u64 child_start_boottime_ns;
};
_Static_assert(sizeof(struct mdatp_fork_event) == 32 + 80 + 16, "fork ABI");

/* exit of the last thread of a thread group. */
struct mdatp_exit_event {
	struct mdatp_event_header hdr;
	struct mdatp_task_info task;
	__u32 exit_code;   /* WEXITSTATUS-style status (0..255) */
	__u32 exit_signal; /* terminating signal, 0 when it exited normally */
	__u32 core_dumped;
	__u32 _pad;
};
_Static_assert(sizeof(struct mdatp_exit_event) == 32 + 80 + 16, "exit ABI");

/* Value of the per-CPU `counters` map, one entry per event type. */
struct mdatp_counters {
	__u64 emitted;       /* records written to the ring buffer */
	__u64 ringbuf_drops; /* reservation/output failures: lost records */
};
_Static_assert(sizeof(struct mdatp_counters) == 16, "counters ABI");

#endif /* MDATP_EVENTS_H */
