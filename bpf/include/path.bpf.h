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

static __always_inline struct vfsmount *mdatp_vfsmount_of(struct mount *mnt)
{
	return (struct vfsmount *)((char *)mnt + bpf_core_field_offset(struct mount, mnt));
}

/* buf must hold 2 * MDATP_PATH_HALF bytes; the path is written backwards
 * and ends at buf[MDATP_PATH_HALF]. `typed`: path's dentry and mount are
 * BTF-typed pointers. The walk stays typed inside the path's own mount;
 * a mount is reached from its vfsmount by pointer arithmetic, which the
 * verifier does not type, so above a mount crossing it reads with the
 * helper. */
static __always_inline struct mdatp_path_result
mdatp_walk_path(struct path *path, char *buf, bool typed)
{
	struct mdatp_path_result r = { .truncated = true };
	struct dentry *dentry = path->dentry;
	struct vfsmount *vfsmnt = path->mnt;
	struct mount *mnt = mdatp_real_mount(vfsmnt);
	struct dentry *mnt_root = MDATP_RD(typed, vfsmnt, mnt_root);
	__u32 off = MDATP_PATH_HALF;

	for (int i = 0; i < MDATP_PATH_DEPTH_MAX; i++) {
		struct dentry *parent = MDATP_RD(typed, dentry, d_parent);

		if (dentry == mnt_root || dentry == parent) {
			if (dentry != mnt_root) {
				/* Not reachable from a mount root (pipe, anon). */
				r.truncated = false;
				break;
			}
			/* Read here, not per component: most walks meet one root. */
			struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

			if (mnt != mnt_parent) {
				/* Cross to the mount point in the parent mount. */
				typed = false;
				dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
				mnt = mnt_parent;
				vfsmnt = mdatp_vfsmount_of(mnt);
				mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
				continue;
			}
			r.truncated = false;
			break;
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
		__u32 len = d_name.len;

		if (len == 0) {
			dentry = parent;
			continue;
		}
		/* Keep buf[0] unused so a path is at most MDATP_PATH_MAX. */
		if (len + 1 >= off)
			break;
		off -= len + 1;
		bpf_probe_read_kernel(&buf[(off + 1) & MDATP_PATH_MASK],
				      len & MDATP_PATH_MASK, d_name.name);
		buf[off & MDATP_PATH_MASK] = '/';
		dentry = parent;
	}
	if (off == MDATP_PATH_HALF) {
		off = MDATP_PATH_HALF - 1;
		buf[off & MDATP_PATH_MASK] = '/';
	}
	r.start = off;
	r.len = MDATP_PATH_HALF - off;
	return r;
}

#endif
