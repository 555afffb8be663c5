/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The maps and load-time knobs shared by every program object. */
#include "common.bpf.h"

struct mdatp_ringbuf_map events SEC(".maps");
struct mdatp_counters_map counters SEC(".maps");
struct mdatp_seq_map seqs SEC(".maps");
struct mdatp_exec_scratch_map exec_scratch SEC(".maps");
struct mdatp_op_scratch_map op_scratch SEC(".maps");
struct mdatp_pathbuf_map pathbuf SEC(".maps");
struct mdatp_settings_map settings SEC(".maps");
struct mdatp_procs_map procs SEC(".maps");
struct mdatp_path_trie_map excluded_paths SEC(".maps");
struct mdatp_path_trie_map excluded_exes SEC(".maps");
struct mdatp_net_trie_map excluded_nets SEC(".maps");
struct mdatp_udp_flows_map udp_flows SEC(".maps");

const volatile __u64 wakeup_bytes = 256 * 1024;
/* Unread bytes past which every record wakes user space (the storm's
 * brake, common.bpf.h); set at load, the largest value (never) only to
 * measure what the brake costs. */
const volatile __u64 far_behind_bytes = 4 * 256 * 1024;
/* Set by the loader: bpf_rdonly_cast's calls are resolved (kfunc.bpf.h). */
const volatile __u32 rdonly_cast_resolved = 0;

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Anchors the ABI structs that no map holds in the object's BTF (clang
 * emits full BTF only for types reachable by value from globals), so the
 * layout test can compare them. The exec event is in the scratch map. */
struct mdatp_abi_anchor {
	struct mdatp_fork_event fork;
	struct mdatp_exit_event exit;
	struct mdatp_file_fold_event fold;
	struct mdatp_net_event net;
	struct mdatp_proc_state proc;
	struct mdatp_net_key net_key;
	struct mdatp_exclude_value exclude;
};
const volatile struct mdatp_abi_anchor mdatp_abi_anchor = {};
