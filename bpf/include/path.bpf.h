/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Absolute path of a struct path, built from the kernel's own dentries and
 * mounts (bpf_d_path is not allowed from tracepoints). The walk is bounded
 * by MDATP_PATH_DEPTH_MAX components and MDATP_PATH_MAX bytes; past either
 * bound the path keeps its last components and is flagged truncated.
 */
#ifndef MDATP_PATH_BPF_H
#define MDATP_PATH_BPF_H

#include "common.bpf.h"
#include "kfunc.bpf.h"
#include "read.bpf.h"

#define MDATP_PATH_HALF (MDATP_PATH_MAX + 1)
#define MDATP_PATH_MASK (MDATP_PATH_HALF - 1)

struct mdatp_path_result {
	__u32 start; /* path is buf[start, MDATP_PATH_HALF) */
	__u32 len;
	bool truncated;
};

/* struct mount embeds its struct vfsmount: one from the other. */
static __always_inline struct mount *mdatp_real_mount(struct vfsmount *vfsmnt)
{
	return (struct mount *)((char *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
}

/* The mount id of vfsmnt (as in /proc/self/mountinfo): a plain load from
 * the cast mount where the cast is resolved, else the helper (a mount is
 * reached from its vfsmount by pointer arithmetic, which the verifier does
 * not type). */
static __always_inline __u32 mdatp_mnt_id(struct vfsmount *vfsmnt)
{
#ifdef MDATP_HAVE_RDONLY_CAST
	if (rdonly_cast_resolved)
		return mdatp_rdonly_cast(mdatp_real_mount(vfsmnt), struct mount)->mnt_id;
#endif
	return BPF_CORE_READ(mdatp_real_mount(vfsmnt), mnt_id);
}

/* Prepends "/name" to the path being built backwards in buf, whose first
 * byte is at *off. False when it does not fit (the walk stops there and
 * the path is flagged truncated). An empty name adds nothing. */
static __always_inline bool mdatp_path_prepend(char *buf, __u32 *off, const unsigned char *name,
					       __u32 len)
{
	if (len == 0)
		return true;
	/* Keep buf[0] unused so a path is at most MDATP_PATH_MAX. */
	if (len + 1 >= *off)
		return false;
	*off -= len + 1;
	bpf_probe_read_kernel(&buf[(*off + 1) & MDATP_PATH_MASK], len & MDATP_PATH_MASK, name);
	buf[*off & MDATP_PATH_MASK] = '/';
	return true;
}

static __always_inline struct mdatp_path_result mdatp_path_done(char *buf, __u32 off,
								bool truncated)
{
	struct mdatp_path_result r = { .truncated = truncated };

	if (off == MDATP_PATH_HALF) {
		off = MDATP_PATH_HALF - 1;
		buf[off & MDATP_PATH_MASK] = '/';
	}
	r.start = off;
	r.len = MDATP_PATH_HALF - off;
	return r;
}

/* The walk where the mount and the dentry are cast: every field a
 * plain load, across mounts too (what a typed pointer points to is typed
 * as well). Its own function, not a flag in the other walk: clang merges a
 * typed and an untyped pointer held in one variable in ways the verifier
 * cannot follow (seen: "R2 invalid mem access 'scalar'" on 6.18). */
static __always_inline struct mdatp_path_result
mdatp_walk_typed(struct mount *mnt, struct dentry *dentry, char *buf)
{
	struct dentry *mnt_root = mnt->mnt.mnt_root;
	__u32 off = MDATP_PATH_HALF;

	for (int i = 0; i < MDATP_PATH_DEPTH_MAX; i++) {
		struct dentry *parent = dentry->d_parent;

		if (dentry == mnt_root || dentry == parent) {
			struct mount *up = mnt->mnt_parent;

			/* Not reachable from a mount root (pipe, anon), or the
			 * root of the root mount. */
			if (dentry != mnt_root || mnt == up)
				return mdatp_path_done(buf, off, false);
			/* Cross to the mount point in the parent mount. */
			dentry = mnt->mnt_mountpoint;
			mnt = up;
			mnt_root = mnt->mnt.mnt_root;
			continue;
		}
		/* Field by field (see mdatp_walk_probed). */
		if (!mdatp_path_prepend(buf, &off, dentry->d_name.name, dentry->d_name.len))
			break;
		dentry = parent;
	}
	return mdatp_path_done(buf, off, true);
}

/* The walk without a typed mount (5.8-6.1): `typed` says whether path's
 * dentry and mount are BTF-typed pointers. It stays typed inside the
 * path's own mount; a mount is reached from its vfsmount by pointer
 * arithmetic, which the verifier does not type, so above a mount crossing
 * it reads with the helper. */
static __always_inline struct mdatp_path_result
mdatp_walk_probed(struct path *path, char *buf, bool typed)
{
	struct dentry *dentry = path->dentry;
	struct vfsmount *vfsmnt = path->mnt;
	struct mount *mnt = mdatp_real_mount(vfsmnt);
	struct dentry *mnt_root = MDATP_RD(typed, vfsmnt, mnt_root);
	__u32 off = MDATP_PATH_HALF;

	for (int i = 0; i < MDATP_PATH_DEPTH_MAX; i++) {
		struct dentry *parent = MDATP_RD(typed, dentry, d_parent);

		if (dentry == mnt_root || dentry == parent) {
			if (dentry != mnt_root)
				/* Not reachable from a mount root (pipe, anon). */
				return mdatp_path_done(buf, off, false);
			/* Read here, not per component: most walks meet one root. */
			struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

			if (mnt == mnt_parent)
				return mdatp_path_done(buf, off, false);
			/* Cross to the mount point in the parent mount. */
			typed = false;
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
			continue;
		}

		struct qstr d_name;

		if (typed) {
			/* Field by field: 6.1's verifier refuses the 8-byte load
			 * of the hash/len union a struct copy makes (seen in the
			 * VM test: "access beyond the end of member hash"). */
			d_name.len = dentry->d_name.len;
			d_name.name = dentry->d_name.name;
		} else {
			d_name = BPF_CORE_READ(dentry, d_name);
		}
		if (!mdatp_path_prepend(buf, &off, d_name.name, d_name.len))
			break;
		dentry = parent;
	}
	return mdatp_path_done(buf, off, true);
}

/* The absolute path of `path` into buf, which must hold 2 *
 * MDATP_PATH_HALF bytes: written backwards, it ends at
 * buf[MDATP_PATH_HALF]. `typed`: path's dentry and mount are BTF-typed
 * pointers. Where the kernel has bpf_rdonly_cast the dentry and the mount
 * are cast whatever `typed` says, and the whole walk is plain loads. */
static __always_inline struct mdatp_path_result
mdatp_walk_path(struct path *path, char *buf, bool typed)
{
#ifdef MDATP_HAVE_RDONLY_CAST
	/* Not a NULL check of the casts: the verifier cannot rule NULL out,
	 * so it would verify both walks in one program (too many states). */
	if (rdonly_cast_resolved)
		return mdatp_walk_typed(mdatp_rdonly_cast(mdatp_real_mount(path->mnt), struct mount),
					mdatp_rdonly_cast(path->dentry, struct dentry), buf);
#endif
	return mdatp_walk_probed(path, buf, typed);
}

#endif
