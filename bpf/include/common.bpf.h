/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes, shared maps and emit helpers used by every domain's programs. */
#ifndef MDATP_COMMON_BPF_H
#define MDATP_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"

/*
 * Maps are defined once in maps.bpf.c; the other objects name them as
 * externs and the BPF static linker (bpftool gen object) resolves them.
 */
struct mdatp_ringbuf_map {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* Overridden from user space (ring_buffer_size). */
	__uint(max_entries, 8 * 1024 * 1024);
};

struct mdatp_counters_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MDATP_EV_MAX);
	__type(key, __u32);
	__type(value, struct mdatp_counters);
};

struct mdatp_seq_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

/* Per-CPU scratch: one exec event under construction, one path walk. */
struct mdatp_scratch {
	struct mdatp_exec_event exec;
	char path[2 * (MDATP_PATH_MAX + 1)];
};

struct mdatp_scratch_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mdatp_scratch);
};

extern struct mdatp_ringbuf_map events SEC(".maps");
extern struct mdatp_counters_map counters SEC(".maps");
extern struct mdatp_seq_map seqs SEC(".maps");
extern struct mdatp_scratch_map scratch SEC(".maps");

/* Ring fill (bytes) past which a submit wakes user space; set at load. */
extern const volatile __u64 wakeup_bytes;

static __always_inline struct mdatp_scratch *mdatp_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* Fills the header, taking the next per-CPU sequence number. Sequence
 * numbers are taken before the ring is touched so that a failed output
 * leaves a gap user space can see. */
static __always_inline void mdatp_fill_header(struct mdatp_event_header *hdr,
					      __u32 type, __u32 size)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&seqs, &zero);

	hdr->type = type;
	hdr->size = size;
	hdr->seq = 0;
	if (seq) {
		*seq += 1;
		hdr->seq = *seq;
	}
	hdr->boot_ns = bpf_ktime_get_boot_ns();
	hdr->cpu = bpf_get_smp_processor_id();
	hdr->_pad = 0;
}

static __always_inline void mdatp_count(__u32 type, int ok)
{
	struct mdatp_counters *c = bpf_map_lookup_elem(&counters, &type);

	if (!c)
		return;
	if (ok)
		c->emitted += 1;
	else
		c->ringbuf_drops += 1;
}

/* Batched wake-ups: user space is woken only once the ring holds
 * wakeup_bytes; it also polls on a short timer for the tail. */
static __always_inline __u64 mdatp_wakeup_flag(void)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	return avail >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Copies `size` bytes of an assembled record into the ring buffer and
 * counts the outcome. */
static __always_inline void mdatp_output(void *rec, __u64 size, __u32 type)
{
	long err = bpf_ringbuf_output(&events, rec, size, mdatp_wakeup_flag());

	mdatp_count(type, err == 0);
}

#endif
