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
	MDATP_EV_FILE_OPEN = 4,
	/* Repeated opens folded in the kernel, reported when the fold closes. */
	MDATP_EV_FILE_FOLD = 5,
	MDATP_EV_FILE_DELETE = 6,
	MDATP_EV_FILE_RENAME = 7,
	MDATP_EV_FILE_MKDIR = 8,
	MDATP_EV_FILE_CHMOD = 9,
	MDATP_EV_FILE_CHOWN = 10,
	MDATP_EV_FILE_LINK = 11,
	MDATP_EV_FILE_SYMLINK = 12,
	MDATP_EV_NET_CONNECT = 13,
	MDATP_EV_NET_ACCEPT = 14,
	MDATP_EV_NET_LISTEN = 15,
	MDATP_EV_NET_BIND = 16,
	/* First datagram of a UDP flow (socket, peer address, direction). */
	MDATP_EV_NET_UDP_SEND = 17,
	MDATP_EV_NET_UDP_RECV = 18,
	/* An io_uring set up, or a file or network operation submitted to
	 * one (no system call of its own: io_uring.bpf.c). */
	MDATP_EV_IO_URING = 19,
	/* One past the largest id: size of per-type counter arrays. */
	MDATP_EV_MAX = 32,
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
	/* Bytes of the data area of a path-operation event: two directories
	 * and two names of at most MDATP_PATH_MAX each, back to back. */
	MDATP_FILE_OP_DATA_LEN = 20480,
	/* Leading bytes of a path that exclusion prefixes are matched on. */
	MDATP_EXCLUDE_PATH_LEN = 256,
	/* Files folded per process at once. */
	MDATP_FOLD_SLOTS = 4,
	/* Entries of each exclusion map (paths: two per prefix; executables
	 * and networks: one each). `mdatpd validate` refuses more. */
	MDATP_EXCLUDE_MAP_ENTRIES = 1024,
	/* The most the per-process table and the UDP-flow table hold: their
	 * declared max_entries, which the loader lowers to fit the host
	 * (map_sizes.rs). */
	MDATP_TABLE_CEILING = 65536,
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
	/* The event came from a 32-bit (ia32) system call: a 32-bit program,
	 * or a 64-bit one calling through int 0x80. */
	MDATP_TASK_IA32 = 1 << 1,
};

/* Tail-call slots (map ia32_calls) of the programs that turn 32-bit
 * (ia32) system calls into events (ia32.bpf.c). */
enum mdatp_ia32_slot {
	MDATP_IA32_OPEN = 0,
	MDATP_IA32_DELETE = 1,
	MDATP_IA32_RENAME = 2,
	MDATP_IA32_MKDIR = 3,
	MDATP_IA32_CHMOD = 4,
	MDATP_IA32_CHOWN = 5,
	MDATP_IA32_LINK = 6,
	MDATP_IA32_NET = 7,
	MDATP_IA32_SLOTS = 8,
};

/* Access class of an open (mdatp_file_open_event.access). */
enum mdatp_access {
	MDATP_ACCESS_READ = 1 << 0,
	MDATP_ACCESS_WRITE = 1 << 1,
	/* This open created the file (FMODE_CREATED). */
	MDATP_ACCESS_CREATE = 1 << 2,
	/* O_TRUNC on a writable open. */
	MDATP_ACCESS_TRUNCATE = 1 << 3,
};

/* Flags of mdatp_file_ref.flags. */
enum mdatp_file_flags {
	MDATP_FILE_PATH_TRUNCATED = 1 << 0,
	/* The directory could not be resolved (bad dirfd). */
	MDATP_FILE_DIR_MISSING = 1 << 1,
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

/* A file (or directory) as the kernel resolved it. */
struct mdatp_file_ref {
	__u64 ino;
	__u32 dev;    /* kernel encoding: major << 20 | minor */
	__u32 mnt_id; /* as in /proc/self/mountinfo */
	__u32 mode;   /* i_mode: type and permission bits */
	__u32 flags;  /* enum mdatp_file_flags */
};
_Static_assert(sizeof(struct mdatp_file_ref) == 24, "file ref ABI");

/* A successful open/openat/openat2/creat. */
struct mdatp_file_open_event {
	struct mdatp_event_header hdr;
	struct mdatp_task_info task;
	struct mdatp_file_ref file;
	__u32 open_flags; /* as passed to the syscall */
	__u32 access;     /* enum mdatp_access */
	__s32 fd;
	__u16 path_len;
	__u16 _pad;
	char path[MDATP_PATH_MAX + 1];
};
_Static_assert(sizeof(struct mdatp_file_open_event) == 32 + 80 + 24 + 16 + 4096, "open ABI");

/* Read-only opens of one file by one process that were folded after the
 * first one (which was reported as an open event). */
struct mdatp_file_fold_event {
	struct mdatp_event_header hdr;
	struct mdatp_task_info task;
	__u64 ino;
	__u32 dev;
	__u32 access;
	__u32 count;    /* folded opens, the first (reported) one not included */
	__u32 _pad;
	__u64 first_ns; /* boot-time ns of the first folded open */
	__u64 last_ns;  /* boot-time ns of the last folded open */
};
_Static_assert(sizeof(struct mdatp_file_fold_event) == 32 + 80 + 40, "fold ABI");

/*
 * A path-based change: delete, rename, mkdir, chmod, chown, link, symlink.
 * Each path is a directory the kernel resolved (the dirfd or the working
 * directory) plus the name the caller passed, relative to it (or absolute).
 * data holds dir1, name1, dir2, name2 back to back.
 */
struct mdatp_file_op_event {
	struct mdatp_event_header hdr;
	struct mdatp_task_info task;
	struct mdatp_file_ref dir1;
	struct mdatp_file_ref dir2; /* rename/link: the destination's */
	__s32 ret;        /* 0 or -errno */
	__u32 op_flags;   /* unlinkat/renameat2/linkat flags */
	__u32 mode;       /* chmod: new mode; mkdir: requested mode */
	__u32 uid;        /* chown: new owner (4294967295 = unchanged) */
	__u32 gid;
	__u16 dir1_len;
	__u16 name1_len;
	__u16 dir2_len;
	__u16 name2_len;
	__u32 name1_flags; /* MDATP_FILE_PATH_TRUNCATED when a name was cut */
	__u32 name2_flags;
	__u32 _pad;        /* keeps data 8-byte aligned */
	char data[MDATP_FILE_OP_DATA_LEN];
};
_Static_assert(__builtin_offsetof(struct mdatp_file_op_event, data) == 200, "file op ABI");
_Static_assert(sizeof(struct mdatp_file_op_event) == 200 + 20480, "file op ABI");

/* connect/accept/listen/bind on an AF_INET/AF_INET6 socket. */
struct mdatp_net_event {
	struct mdatp_event_header hdr;
	struct mdatp_task_info task;
	__s32 ret;       /* 0 / new fd, or -errno */
	__u16 family;    /* AF_INET or AF_INET6 */
	__u16 protocol;  /* IPPROTO_TCP, IPPROTO_UDP, ... */
	__u16 sock_type; /* SOCK_STREAM, SOCK_DGRAM, ... */
	__u16 local_port;  /* host order */
	__u16 remote_port; /* host order */
	__u16 _pad;
	__u32 backlog;   /* listen only */
	__u32 _pad2;
	__u8 local_addr[16];  /* IPv4 in the first 4 bytes */
	__u8 remote_addr[16];
};
_Static_assert(sizeof(struct mdatp_net_event) == 32 + 80 + 56, "net ABI");

/* mdatp_io_uring_event.op: a ring set up (else an IORING_OP_* number). */
enum mdatp_io_uring_ops {
	MDATP_IO_URING_SETUP = 0xffff,
};

/* Flags of mdatp_io_uring_event.flags. */
enum mdatp_io_uring_flags {
	MDATP_IO_URING_NAME_TRUNCATED = 1 << 0,
	MDATP_IO_URING_NAME2_TRUNCATED = 1 << 1,
	/* family, port and addr hold the address the caller passed. */
	MDATP_IO_URING_ADDR = 1 << 2,
	/* The request's fd is a fixed (registered) file's index. */
	MDATP_IO_URING_FIXED_FILE = 1 << 3,
	/* data holds the submitter's cwd after the names. */
	MDATP_IO_URING_CWD = 1 << 4,
	MDATP_IO_URING_CWD_TRUNCATED = 1 << 5,
};

/* A ring set up, or an operation submitted to one: reported when it is
 * submitted (its result is the ring's business), with the names and the
 * address as the caller passed them. */
struct mdatp_io_uring_event {
	struct mdatp_event_header hdr;
	struct mdatp_task_info task;
	__u32 op;          /* IORING_OP_*, or MDATP_IO_URING_SETUP */
	__s32 fd;          /* setup: the ring's fd; else the request's fd
			    * (the directory fd of the *at operations) */
	__s32 fd2;         /* rename/link: the destination's directory fd */
	__u32 flags;       /* enum mdatp_io_uring_flags */
	__u32 sq_entries;  /* setup */
	__u32 setup_flags; /* setup: IORING_SETUP_* */
	__u32 name_len;    /* data[0, name_len): the (first) name */
	__u32 name2_len;   /* then the second (rename/link destination) */
	__u16 family;
	__u16 port;        /* host order */
	__u32 cwd_len;     /* then the submitter's cwd, when a name is
			    * relative to it (MDATP_IO_URING_CWD) */
	__u8 addr[16];
	char data[3 * (MDATP_PATH_MAX + 1)];
};
_Static_assert(__builtin_offsetof(struct mdatp_io_uring_event, data) == 32 + 80 + 56,
	       "io_uring ABI");

/* Value of the per-CPU `counters` map, one entry per event type. */
struct mdatp_counters {
	__u64 emitted;       /* records written to the ring buffer */
	__u64 ringbuf_drops; /* reservation/output failures: lost records */
	__u64 filtered;      /* excluded by configuration in the kernel */
	__u64 folded;        /* folded into another record (not lost) */
	__u64 unreadable;    /* not produced: arguments unreadable (lost); no
	                      * program counts it since the registers come from
	                      * the raw sys_exit tracepoint (kept: the ABI) */
};
_Static_assert(sizeof(struct mdatp_counters) == 40, "counters ABI");

/* Value 0 of the `settings` array map: runtime knobs set by the daemon. */
struct mdatp_settings {
	__u64 event_mask;     /* bit (1 << type id) set = type enabled */
	__u64 fold_window_ns; /* 0 = no folding */
	__u64 flags;          /* enum mdatp_settings_flags */
};
_Static_assert(sizeof(struct mdatp_settings) == 24, "settings ABI");

enum mdatp_settings_flags {
	/* excluded_paths has entries; without it the trie is not consulted
	 * (copying the path into a trie key is a cost on every open). */
	MDATP_SETTINGS_PATHS_EXCLUDED = 1 << 0,
};

/* Key of the LPM tries of excluded paths and executables. */
struct mdatp_path_key {
	__u32 prefixlen; /* bits */
	char data[MDATP_EXCLUDE_PATH_LEN];
};

/* Value of the exclusion tries. exact_len: 0 = prefix match, else the
 * exact length (bytes) a path must have to match. Executables: the
 * identity the file at that path has (its superblock's s_dev and inode
 * number, as the daemon last found them): another file at the same path
 * (a bind mount, another mount namespace, a replaced binary) does not
 * match; ino 0 (the file was not found) matches nothing. */
struct mdatp_exclude_value {
	__u32 exact_len;
	__u32 dev;
	__u64 ino;
};
_Static_assert(sizeof(struct mdatp_exclude_value) == 16, "exclude value ABI");

/* Key of the LPM trie of excluded networks (IPv4 as ::ffff:a.b.c.d). */
struct mdatp_net_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Key of the LRU set of UDP flows already reported. */
struct mdatp_udp_flow_key {
	__u64 sock;     /* kernel address of the struct sock */
	__u8 addr[16];
	__u16 port;
	__u16 direction; /* event type */
	__u32 _pad;
};

/* One folded file in a process's fold table. */
struct mdatp_fold_slot {
	__u64 ino;
	__u32 dev;
	__u32 access;
	__u32 count; /* opens in this window, the reported first one included */
	__u32 _pad;
	__u64 start_ns; /* first open of the window */
	__u64 first_repeat_ns;
	__u64 last_ns;
	/* The kernel tick (jiffies) of last_ns: a repeat within the same tick
	 * takes last_ns as its time instead of reading the clock again
	 * (bpf/include/file_events.bpf.h, fold). */
	__u64 last_tick;
};

/* Value of the per-process `procs` map. */
struct mdatp_proc_state {
	__u32 flags; /* enum mdatp_proc_flags */
	__u32 _pad;
	struct mdatp_fold_slot slots[MDATP_FOLD_SLOTS];
};

enum mdatp_proc_flags {
	/* The executable is excluded: no file/network events. */
	MDATP_PROC_EXCLUDED = 1 << 0,
};

#endif /* MDATP_EVENTS_H */
