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

#define MDATP_PATH_HALF (MDATP_PATH_MAX + 1)
#define MDATP_PATH_MASK (MDATP_PATH_HALF - 1)

struct mdatp_path_result {
	__u32 start; /* path is buf[start, MDATP_PATH_HALF) */
	__u32 len;
	bool truncated;
};

/*
 * A field of *p: with `typed` a plain load through a BTF-typed pointer
 * (the verifier makes it fault-checked), else bpf_probe_read_kernel.
 * `typed` is a constant or a value the verifier knows on each path, so
 * only the matching side is verified and run.
 */
#define MDATP_RD(typed, p, field) ((typed) ? (p)->field : BPF_CORE_READ(p, field))

/*
 * Fields fa and fb of *p, an untyped pointer, into va and vb with one
 * bpf_probe_read_kernel when they lie within 64 bytes of each other (as
 * f_mode and f_inode of struct file, i_sb and i_ino of struct inode do in
 * every layout seen, 6.1 to 6.18), else with one call each. The offsets
 * are CO-RE constants: the verifier sees a constant size and offsets and
 * follows only the branch the running kernel's layout takes.
 * va and vb must have the fields' sizes.
 */
#define MDATP_PROBE_PAIR(p, fa, va, fb, vb)                                           \
	do {                                                                          \
		__u32 oa_ = bpf_core_field_offset((p)->fa);                           \
		__u32 ob_ = bpf_core_field_offset((p)->fb);                           \
		__u32 lo_ = oa_ < ob_ ? oa_ : ob_;                                    \
		__u32 hi_ = oa_ < ob_ ? ob_ + sizeof(vb) : oa_ + sizeof(va);          \
		__u64 buf_[8];                                                        \
		if (hi_ - lo_ <= sizeof(buf_)) {                                      \
			/* On a fault the helper zeroes buf_: both read as 0. */        \
			bpf_probe_read_kernel(buf_, hi_ - lo_, (char *)(p) + lo_);    \
			__builtin_memcpy(&(va), (char *)buf_ + (oa_ - lo_), sizeof(va)); \
			__builtin_memcpy(&(vb), (char *)buf_ + (ob_ - lo_), sizeof(vb)); \
		} else {                                                              \
			(va) = BPF_CORE_READ(p, fa);                                  \
			(vb) = BPF_CORE_READ(p, fb);                                  \
		}                                                                     \
	} while (0)

static __always_inline struct mount *mdatp_real_mount(struct vfsmount *vfsmnt)
{
	return (struct mount *)((char *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
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
				vfsmnt = (struct vfsmount *)((char *)mnt +
					 bpf_core_field_offset(struct mount, mnt));
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
