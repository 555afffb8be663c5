/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mdatp_task_info of the current task.
 *
 * An object whose programs all need kernels >= 5.15 anyway (the syscall
 * exit programs: bpf_task_pt_regs) defines MDATP_TYPED_TASK before its
 * includes: the task is then the BTF-typed current task and every field is
 * a plain, fault-checked load. Without it (the process programs, which
 * must keep working on older kernels) each field is a
 * bpf_probe_read_kernel call.
 */
#ifndef MDATP_TASK_BPF_H
#define MDATP_TASK_BPF_H

#include "common.bpf.h"
#include "read.bpf.h"

#ifdef MDATP_TYPED_TASK
#define MDATP_TASK_TYPED 1
#define MDATP_CURRENT_TASK() bpf_get_current_task_btf()
#else
#define MDATP_TASK_TYPED 0
#define MDATP_CURRENT_TASK() ((struct task_struct *)bpf_get_current_task())
#endif
/* A field of the current task or what it points to (typed per object). */
#define MDATP_TASK_RD(p, field) MDATP_RD(MDATP_TASK_TYPED, p, field)

#include "core_fixes.bpf.h"

/* arch/x86/include/asm/thread_info.h: a 32-bit system call is running
 * (set on every ia32 entry, cleared on the way back to user space). */
#define MDATP_TS_COMPAT 0x0002

static __always_inline bool mdatp_in_ia32_syscall(struct task_struct *task)
{
	return MDATP_TASK_RD(task, thread_info.status) & MDATP_TS_COMPAT;
}

/*
 * The cgroup v2 id and the command name. Typed, they are plain loads of
 * what the helpers read (the default hierarchy's cgroup's kernfs id; the
 * comm array, which the kernel keeps NUL-padded): the two helper calls and
 * the helper's string copy were ≈ 70 ns of an emitted open here
 * (docs/PERFORMANCE.md, "What an open costs in the kernel"). Byte by byte: a
 * wider load inside a char array is not accepted by every verifier.
 */
static __always_inline void mdatp_fill_cgroup_comm(struct mdatp_task_info *t,
						   struct task_struct *task)
{
#if MDATP_TASK_TYPED
	t->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
#pragma unroll
	for (int i = 0; i < MDATP_COMM_LEN; i++)
		t->comm[i] = task->comm[i];
#else
	t->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&t->comm, sizeof(t->comm));
#endif
}

/* The current task's thread group id: a plain load where the task is
 * typed, else the helper (cheaper than a probe read). */
static __always_inline __u32 mdatp_tgid(struct task_struct *task)
{
#if MDATP_TASK_TYPED
	return task->tgid;
#else
	return bpf_get_current_pid_tgid() >> 32;
#endif
}

/* `task` is MDATP_CURRENT_TASK(), taken once by a caller that needs it
 * for more than this (a helper call saved). */
static __always_inline void mdatp_fill_task_of(struct mdatp_task_info *t,
					       struct task_struct *task)
{
	struct task_struct *parent = MDATP_TASK_RD(task, real_parent);
	const struct cred *cred = MDATP_TASK_RD(task, real_cred);

	t->pid = MDATP_TASK_RD(task, tgid);
	t->tid = MDATP_TASK_RD(task, pid);
	t->ppid = MDATP_TASK_RD(parent, tgid);
	t->uid = MDATP_TASK_RD(cred, uid.val);
	t->gid = MDATP_TASK_RD(cred, gid.val);
	t->euid = MDATP_TASK_RD(cred, euid.val);
	t->egid = MDATP_TASK_RD(cred, egid.val);
	t->flags = mdatp_in_ia32_syscall(task) ? MDATP_TASK_IA32 : 0;
	if (bpf_core_field_exists(task->loginuid)) {
		t->loginuid = MDATP_TASK_RD(task, loginuid.val);
		t->sessionid = MDATP_TASK_RD(task, sessionid);
	} else {
		t->loginuid = (__u32)-1;
		t->sessionid = (__u32)-1;
		t->flags |= MDATP_TASK_NO_AUDIT_IDS;
	}
	t->start_boottime_ns = mdatp_task_start_boottime(MDATP_TASK_RD(task, group_leader));
	t->parent_start_boottime_ns =
		mdatp_task_start_boottime(MDATP_TASK_RD(parent, group_leader));
	mdatp_fill_cgroup_comm(t, task);
}

static __always_inline void mdatp_fill_task(struct mdatp_task_info *t)
{
	mdatp_fill_task_of(t, MDATP_CURRENT_TASK());
}

#endif
