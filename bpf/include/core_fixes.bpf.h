/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* CO-RE flavours for fields that moved or were renamed across kernels. */
#ifndef MDATP_CORE_FIXES_BPF_H
#define MDATP_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/* Before 5.5 the boot-based start time was called real_start_time. */
struct task_struct___pre55 {
	u64 real_start_time;
} __attribute__((preserve_access_index));

/* MDATP_TASK_RD: see task.bpf.h. */
static __always_inline __u64 mdatp_task_start_boottime(struct task_struct *task)
{
	if (bpf_core_field_exists(task->start_boottime))
		return MDATP_TASK_RD(task, start_boottime);
	return MDATP_TASK_RD((struct task_struct___pre55 *)task, real_start_time);
}

#endif
