/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* mdatp_task_info from a task_struct. */
#ifndef MDATP_TASK_BPF_H
#define MDATP_TASK_BPF_H

#include "common.bpf.h"
#include "core_fixes.bpf.h"

/* `task` must be the current task (the cgroup id is the current one's). */
static __always_inline void mdatp_fill_task(struct mdatp_task_info *t,
					    struct task_struct *task)
{
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	const struct cred *cred = BPF_CORE_READ(task, real_cred);

	t->pid = BPF_CORE_READ(task, tgid);
	t->tid = BPF_CORE_READ(task, pid);
	t->ppid = BPF_CORE_READ(parent, tgid);
	t->uid = BPF_CORE_READ(cred, uid.val);
	t->gid = BPF_CORE_READ(cred, gid.val);
	t->euid = BPF_CORE_READ(cred, euid.val);
	t->egid = BPF_CORE_READ(cred, egid.val);
	t->flags = 0;
	if (bpf_core_field_exists(task->loginuid)) {
		t->loginuid = BPF_CORE_READ(task, loginuid.val);
		t->sessionid = BPF_CORE_READ(task, sessionid);
	} else {
		t->loginuid = (__u32)-1;
		t->sessionid = (__u32)-1;
		t->flags |= MDATP_TASK_NO_AUDIT_IDS;
	}
	t->start_boottime_ns = mdatp_task_start_boottime(BPF_CORE_READ(task, group_leader));
	t->parent_start_boottime_ns =
		mdatp_task_start_boottime(BPF_CORE_READ(parent, group_leader));
	t->cgroup_id = bpf_get_current_cgroup_id();
	BPF_CORE_READ_STR_INTO(&t->comm, task, comm);
}

#endif
