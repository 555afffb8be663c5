/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kfunc calls, in the typed build only: the compat object (MDATP_COMPAT,
 * 5.8-5.14) has none. MDATP_HAVE_RDONLY_CAST says whether this object
 * may call bpf_rdonly_cast.
 */
#ifndef MDATP_KFUNC_BPF_H
#define MDATP_KFUNC_BPF_H

#include "common.bpf.h"

#ifndef MDATP_COMPAT
#define MDATP_HAVE_RDONLY_CAST 1
/*
 * 1 when the loader resolved the calls to the kernel's bpf_rdonly_cast,
 * 0 when they read as NULL. A constant the verifier knows (frozen
 * read-only data), so a branch on it is verified on its taken side only:
 * a program that holds both a cast walk and a helper walk would otherwise
 * have both verified, which the path walk's loop does not fit.
 */
extern const volatile __u32 rdonly_cast_resolved;
/*
 * bpf_rdonly_cast(obj, btf_id) (a kfunc, 6.2+): obj as a read-only typed
 * pointer to the vmlinux type btf_id, for plain loads; NULL where the
 * kernel has no such kfunc. aya 0.14 does not resolve kfunc calls, so the
 * call is written as its raw instruction with a placeholder number that
 * the loader replaces (daemon/src/ebpf/kfunc.rs): with the kfunc's BTF id
 * in the running kernel or, where it has none, with `r0 = 0`. A caller
 * either checks the result for NULL (the verifier then sees the typed
 * loads after it as never reached where it is `r0 = 0`) or, where both
 * sides are large, branches on rdonly_cast_resolved instead. A macro: the
 * type id must be a constant the verifier sees at the call.
 */
#define MDATP_KFUNC_RDONLY_CAST_INSN ".8byte 0x4d44415400002085" /* call, src 2, imm 'MDAT' */
#define mdatp_rdonly_cast(obj, type)                                                   \
	({                                                                             \
		type *t_;                                                              \
		asm volatile("r1 = %[o]\n"                                             \
			     "r2 = %[id]\n" MDATP_KFUNC_RDONLY_CAST_INSN "\n"          \
			     "%[t] = r0\n"                                             \
			     : [t] "=r"(t_)                                            \
			     : [o] "r"(obj), [id] "r"(bpf_core_type_id_kernel(type))   \
			     : "r0", "r1", "r2", "r3", "r4", "r5");                    \
		t_;                                                                    \
	})
#endif

#endif
