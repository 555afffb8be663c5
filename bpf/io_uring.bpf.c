/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * io_uring: a process can open, unlink, rename and connect without the
 * system calls the other programs watch, by submitting requests to a ring.
 * Every ring set up is an event (io_uring_create, kernel 5.5+), and every
 * file or network operation submitted to one (io_uring_submit_req, 6.0+:
 * the request is prepared by then, its names copied into the kernel).
 * Reported when submitted, with what the caller asked for: the result is
 * the ring's (a failed one is still an attempt worth seeing).
 *
 * Raw tracepoints: their arguments are the kernel's own objects. The
 * request's per-operation data (struct io_open, io_rename, ...) lies in
 * its `cmd` area, typed through BTF (CO-RE).
 */
#include "common.bpf.h"
#include "path.bpf.h"
#include "proc_state.bpf.h"
#include "task.bpf.h"

/* Raw tracepoint arguments as plain u64s (see process.bpf.c). */
#define RAW_ARG(ctx, n) (((__u64 *)(ctx))[n])

MDATP_PERCPU_SCRATCH(mdatp_io_uring_scratch_map, struct mdatp_io_uring_event);
struct mdatp_io_uring_scratch_map io_uring_scratch SEC(".maps");

/* Starts an event; NULL when the kind is off or the process excluded. */
static __always_inline struct mdatp_io_uring_event *start(void)
{
	struct mdatp_io_uring_event *ev;
	__u32 zero = 0;

	if (!mdatp_wanted(MDATP_EV_IO_URING))
		return NULL;
	ev = bpf_map_lookup_elem(&io_uring_scratch, &zero);
	if (!ev)
		return NULL;
	mdatp_fill_task(&ev->task);
	ev->fd = -1;
	ev->fd2 = -1;
	ev->flags = 0;
	ev->sq_entries = 0;
	ev->setup_flags = 0;
	ev->name_len = 0;
	ev->name2_len = 0;
	ev->family = 0;
	ev->port = 0;
	ev->cwd_len = 0;
	__builtin_memset(ev->addr, 0, sizeof(ev->addr));
	return ev;
}

/* Appends the submitter's cwd after the names when a name is relative
 * to it (a relative name with AT_FDCWD). */
static __always_inline void put_cwd(struct mdatp_io_uring_event *ev)
{
	struct mdatp_pathbuf *pb = mdatp_percpu(&pathbuf);
	struct path pwd;
	__u32 pos = (ev->name_len + ev->name2_len) & (2 * MDATP_PATH_MAX + 1);

	if (!pb)
		return;
	pwd = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), fs, pwd);
	struct mdatp_path_result r = mdatp_walk_path(&pwd, pb->path, false);
	r.len &= MDATP_PATH_MASK;
	bpf_probe_read_kernel(&ev->data[pos & (2 * MDATP_PATH_MAX + 1)], r.len,
			      &pb->path[r.start & MDATP_PATH_MASK]);
	ev->cwd_len = r.len;
	ev->flags |= MDATP_IO_URING_CWD;
	if (r.truncated)
		ev->flags |= MDATP_IO_URING_CWD_TRUNCATED;
}

static __always_inline void finish(struct mdatp_io_uring_event *ev)
{
	__u64 size = offsetof(struct mdatp_io_uring_event, data) +
		     ((ev->name_len + ev->name2_len) & (2 * MDATP_PATH_MAX + 1)) +
		     (ev->cwd_len & MDATP_PATH_MAX);

	mdatp_fill_header(&ev->hdr, MDATP_EV_IO_URING, size);
	if (size > sizeof(*ev))
		return;
	mdatp_output(ev, size, MDATP_EV_IO_URING);
}

/* Appends a kernel `struct filename`'s text at data[pos]; its length. */
static __always_inline __u32 put_filename(struct mdatp_io_uring_event *ev, struct filename *fn,
					  __u32 pos, __u32 trunc_flag)
{
	const char *name = BPF_CORE_READ(fn, name);
	long n;

	if (!name)
		return 0;
	n = bpf_probe_read_kernel_str(&ev->data[pos & MDATP_PATH_MAX], MDATP_PATH_MAX + 1, name);
	if (n <= 0)
		return 0;
	if (n == MDATP_PATH_MAX + 1)
		ev->flags |= trunc_flag;
	return (n - 1) & MDATP_PATH_MAX;
}

/* The address a connect was asked for (user memory of the submitter,
 * which the ring's own threads share). */
static __always_inline void put_addr(struct mdatp_io_uring_event *ev, const void *uaddr)
{
	__u16 family = 0, port = 0;

	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), uaddr) < 0)
		return;
	bpf_probe_read_user(&port, sizeof(port), (const char *)uaddr + 2);
	if (family == 2)
		bpf_probe_read_user(ev->addr, 4, (const char *)uaddr + 4);
	else if (family == 10)
		bpf_probe_read_user(ev->addr, 16, (const char *)uaddr + 8);
	else
		return;
	ev->family = family;
	ev->port = bpf_ntohs(port);
	ev->flags |= MDATP_IO_URING_ADDR;
}

SEC("raw_tracepoint/io_uring_create")
int mdatp_io_uring_create(struct bpf_raw_tracepoint_args *ctx)
{
	struct mdatp_io_uring_event *ev = start();

	if (!ev)
		return 0;
	/* (int fd, void *ctx, u32 sq_entries, u32 cq_entries, u32 flags) */
	ev->op = MDATP_IO_URING_SETUP;
	ev->fd = (int)RAW_ARG(ctx, 0);
	ev->sq_entries = (__u32)RAW_ARG(ctx, 2);
	ev->setup_flags = (__u32)RAW_ARG(ctx, 4);
	finish(ev);
	return 0;
}

#define MDATP_AT_FDCWD -100

/* A name at data[pos, pos+len) relative to the cwd. */
static __always_inline bool relative_to_cwd(struct mdatp_io_uring_event *ev, int dfd, __u32 pos,
					    __u32 len)
{
	return len && dfd == MDATP_AT_FDCWD && ev->data[pos & MDATP_PATH_MAX] != '/';
}

/* include/linux/io_uring_types.h: REQ_F_FIXED_FILE (bit 0). */
#define MDATP_REQ_F_FIXED_FILE 1

SEC("raw_tracepoint/io_uring_submit_req")
int mdatp_io_uring_submit(struct bpf_raw_tracepoint_args *ctx)
{
	struct io_kiocb *req = (struct io_kiocb *)RAW_ARG(ctx, 0);
	struct mdatp_io_uring_event *ev;
	void *cmd = &req->cmd;
	__u8 op = BPF_CORE_READ(req, opcode);
	__u32 len;

	switch (op) {
	case IORING_OP_OPENAT:
	case IORING_OP_OPENAT2:
	case IORING_OP_UNLINKAT:
	case IORING_OP_RENAMEAT:
	case IORING_OP_MKDIRAT:
	case IORING_OP_SYMLINKAT:
	case IORING_OP_LINKAT:
	case IORING_OP_CONNECT:
	case IORING_OP_ACCEPT:
	case IORING_OP_SOCKET:
	case IORING_OP_BIND:
	case IORING_OP_LISTEN:
		break;
	default:
		return 0;
	}
	ev = start();
	if (!ev)
		return 0;
	ev->op = op;
	/* The request's fd (cqe.fd until it completes). */
	ev->fd = BPF_CORE_READ(req, cqe.fd);
	if (BPF_CORE_READ(req, flags) & MDATP_REQ_F_FIXED_FILE)
		ev->flags |= MDATP_IO_URING_FIXED_FILE;
	switch (op) {
	case IORING_OP_OPENAT:
	case IORING_OP_OPENAT2: {
		struct io_open *o = cmd;

		ev->fd = BPF_CORE_READ(o, dfd);
		ev->name_len = put_filename(ev, BPF_CORE_READ(o, filename), 0,
					    MDATP_IO_URING_NAME_TRUNCATED);
		break;
	}
	case IORING_OP_UNLINKAT: {
		struct io_unlink *u = cmd;

		ev->fd = BPF_CORE_READ(u, dfd);
		ev->name_len = put_filename(ev, BPF_CORE_READ(u, filename), 0,
					    MDATP_IO_URING_NAME_TRUNCATED);
		break;
	}
	case IORING_OP_MKDIRAT: {
		struct io_mkdir *m = cmd;

		ev->fd = BPF_CORE_READ(m, dfd);
		ev->name_len = put_filename(ev, BPF_CORE_READ(m, filename), 0,
					    MDATP_IO_URING_NAME_TRUNCATED);
		break;
	}
	case IORING_OP_RENAMEAT: {
		struct io_rename *r = cmd;

		ev->fd = BPF_CORE_READ(r, old_dfd);
		ev->fd2 = BPF_CORE_READ(r, new_dfd);
		len = put_filename(ev, BPF_CORE_READ(r, oldpath), 0, MDATP_IO_URING_NAME_TRUNCATED);
		ev->name_len = len;
		ev->name2_len = put_filename(ev, BPF_CORE_READ(r, newpath), len,
					     MDATP_IO_URING_NAME2_TRUNCATED);
		break;
	}
	case IORING_OP_SYMLINKAT:
	case IORING_OP_LINKAT: {
		struct io_link *l = cmd;

		ev->fd = BPF_CORE_READ(l, old_dfd);
		ev->fd2 = BPF_CORE_READ(l, new_dfd);
		len = put_filename(ev, BPF_CORE_READ(l, oldpath), 0, MDATP_IO_URING_NAME_TRUNCATED);
		ev->name_len = len;
		ev->name2_len = put_filename(ev, BPF_CORE_READ(l, newpath), len,
					     MDATP_IO_URING_NAME2_TRUNCATED);
		break;
	}
	case IORING_OP_CONNECT: {
		struct io_connect *c = cmd;

		put_addr(ev, BPF_CORE_READ(c, addr));
		break;
	}
	}
	if (relative_to_cwd(ev, ev->fd, 0, ev->name_len) ||
	    relative_to_cwd(ev, ev->fd2, ev->name_len, ev->name2_len))
		put_cwd(ev);
	finish(ev);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
