/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Syscall exit tracepoints: the return value from the tracepoint record,
 * the original arguments from the task's saved user registers (unchanged
 * by the syscall but for the return register), so no enter program and no
 * per-thread map are needed.
 */
#ifndef MDATP_SYSCALL_BPF_H
#define MDATP_SYSCALL_BPF_H

#include "common.bpf.h"

/* tracefs format of syscalls/sys_exit_*: common fields (8 bytes), then
 * __syscall_nr (int, padded to 8), then ret (long) at offset 16. */
#define SYS_EXIT_RET(ctx) (*(long *)((char *)(ctx) + 16))

#define MDATP_AT_FDCWD -100

static __always_inline struct pt_regs *mdatp_user_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

#define SYS_ARG1(regs) PT_REGS_PARM1_CORE_SYSCALL(regs)
#define SYS_ARG2(regs) PT_REGS_PARM2_CORE_SYSCALL(regs)
#define SYS_ARG3(regs) PT_REGS_PARM3_CORE_SYSCALL(regs)
#define SYS_ARG4(regs) PT_REGS_PARM4_CORE_SYSCALL(regs)
#define SYS_ARG5(regs) PT_REGS_PARM5_CORE_SYSCALL(regs)

/* The struct file of descriptor fd of the current task, or NULL. */
static __always_inline struct file *mdatp_fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;

	if (fd < 0 || !fdt || (unsigned long)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

static __always_inline __u32 mdatp_mnt_id(struct vfsmount *vfsmnt)
{
	struct mount *mnt = (struct mount *)((char *)vfsmnt -
					     bpf_core_field_offset(struct mount, mnt));
	return BPF_CORE_READ(mnt, mnt_id);
}

static __always_inline void mdatp_file_ref_of(struct mdatp_file_ref *ref, struct path *p)
{
	struct inode *inode = BPF_CORE_READ(p, dentry, d_inode);

	ref->ino = BPF_CORE_READ(inode, i_ino);
	ref->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	ref->mode = BPF_CORE_READ(inode, i_mode);
	ref->mnt_id = mdatp_mnt_id(BPF_CORE_READ(p, mnt));
}

#endif
