/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Process lifecycle: exec, fork of a new thread group, exit of a thread
 * group. Raw tracepoints: present on every kernel with the ring buffer
 * (5.8+), no BTF needed to attach, typed access through CO-RE.
 */
#include "common.bpf.h"
#include "path.bpf.h"
#include "task.bpf.h"
#include "proc_state.bpf.h"

/* Raw tracepoint arguments are read as plain u64s: a CO-RE access into
 * the flexible args[] array breaks the whole object under aya. */
#define RAW_ARG(ctx, n) (((__u64 *)(ctx))[n])

/* Appends the path of `p` at ev->data[pos]; returns where it is in buf. */
static __always_inline struct mdatp_path_result
append_path(struct mdatp_exec_event *ev, char *buf, struct path *p, __u32 pos,
	    __u16 trunc_flag)
{
	struct mdatp_path_result r = mdatp_walk_path(p, buf, false);

	if (r.truncated)
		ev->flags |= trunc_flag;
	r.len &= MDATP_PATH_MASK;
	bpf_probe_read_kernel(&ev->data[pos & MDATP_EXEC_POS_MASK], r.len,
			      &buf[r.start & MDATP_PATH_MASK]);
	return r;
}

SEC("raw_tracepoint/sched_process_exec")
int mdatp_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = MDATP_CURRENT_TASK();
	struct linux_binprm *bprm = (struct linux_binprm *)RAW_ARG(ctx, 2);
	struct mdatp_exec_event *ev = mdatp_percpu(&exec_scratch);
	struct mdatp_pathbuf *pb = mdatp_percpu(&pathbuf);
	struct mdatp_path_result r;
	struct mm_struct *mm;
	struct file *exe;
	__u32 pos = 0, len;

	if (!ev || !pb)
		return 0;
	mdatp_fill_task(&ev->task);
	ev->flags = 0;
	ev->_pad = 0;
	ev->argc = BPF_CORE_READ(bprm, argc);

	mm = BPF_CORE_READ(task, mm);
	exe = mm ? BPF_CORE_READ(mm, exe_file) : NULL;
	if (exe) {
		struct path p = BPF_CORE_READ(exe, f_path);

		struct inode *inode = BPF_CORE_READ(exe, f_inode);

		r = append_path(ev, pb->path, &p, pos, MDATP_EXEC_EXE_TRUNCATED);
		len = r.len;
		/* A truncated path never matches an exclusion. */
		mdatp_proc_exec(ev->task.pid, pb, r.start, r.truncated ? 0 : len,
				BPF_CORE_READ(inode, i_sb, s_dev), BPF_CORE_READ(inode, i_ino));
	} else {
		len = 0;
		ev->flags |= MDATP_EXEC_EXE_MISSING;
	}
	ev->exe_len = len;
	pos += len;

	{
		struct path pwd = BPF_CORE_READ(task, fs, pwd);

		len = append_path(ev, pb->path, &pwd, pos, MDATP_EXEC_CWD_TRUNCATED).len;
	}
	ev->cwd_len = len;
	pos += len;

	len = 0;
	if (mm) {
		__u64 start = BPF_CORE_READ(mm, arg_start);
		__u64 end = BPF_CORE_READ(mm, arg_end);
		__u64 total = end > start ? end - start : 0;

		len = total;
		if (total > MDATP_ARGV_MAX) {
			len = MDATP_ARGV_MAX;
			ev->flags |= MDATP_EXEC_ARGV_TRUNCATED;
		}
		if (bpf_probe_read_user(&ev->data[pos & MDATP_EXEC_POS_MASK], len & MDATP_EXEC_POS_MASK,
					(void *)start) < 0) {
			len = 0;
			ev->flags |= MDATP_EXEC_ARGV_MISSING;
		}
	}
	ev->argv_len = len;
	pos += len;

	if (!mdatp_enabled(MDATP_EV_EXEC)) {
		mdatp_count_filtered(MDATP_EV_EXEC);
		return 0;
	}
	__u64 size = offsetof(struct mdatp_exec_event, data) + (pos & MDATP_EXEC_SIZE_MASK);
	mdatp_fill_header(&ev->hdr, MDATP_EV_EXEC, size);
	if (size > sizeof(*ev))
		return 0;
	mdatp_output(ev, size, MDATP_EV_EXEC);
	return 0;
}

SEC("raw_tracepoint/sched_process_fork")
int mdatp_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *child = (struct task_struct *)RAW_ARG(ctx, 1);
	struct mdatp_fork_event ev = {};

	/* A new thread is not a new process. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	/* The fork tracepoint runs in the parent. */
	mdatp_fill_task(&ev.parent);
	ev.child_pid = BPF_CORE_READ(child, tgid);
	ev.child_tid = BPF_CORE_READ(child, pid);
	ev.child_start_boottime_ns = mdatp_task_start_boottime(child);
	mdatp_proc_fork(ev.parent.pid, ev.child_pid);
	if (!mdatp_enabled(MDATP_EV_FORK)) {
		mdatp_count_filtered(MDATP_EV_FORK);
		return 0;
	}
	mdatp_fill_header(&ev.hdr, MDATP_EV_FORK, sizeof(ev));
	mdatp_output(&ev, sizeof(ev), MDATP_EV_FORK);
	return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int mdatp_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)RAW_ARG(ctx, 0);
	struct mdatp_exit_event ev = {};
	__u32 code;

	/* Only the last thread of the group ends the process. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	/* The exit tracepoint runs in the exiting task. */
	mdatp_fill_task(&ev.task);
	mdatp_proc_exit(ev.task.pid);
	if (!mdatp_enabled(MDATP_EV_EXIT)) {
		mdatp_count_filtered(MDATP_EV_EXIT);
		return 0;
	}
	code = BPF_CORE_READ(task, exit_code);
	ev.exit_code = (code >> 8) & 0xff;
	ev.exit_signal = code & 0x7f;
	ev.core_dumped = (code & 0x80) ? 1 : 0;
	mdatp_fill_header(&ev.hdr, MDATP_EV_EXIT, sizeof(ev));
	mdatp_output(&ev, sizeof(ev), MDATP_EV_EXIT);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
