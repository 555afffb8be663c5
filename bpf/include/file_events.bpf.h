/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The file events, from a finished system call: opens (with folding) and
 * path changes. Shared by the syscall exit tracepoints (file.bpf.c) and
 * the 32-bit (ia32) calls (ia32.bpf.c): the caller reads the arguments of
 * its ABI and passes them, with the call's return value.
 */
#ifndef MDATP_FILE_EVENTS_BPF_H
#define MDATP_FILE_EVENTS_BPF_H

#include "syscall.bpf.h"
#include "common.bpf.h"
#include "path.bpf.h"
#include "proc_state.bpf.h"
#include "task.bpf.h"

#define MDATP_O_ACCMODE 03
#define MDATP_O_WRONLY 01
#define MDATP_O_RDWR 02
#define MDATP_O_CREAT 0100
#define MDATP_O_TRUNC 01000
/* include/linux/fs.h: the open created the file. */
#define MDATP_FMODE_CREATED (1U << 20)
#define MDATP_AT_REMOVEDIR 0x200

static __always_inline __u32 access_class(__u32 flags, __u32 fmode)
{
	__u32 acc = 0, mode = flags & MDATP_O_ACCMODE;

	if (mode != MDATP_O_WRONLY)
		acc |= MDATP_ACCESS_READ;
	if (mode == MDATP_O_WRONLY || mode == MDATP_O_RDWR)
		acc |= MDATP_ACCESS_WRITE;
	if (fmode & MDATP_FMODE_CREATED)
		acc |= MDATP_ACCESS_CREATE;
	if ((flags & MDATP_O_TRUNC) && (acc & MDATP_ACCESS_WRITE))
		acc |= MDATP_ACCESS_TRUNCATE;
	return acc;
}

/*
 * The time of a repeat in slot s: a repeat in the same kernel tick as the
 * slot's last repeat takes that one's time; the boot clock is read at most
 * once per slot and tick, and for the window's first repeat (so that it
 * is never before the reported first open, whose time is read after the
 * window's start). Reading the clock costs ≈ 80 ns on this VM's TSC (an
 * ordered rdtsc), more than the rest of a folded open; jiffies is a plain
 * load (the verifier inlines bpf_jiffies64). So a folded record's times
 * are exact to one tick (1/HZ: 4 ms at HZ=250), not before the first
 * open's (which is the window's start), and in order.
 */
static __always_inline __u64 fold_repeat_time(struct mdatp_fold_slot *s, __u64 tick)
{
	__u64 now;

	if (s->last_tick == tick && s->count > 1)
		return s->last_ns;
	now = bpf_ktime_get_boot_ns();
	s->last_tick = tick;
	return now;
}

/*
 * Folds a read-only open into the process's fold table. Returns the slot
 * that now starts a window (the open must be reported), or NULL when the
 * open was folded or filtered and nothing more is to be done.
 */
static __always_inline struct mdatp_fold_slot *
fold(struct mdatp_proc_state *st, __u64 ino, __u32 dev, __u32 acc, __u64 window, bool *done)
{
	struct mdatp_fold_slot *victim = NULL;
	__u64 oldest = ~0ULL, tick = bpf_jiffies64(), now;

	*done = false;
	for (int i = 0; i < MDATP_FOLD_SLOTS; i++) {
		struct mdatp_fold_slot *s = &st->slots[i];

		if (s->count && s->ino == ino && s->dev == dev &&
		    (s->access & ~MDATP_FOLD_EXCLUDED) == acc) {
			now = fold_repeat_time(s, tick);
			if (now - s->start_ns < window) {
				if (s->access & MDATP_FOLD_EXCLUDED) {
					mdatp_count_filtered(MDATP_EV_FILE_OPEN);
				} else {
					if (s->count == 1)
						s->first_repeat_ns = now;
					s->count += 1;
					s->last_ns = now;
					mdatp_count_folded(MDATP_EV_FILE_OPEN);
				}
				*done = true;
				return NULL;
			}
			/* The window closed: report it, start a new one here. */
			victim = s;
			break;
		}
		if (s->count == 0) {
			if (oldest) {
				victim = s;
				oldest = 0;
			}
		} else if (s->last_ns < oldest) {
			victim = s;
			oldest = s->last_ns;
		}
	}
	if (!victim)
		return NULL;
	mdatp_emit_fold(victim);
	now = bpf_ktime_get_boot_ns();
	victim->ino = ino;
	victim->dev = dev;
	victim->access = acc;
	victim->count = 1;
	victim->start_ns = now;
	victim->first_repeat_ns = 0;
	victim->last_ns = now;
	victim->last_tick = tick;
	return victim;
}

static __always_inline int handle_open(long fd, __u32 flags)
{
	struct mdatp_file_open_event *ev;
	struct mdatp_pathbuf *pb;
	struct mdatp_proc_state *st;
	struct mdatp_fold_slot *slot = NULL;
	struct mdatp_settings *cfg;
	struct task_struct *task;
	struct file *file;
	struct inode *inode;
	struct path path;
	__u32 acc, fmode;
	__u64 now = 0;
	bool typed;

	if (fd < 0)
		return 0;
	if (!mdatp_enabled(MDATP_EV_FILE_OPEN)) {
		mdatp_count_filtered(MDATP_EV_FILE_OPEN);
		return 0;
	}
	task = MDATP_CURRENT_TASK();
	file = mdatp_fd_file_of(task, fd, &typed);
	if (!file)
		return 0;
	MDATP_RD_PAIR(typed, file, f_mode, fmode, f_inode, inode);
	acc = access_class(flags, fmode);
	st = mdatp_proc(mdatp_tgid(task), true);
	if (st && (st->flags & MDATP_PROC_EXCLUDED)) {
		mdatp_count_filtered(MDATP_EV_FILE_OPEN);
		return 0;
	}
	cfg = mdatp_settings();
	if (st && cfg && cfg->fold_window_ns &&
	    !(acc & (MDATP_ACCESS_WRITE | MDATP_ACCESS_CREATE | MDATP_ACCESS_TRUNCATE))) {
		struct super_block *sb;
		__u64 ino;
		bool done;

		MDATP_RD_PAIR(typed, inode, i_ino, ino, i_sb, sb);
		slot = fold(st, ino, MDATP_RD(typed, sb, s_dev), acc, cfg->fold_window_ns,
			    &done);
		if (done)
			return 0;
		/* The reported open's time is its window's start: the boot
		 * clock (≈ 80 ns here) is read once per emitted open. Copied
		 * here, not read through `slot` at the header: that kept the
		 * slot's pointer in the verifier's states and took the program
		 * without kfuncs past its complexity limit (E2BIG, seen). */
		if (slot)
			now = slot->start_ns;
	}

	pb = mdatp_percpu(&pathbuf);
	if (!pb)
		return 0;
	path = MDATP_RD(typed, file, f_path);
	struct mdatp_path_result r = mdatp_walk_path(&path, pb->path, typed);
	r.len &= MDATP_PATH_MASK;
	/* A truncated walk kept only part of the path: it never matches. */
	if (!r.truncated && mdatp_paths_excluded(cfg) &&
	    mdatp_path_in_trie(&excluded_paths, pb, r.start, r.len)) {
		/* Repeats of this file are now filtered without a path walk. */
		if (slot)
			slot->access |= MDATP_FOLD_EXCLUDED;
		mdatp_count_filtered(MDATP_EV_FILE_OPEN);
		return 0;
	}
	/* The record ends with the path where the walk left it: its fixed
	 * part is written right before (mdatp_pathbuf's head). */
	ev = (struct mdatp_file_open_event *)((char *)pb + (r.start & MDATP_PATH_MASK));
	mdatp_fill_task_of(&ev->task, task);
	mdatp_file_ref_of(&ev->file, &path, typed);
	ev->file.flags = r.truncated ? MDATP_FILE_PATH_TRUNCATED : 0;
	ev->open_flags = flags;
	ev->access = acc;
	ev->fd = fd;
	ev->path_len = r.len;
	ev->_pad = 0;
	__u64 size = MDATP_OPEN_HEAD + r.len;
	mdatp_fill_header_at(&ev->hdr, MDATP_EV_FILE_OPEN, size,
			     now ? now : bpf_ktime_get_boot_ns());
	if (size > sizeof(*ev))
		return 0;
	mdatp_output(ev, size, MDATP_EV_FILE_OPEN);
	return 0;
}

/* ---- path changes ---- */

/* Which parts of a path-change event a syscall fills. */
struct op_args {
	__u32 type;
	long ret; /* the call's return value */
	long dfd1;
	const char *name1;
	long dfd2;
	const char *name2;
	/* symlink: name1 is the link's text, not a path to resolve */
	bool name1_literal;
	/* fchmod/fchown: dfd1 is the file itself, no name */
	bool fd_only;
	__u32 op_flags;
	__u32 mode;
	__u32 uid;
	__u32 gid;
};

/* Appends the path of directory fd `dfd` (or the cwd) at data[pos]. */
static __always_inline __u32 put_dir(struct mdatp_file_op_event *ev, struct mdatp_pathbuf *pb,
				     long dfd,
				     struct mdatp_file_ref *ref, __u32 pos)
{
	struct path p;

	/* Read with the helper: typed and untyped walks of both directories
	 * of a rename are more than the verifier's complexity budget, and
	 * path changes are far rarer than opens. */
	if (dfd == MDATP_AT_FDCWD) {
		p = BPF_CORE_READ(MDATP_CURRENT_TASK(), fs, pwd);
	} else {
		struct file *f = mdatp_fd_file_probe(dfd);

		if (!f) {
			ref->flags |= MDATP_FILE_DIR_MISSING;
			return 0;
		}
		p = BPF_CORE_READ(f, f_path);
	}
	mdatp_file_ref_of(ref, &p, false);
	struct mdatp_path_result r = mdatp_walk_path(&p, pb->path, false);
	if (r.truncated)
		ref->flags |= MDATP_FILE_PATH_TRUNCATED;
	r.len &= MDATP_PATH_MASK;
	bpf_probe_read_kernel(&ev->data[pos & MDATP_FILE_OP_POS_MASK], r.len, &pb->path[r.start & MDATP_PATH_MASK]);
	return r.len;
}

/* Appends a user string at data[pos]; returns its length (no NUL). */
static __always_inline __u32 put_name(struct mdatp_file_op_event *ev, const char *name,
				      __u32 pos, __u32 *flags)
{
	long n;

	if (!name)
		return 0;
	n = bpf_probe_read_user_str(&ev->data[pos & MDATP_FILE_OP_POS_MASK], MDATP_PATH_MAX + 1, name);
	if (n <= 0)
		return 0;
	if (n == MDATP_PATH_MAX + 1)
		*flags |= MDATP_FILE_PATH_TRUNCATED;
	return (n - 1) & MDATP_PATH_MAX;
}

static __always_inline int emit_op(struct op_args *a)
{
	struct mdatp_file_op_event *ev;
	struct mdatp_pathbuf *pb;
	__u32 pos = 0, len;

	if (!mdatp_wanted(a->type))
		return 0;
	ev = mdatp_percpu(&op_scratch);
	pb = mdatp_percpu(&pathbuf);
	if (!ev || !pb)
		return 0;
	__builtin_memset(&ev->dir1, 0, sizeof(ev->dir1));
	__builtin_memset(&ev->dir2, 0, sizeof(ev->dir2));
	ev->name1_flags = 0;
	ev->name2_flags = 0;

	len = a->name1_literal ? 0 : put_dir(ev, pb, a->dfd1, &ev->dir1, pos);
	ev->dir1_len = len;
	pos += len;
	len = put_name(ev, a->fd_only ? NULL : a->name1, pos, &ev->name1_flags);
	ev->name1_len = len;
	pos += len;

	/* No exclusion by path here: the name the caller passed can be
	 * absolute, contain "..", or lead through a symlink, and a rename or
	 * link is excluded only when both sides are. User space decides on
	 * the whole event (daemon/src/exclusions.rs); excluded executables
	 * are still dropped above. */

	len = 0;
	if (a->name2)
		len = put_dir(ev, pb, a->dfd2, &ev->dir2, pos);
	ev->dir2_len = len;
	pos += len;
	len = put_name(ev, a->name2, pos, &ev->name2_flags);
	ev->name2_len = len;
	pos += len;

	mdatp_fill_task(&ev->task);
	ev->ret = a->ret;
	ev->op_flags = a->op_flags;
	ev->mode = a->mode;
	ev->uid = a->uid;
	ev->gid = a->gid;
	__u64 size = offsetof(struct mdatp_file_op_event, data) + (pos & MDATP_FILE_OP_SIZE_MASK);
	mdatp_fill_header(&ev->hdr, a->type, size);
	if (size > sizeof(*ev))
		return 0;
	mdatp_output(ev, size, a->type);
	return 0;
}

#endif
