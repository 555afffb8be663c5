/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading kernel fields: a plain load through a BTF-typed pointer, or
 * bpf_probe_read_kernel through an untyped one (~25-35 ns a call, see
 * docs/PERFORMANCE.md), chosen per pointer by a `typed` flag.
 */
#ifndef MDATP_READ_BPF_H
#define MDATP_READ_BPF_H

#include "common.bpf.h"

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

/* Two fields of *p: plain loads when typed, else MDATP_PROBE_PAIR. */
#define MDATP_RD_PAIR(typed, p, fa, va, fb, vb)                 \
	do {                                                    \
		if (typed) {                                    \
			(va) = (p)->fa;                         \
			(vb) = (p)->fb;                         \
		} else {                                        \
			MDATP_PROBE_PAIR(p, fa, va, fb, vb);    \
		}                                               \
	} while (0)


#endif
