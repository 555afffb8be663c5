/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes, shared maps and emit helpers used by every domain's programs. */
#ifndef MDATP_COMMON_BPF_H
#define MDATP_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "events.h"

/*
 * Verifier bounds. The verifier follows `&` masks through register spills
 * where it loses comparisons, so an offset into a record's data area is
 * masked before each use; the asserts say why each mask keeps the access
 * inside the buffer.
 */
/* exec data: exe, cwd and argv each start below 8 KiB and are under 8 KiB. */
#define MDATP_EXEC_POS_MASK (MDATP_EXEC_DATA_LEN / 2 - 1)
/* exec record size: at most the data area. */
#define MDATP_EXEC_SIZE_MASK (MDATP_EXEC_DATA_LEN - 1)
_Static_assert(2 * (MDATP_EXEC_POS_MASK + 1) <= MDATP_EXEC_DATA_LEN, "exec bound");
/* path-change data: a part starts below 16 KiB and is at most one path. */
#define MDATP_FILE_OP_POS_MASK 0x3fff
_Static_assert(MDATP_FILE_OP_POS_MASK + 1 + MDATP_PATH_MAX + 1 <= MDATP_FILE_OP_DATA_LEN,
	       "file op bound");
/* the first directory's length, for the exclusion key: under one path. */
#define MDATP_FILE_OP_DIR_MASK MDATP_PATH_MAX
/* path-change record size before the final check against sizeof. */
#define MDATP_FILE_OP_SIZE_MASK 0x7fff
_Static_assert(MDATP_FILE_OP_SIZE_MASK + 1 >= MDATP_FILE_OP_DATA_LEN, "file op size bound");

/*
 * Maps are defined once in maps.bpf.c; the other objects name them as
 * externs and the BPF static linker (bpftool gen object) resolves them.
 */
struct mdatp_ringbuf_map {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* The most a host needs; the loader sizes it to the host
	 * (daemon/src/ebpf/map_sizes.rs) or to --ring-buffer-size. */
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

/* Per-CPU scratch space: records under construction (too large for the
 * 512-byte BPF stack) and the path walk buffer. */
/* An open record's fixed part: it is assembled in the walk buffer right
 * before the path the walk left there (`head` gives it room when the path
 * is as long as it can be), so the path is not copied into a record
 * first — one helper call and a path's bytes fewer per emitted open. */
#define MDATP_OPEN_HEAD __builtin_offsetof(struct mdatp_file_open_event, path)
struct mdatp_pathbuf {
	union {
		struct {
			char head[MDATP_OPEN_HEAD];
			char path[2 * (MDATP_PATH_MAX + 1)];
		};
		/* Never used as such: keeps the open record's type in the
		 * object's BTF, where bpf/tests/abi.rs checks its layout
		 * against the Rust side's. */
		struct mdatp_file_open_event open_layout;
	};
	struct mdatp_path_key key;
	/* Lets a bounded copy at a variable offset inside key.data pass the
	 * verifier without tracking offset + size together. */
	char key_spill[MDATP_EXCLUDE_PATH_LEN];
};
_Static_assert(__builtin_offsetof(struct mdatp_pathbuf, path) == MDATP_OPEN_HEAD, "open head");

#define MDATP_PERCPU_SCRATCH(name, vtype)                \
	struct name {                                    \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); \
		__uint(max_entries, 1);                  \
		__type(key, __u32);                      \
		__type(value, vtype);                    \
	}

MDATP_PERCPU_SCRATCH(mdatp_exec_scratch_map, struct mdatp_exec_event);
MDATP_PERCPU_SCRATCH(mdatp_op_scratch_map, struct mdatp_file_op_event);
MDATP_PERCPU_SCRATCH(mdatp_pathbuf_map, struct mdatp_pathbuf);

struct mdatp_settings_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mdatp_settings);
};

/* Not LRU: an entry holds fold counts, and an eviction would lose them
 * silently. When full, a process is simply not folded or excluded (its
 * events are reported). max_entries is the ceiling; the loader sizes the
 * table from the host's process count and limit (map_sizes.rs). */
struct mdatp_procs_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MDATP_TABLE_CEILING);
	__type(key, __u32);
	__type(value, struct mdatp_proc_state);
};

struct mdatp_path_trie_map {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MDATP_EXCLUDE_MAP_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mdatp_path_key);
	__type(value, struct mdatp_exclude_value);
};

struct mdatp_net_trie_map {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MDATP_EXCLUDE_MAP_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mdatp_net_key);
	__type(value, __u32);
};

/* LRU: forgetting a flow only means it is reported again. Sized from the
 * host's CPUs at load (map_sizes.rs). */
struct mdatp_udp_flows_map {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MDATP_TABLE_CEILING);
	__type(key, struct mdatp_udp_flow_key);
	__type(value, __u8);
};

extern struct mdatp_ringbuf_map events SEC(".maps");
extern struct mdatp_udp_flows_map udp_flows SEC(".maps");
extern struct mdatp_counters_map counters SEC(".maps");
extern struct mdatp_seq_map seqs SEC(".maps");
extern struct mdatp_exec_scratch_map exec_scratch SEC(".maps");
extern struct mdatp_op_scratch_map op_scratch SEC(".maps");
extern struct mdatp_pathbuf_map pathbuf SEC(".maps");
extern struct mdatp_settings_map settings SEC(".maps");
extern struct mdatp_procs_map procs SEC(".maps");
extern struct mdatp_path_trie_map excluded_paths SEC(".maps");
extern struct mdatp_path_trie_map excluded_exes SEC(".maps");
extern struct mdatp_net_trie_map excluded_nets SEC(".maps");

/* Ring fill (bytes) past which a submit wakes user space; set at load. */
extern const volatile __u64 wakeup_bytes;
extern const volatile __u64 far_behind_bytes;

static __always_inline void *mdatp_percpu(void *map)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(map, &zero);
}

static __always_inline struct mdatp_settings *mdatp_settings(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&settings, &zero);
}

/* Whether any path is excluded (before the daemon writes the settings:
 * assume so). */
static __always_inline bool mdatp_paths_excluded(struct mdatp_settings *cfg)
{
	return !cfg || (cfg->flags & MDATP_SETTINGS_PATHS_EXCLUDED);
}

/* Whether the event type is switched on (everything is, until the daemon
 * writes the settings). */
static __always_inline bool mdatp_enabled(__u32 type)
{
	struct mdatp_settings *st = mdatp_settings();

	return !st || (st->event_mask & (1ULL << (type & 63)));
}

static __always_inline struct mdatp_counters *mdatp_counter(__u32 type)
{
	return bpf_map_lookup_elem(&counters, &type);
}

/* Excluded by configuration: never reaches user space, but is counted. */
static __always_inline void mdatp_count_filtered(__u32 type)
{
	struct mdatp_counters *c = mdatp_counter(type);

	if (c)
		c->filtered += 1;
}

/* Folded into another record: counted, reported later in that record. */
static __always_inline void mdatp_count_folded(__u32 type)
{
	struct mdatp_counters *c = mdatp_counter(type);

	if (c)
		c->folded += 1;
}

/* Fills the header with the event's time `boot_ns`, taking the next
 * per-CPU sequence number. Sequence numbers are taken before the ring is
 * touched so that a failed output leaves a gap user space can see. */
static __always_inline void mdatp_fill_header_at(struct mdatp_event_header *hdr,
						 __u32 type, __u32 size, __u64 boot_ns)
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
	hdr->boot_ns = boot_ns;
	hdr->cpu = bpf_get_smp_processor_id();
	hdr->_pad = 0;
}

/* As mdatp_fill_header_at, the event's time read now. */
static __always_inline void mdatp_fill_header(struct mdatp_event_header *hdr,
					      __u32 type, __u32 size)
{
	mdatp_fill_header_at(hdr, type, size, bpf_ktime_get_boot_ns());
}

static __always_inline void mdatp_count(__u32 type, int ok)
{
	struct mdatp_counters *c = mdatp_counter(type);

	if (!c)
		return;
	if (ok)
		c->emitted += 1;
	else
		c->ringbuf_drops += 1;
}

/* Batched wake-ups: user space is woken once per wakeup_bytes of unread
 * records — by the record that takes the unread bytes across a multiple
 * of wakeup_bytes — and polls on a short timer (25 ms) for the tail.
 * Waking on every record past the mark, as before, raised an interrupt
 * per record (the ring's irq_work: a self-IPI, a VM exit here, ≈ 100 ns
 * of the emitting program's time) all the while user space was awake and
 * draining. Far behind (far_behind_bytes unread: 4 × wakeup_bytes, a
 * quarter of the ring at least), every record wakes it again: a wake-up
 * user space missed cannot leave it asleep while the ring fills, and the
 * interrupts slow the producer to the drain's pace (the storm's brake:
 * measured, and the loss without it, by `mdatp-bench kernel-cost`,
 * docs/PERFORMANCE.md "The storm's brake taken apart": without it a
 * storm faster than the drain lost 11-77% of its records, with it none). */
static __always_inline __u64 mdatp_wakeup_flag(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	return avail >= far_behind_bytes || (avail + size) / wakeup_bytes != avail / wakeup_bytes
		       ? BPF_RB_FORCE_WAKEUP
		       : BPF_RB_NO_WAKEUP;
}

/* Copies `size` bytes of an assembled record into the ring buffer and
 * counts the outcome. */
static __always_inline void mdatp_output(void *rec, __u64 size, __u32 type)
{
	long err = bpf_ringbuf_output(&events, rec, size, mdatp_wakeup_flag(size));

	mdatp_count(type, err == 0);
}

#endif
