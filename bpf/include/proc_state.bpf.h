/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-process kernel state: the exclusion flag (set at exec from the
 * executable's path and identity, inherited on fork) and the fold table of repeated
 * read-only opens. Shared by the process and file programs.
 */
#ifndef MDATP_PROC_STATE_BPF_H
#define MDATP_PROC_STATE_BPF_H

#include "common.bpf.h"
#include "task.bpf.h"

/* Marks a fold slot of an excluded file: repeats count as filtered. */
#define MDATP_FOLD_EXCLUDED (1U << 31)

static __always_inline struct mdatp_proc_state *mdatp_proc(__u32 tgid, bool create)
{
	struct mdatp_proc_state *st = bpf_map_lookup_elem(&procs, &tgid);
	struct mdatp_pathbuf *pb;

	if (st || !create)
		return st;
	/* A zeroed value without using the stack (it is too large). */
	pb = mdatp_percpu(&pathbuf);
	if (!pb)
		return NULL;
	__builtin_memset(pb->path, 0, sizeof(struct mdatp_proc_state));
	bpf_map_update_elem(&procs, &tgid, pb->path, BPF_NOEXIST);
	return bpf_map_lookup_elem(&procs, &tgid);
}

/* The entry of the trie buf[start, start+len) matches (a prefix entry, or
 * an entry whose exact length equals len), or NULL. Paths are matched on
 * their first MDATP_EXCLUDE_PATH_LEN bytes. */
static __always_inline struct mdatp_exclude_value *
mdatp_trie_match(void *trie, struct mdatp_pathbuf *pb, __u32 start, __u32 len)
{
	struct mdatp_exclude_value *v;
	__u32 n = len > MDATP_EXCLUDE_PATH_LEN ? MDATP_EXCLUDE_PATH_LEN : len;

	pb->key.prefixlen = n * 8;
	/* Hide n's range from clang: it would drop the mask below as
	 * redundant, and older verifiers (6.1) cannot bound the size without
	 * it (seen in the VM test: "invalid access to map value"). */
	barrier_var(n);
	bpf_probe_read_kernel(pb->key.data, n & (2 * MDATP_EXCLUDE_PATH_LEN - 1),
			      &pb->path[start & MDATP_PATH_MAX]);
	v = bpf_map_lookup_elem(trie, &pb->key);
	return v && (v->exact_len == 0 || v->exact_len == len) ? v : NULL;
}

static __always_inline bool mdatp_path_in_trie(void *trie, struct mdatp_pathbuf *pb,
					       __u32 start, __u32 len)
{
	return mdatp_trie_match(trie, pb, start, len) != NULL;
}

/* Whether an event of `type` by the current process is wanted: the type
 * is on and the process not excluded (else counted as filtered). */
static __always_inline bool mdatp_wanted(__u32 type)
{
	struct mdatp_proc_state *st;

	if (!mdatp_enabled(type)) {
		mdatp_count_filtered(type);
		return false;
	}
	st = mdatp_proc(bpf_get_current_pid_tgid() >> 32, false);
	if (st && (st->flags & MDATP_PROC_EXCLUDED)) {
		mdatp_count_filtered(type);
		return false;
	}
	return true;
}

static __always_inline void mdatp_emit_fold(struct mdatp_fold_slot *slot)
{
	struct mdatp_file_fold_event ev = {};

	if (slot->count < 2 || (slot->access & MDATP_FOLD_EXCLUDED))
		return;
	mdatp_fill_task(&ev.task);
	ev.ino = slot->ino;
	ev.dev = slot->dev;
	ev.access = slot->access;
	ev.count = slot->count - 1;
	ev.first_ns = slot->first_repeat_ns;
	ev.last_ns = slot->last_ns;
	mdatp_fill_header(&ev.hdr, MDATP_EV_FILE_FOLD, sizeof(ev));
	mdatp_output(&ev, sizeof(ev), MDATP_EV_FILE_FOLD);
}

/* At the exit of the last thread: report what is still folded. */
static __always_inline void mdatp_proc_exit(__u32 tgid)
{
	struct mdatp_proc_state *st = mdatp_proc(tgid, false);

	if (!st)
		return;
	for (int i = 0; i < MDATP_FOLD_SLOTS; i++)
		mdatp_emit_fold(&st->slots[i]);
	bpf_map_delete_elem(&procs, &tgid);
}

static __always_inline void mdatp_proc_fork(__u32 parent, __u32 child)
{
	struct mdatp_proc_state *pst = mdatp_proc(parent, false);
	struct mdatp_proc_state *cst;

	if (!pst || !(pst->flags & MDATP_PROC_EXCLUDED))
		return;
	cst = mdatp_proc(child, true);
	if (cst)
		cst->flags |= MDATP_PROC_EXCLUDED;
}

/* After exec: the new image decides whether the process is excluded —
 * by its path and by the identity (dev, ino) of the file behind it. */
static __always_inline void mdatp_proc_exec(__u32 tgid, struct mdatp_pathbuf *pb,
					    __u32 start, __u32 len, __u32 dev, __u64 ino)
{
	struct mdatp_exclude_value *v =
		len ? mdatp_trie_match(&excluded_exes, pb, start, len) : NULL;
	bool excluded = v && v->ino && v->ino == ino && v->dev == dev;
	struct mdatp_proc_state *st = mdatp_proc(tgid, excluded);

	if (!st)
		return;
	if (excluded)
		st->flags |= MDATP_PROC_EXCLUDED;
	else
		st->flags &= ~MDATP_PROC_EXCLUDED;
}

#endif
