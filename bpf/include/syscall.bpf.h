/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Syscall exit programs: every one runs on the raw `sys_exit` tracepoint,
 * entered by tail call from the dispatcher (sys_exit.bpf.c), which looks
 * up the finished call's number in a program array. The tracepoint hands
 * over the call's saved user registers and its return value; the original
 * arguments are in those registers (unchanged by the syscall but for the
 * return register), so no enter program and no per-thread map are needed.
 * Raw tracepoints, not the tracefs `syscalls:sys_exit_*` events: they
 * attach without perf_event_open (which kernel.perf_event_paranoid 3,
 * Debian's and Ubuntu's default, refuses without CAP_SYS_ADMIN) and
 * without tracefs, and the kernel builds no perf trace record per call.
 *
 * Every object that includes this header is built twice (bpf/build.rs):
 *
 * - typed: needs bpf_task_pt_regs (5.15), so it can
 *   also rely on BTF-typed pointers (5.11): the current task, its
 *   registers and what hangs off them are read with plain loads, which the
 *   verifier turns into fault-checked loads, instead of a
 *   bpf_probe_read_kernel call per field (each call is ~25 ns on the hot
 *   path of every open). Objects the verifier cannot type (a slot of the
 *   fd table, a mount reached from its vfsmount) are read with the helper
 *   before 6.2, and typed by bpf_rdonly_cast from 6.2 (kfunc.bpf.h).
 * - compat (MDATP_COMPAT, a second object): for 5.8-5.14, where neither
 *   helper exists: the registers the tracepoint passes are read with the
 *   helper. The daemon loads one variant, chosen by probing the helpers
 *   (daemon/src/ebpf/probe.rs).
 */
#ifndef MDATP_SYSCALL_BPF_H
#define MDATP_SYSCALL_BPF_H

#ifndef MDATP_COMPAT
#define MDATP_TYPED_TASK
#endif
#include "common.bpf.h"
#include "kfunc.bpf.h"
#include "path.bpf.h"
#include "task.bpf.h"

/* An object may define MDATP_FD_UNTYPED to read every fd with the helper:
 * clang can fold the typed loop below into a variable index when it knows
 * fd's range (seen in ia32.bpf.c), which verifiers before 6.18 refuse. */
#ifndef MDATP_FD_UNTYPED
#define MDATP_FD_UNTYPED 0
#endif

/* Entries of files_struct.fd_array (NR_OPEN_DEFAULT = BITS_PER_LONG). */
#define MDATP_FD_EMBEDDED 64

/* The raw sys_exit tracepoint's arguments (struct pt_regs *regs, long
 * ret) as plain u64s: a CO-RE access into the flexible args[] array
 * breaks the whole object under aya. */
#define SYS_EXIT_REGS(ctx) ((struct pt_regs *)((__u64 *)(ctx))[0])
#define SYS_EXIT_RET(ctx) ((long)((__u64 *)(ctx))[1])

#define MDATP_AT_FDCWD -100


#ifdef MDATP_COMPAT

/* The syscall's saved user registers (never NULL). */
static __always_inline struct pt_regs *mdatp_syscall_regs(void *ctx)
{
	return SYS_EXIT_REGS(ctx);
}

/* The finished call's number (the dispatcher's key); `task` is the
 * current task. */
static __always_inline long mdatp_syscall_nr(void *ctx, struct task_struct *task)
{
	return BPF_CORE_READ(SYS_EXIT_REGS(ctx), orig_ax);
}

#define SYS_ARG1(regs) PT_REGS_PARM1_CORE_SYSCALL(regs)
#define SYS_ARG2(regs) PT_REGS_PARM2_CORE_SYSCALL(regs)
#define SYS_ARG3(regs) PT_REGS_PARM3_CORE_SYSCALL(regs)
#define SYS_ARG4(regs) PT_REGS_PARM4_CORE_SYSCALL(regs)
#define SYS_ARG5(regs) PT_REGS_PARM5_CORE_SYSCALL(regs)
#else

/* Typed: SYS_ARGn are plain loads from it. The pointer the tracepoint
 * passes is untyped for the verifier: cast where the kernel has
 * bpf_rdonly_cast (the verifier inlines that kfunc to a register move),
 * else the same registers from bpf_task_pt_regs, a helper call (≈ 18 ns
 * here, on every system call of the host: docs/PERFORMANCE.md). Never
 * NULL. */
static __always_inline struct pt_regs *mdatp_task_regs(void *ctx, struct task_struct *task)
{
	struct pt_regs *regs = mdatp_rdonly_cast(SYS_EXIT_REGS(ctx), struct pt_regs);

	return regs ? regs : (struct pt_regs *)bpf_task_pt_regs(task);
}

static __always_inline struct pt_regs *mdatp_syscall_regs(void *ctx)
{
	struct pt_regs *regs = mdatp_rdonly_cast(SYS_EXIT_REGS(ctx), struct pt_regs);

	return regs ? regs : (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

static __always_inline long mdatp_syscall_nr(void *ctx, struct task_struct *task)
{
	return mdatp_task_regs(ctx, task)->orig_ax;
}

#define SYS_ARG1(regs) PT_REGS_PARM1_SYSCALL(regs)
#define SYS_ARG2(regs) PT_REGS_PARM2_SYSCALL(regs)
#define SYS_ARG3(regs) PT_REGS_PARM3_SYSCALL(regs)
#define SYS_ARG4(regs) PT_REGS_PARM4_SYSCALL(regs)
#define SYS_ARG5(regs) PT_REGS_PARM5_SYSCALL(regs)
#endif

/*
 * The struct file of descriptor fd of the current task, or NULL.
 * mdatp_fd_file_probe: an untyped pointer, to be read with the helper.
 * mdatp_fd_file: while the
 * task's fd table is the one embedded in its files_struct (no more than 64
 * descriptors ever open) the file comes out of the typed fd_array and
 * *typed is set: everything read through it is a plain load. A larger
 * table is a separate allocation reached through a pointer array the
 * verifier does not type, so that file is read with the helper — unless
 * the kernel has bpf_rdonly_cast (6.2+), which types the slot of either
 * table. A NULL files (an exiting task) reads as 0 through the typed
 * pointer.
 */
/* The fd table of `files` when fd is within it, else NULL. */
static __always_inline struct fdtable *mdatp_fd_table(struct files_struct *files, long fd)
{
	struct fdtable *fdt = MDATP_TASK_RD(files, fdt);

	return fd >= 0 && (unsigned long)fd < MDATP_TASK_RD(fdt, max_fds) ? fdt : NULL;
}

/* fdt->fd[fd], read with the helper. */
static __always_inline struct file *mdatp_fd_slot(struct fdtable *fdt, long fd)
{
	struct file **fds = MDATP_TASK_RD(fdt, fd);
	struct file *f = NULL;

	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

static __always_inline struct file *mdatp_fd_file_probe(long fd)
{
	struct fdtable *fdt = mdatp_fd_table(MDATP_TASK_RD(MDATP_CURRENT_TASK(), files), fd);

	return fdt ? mdatp_fd_slot(fdt, fd) : NULL;
}

/* `task` is MDATP_CURRENT_TASK() (see mdatp_fill_task_of). */
static __always_inline struct file *mdatp_fd_file_of(struct task_struct *task, long fd,
						     bool *typed)
{
	struct files_struct *files = MDATP_TASK_RD(task, files);
	struct fdtable *fdt = mdatp_fd_table(files, fd);

	*typed = false;
	if (!fdt)
		return NULL;
#ifndef MDATP_COMPAT
	/* Where the kernel has bpf_rdonly_cast, any table, embedded or grown
	 * (a process that ever had more than 64 descriptors open, or was
	 * forked while its parent had: every child of a shell, which keeps its
	 * descriptor 255): the slot fds[fd] is cast to a struct kiocb, whose
	 * first member ki_filp is a `struct file *`, so that loading it gives
	 * the verifier a typed file (a cast of the slot to "pointer to file
	 * pointer" is not possible: BTF types only structs this way). The
	 * offset is CO-RE's, 0 on every kernel seen. Not in MDATP_FD_UNTYPED
	 * objects: there clang merged the typed flag into the cast's result in
	 * a way the verifier could not follow (ia32.bpf.c on 6.18: "R6
	 * invalid mem access 'scalar'"). */
	if (!MDATP_FD_UNTYPED) {
		struct file **fds = MDATP_TASK_RD(fdt, fd);
		struct kiocb *slot = mdatp_rdonly_cast(
			(char *)&fds[fd] - bpf_core_field_offset(struct kiocb, ki_filp),
			struct kiocb);

		if (slot) {
			*typed = true;
			return slot->ki_filp;
		}
	}
#endif
	/* Compat (and MDATP_FD_UNTYPED): a constant 0, the typed branch is
	 * not compiled. */
	if (MDATP_TASK_TYPED && !MDATP_FD_UNTYPED &&
	    (unsigned long)fdt->fd == (unsigned long)&files->fd_array[0]) {
		/* A constant index per case: the verifier refuses a variable
		 * offset into a typed object. */
		for (int i = 0; i < MDATP_FD_EMBEDDED; i++) {
			if (i == fd) {
				*typed = true;
				return files->fd_array[i];
			}
		}
	}
	return mdatp_fd_slot(fdt, fd);
}

static __always_inline struct file *mdatp_fd_file(long fd, bool *typed)
{
	return mdatp_fd_file_of(MDATP_CURRENT_TASK(), fd, typed);
}

/* `typed`: p's dentry is a BTF-typed pointer (see mdatp_walk_path). */
static __always_inline void mdatp_file_ref_of(struct mdatp_file_ref *ref, struct path *p,
					      bool typed)
{
	struct inode *inode = MDATP_RD(typed, p->dentry, d_inode);
	struct super_block *sb;
	__u64 ino;

	MDATP_RD_PAIR(typed, inode, i_ino, ino, i_sb, sb);
	ref->ino = ino;
	ref->dev = MDATP_RD(typed, sb, s_dev);
	ref->mode = MDATP_RD(typed, inode, i_mode);
	ref->mnt_id = mdatp_mnt_id(p->mnt);
}

#endif
