//! The Rust ABI types (bindgen output) against the BTF clang wrote into the
//! compiled BPF object: every struct the kernel side shares with user space
//! has the same size and the same member offsets on both sides, in the
//! spirit of Tetragon's alignchecker.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use mdatp_bpf::abi::*;

type Layout = BTreeMap<&'static str, (usize, BTreeMap<String, usize>)>;

macro_rules! layout {
    ($map:ident, $ty:ident { $($field:ident),* $(,)? }) => {{
        let mut members = BTreeMap::new();
        $( members.insert(stringify!($field).to_string(), offset_of!($ty, $field)); )*
        $map.insert(stringify!($ty), (size_of::<$ty>(), members));
    }};
}

fn rust_layout() -> Layout {
    let mut m = Layout::new();
    layout!(
        m,
        mdatp_event_header {
            type_,
            size,
            seq,
            boot_ns,
            cpu,
            _pad
        }
    );
    layout!(
        m,
        mdatp_task_info {
            pid,
            tid,
            ppid,
            uid,
            gid,
            euid,
            egid,
            loginuid,
            sessionid,
            flags,
            start_boottime_ns,
            parent_start_boottime_ns,
            cgroup_id,
            comm
        }
    );
    layout!(
        m,
        mdatp_exec_event {
            hdr,
            task,
            exe_len,
            cwd_len,
            argv_len,
            flags,
            argc,
            _pad,
            data
        }
    );
    layout!(
        m,
        mdatp_fork_event {
            hdr,
            parent,
            child_pid,
            child_tid,
            child_start_boottime_ns
        }
    );
    layout!(
        m,
        mdatp_exit_event {
            hdr,
            task,
            exit_code,
            exit_signal,
            core_dumped,
            _pad
        }
    );
    layout!(
        m,
        mdatp_counters {
            emitted,
            ringbuf_drops,
            filtered,
            folded,
            unreadable
        }
    );
    layout!(
        m,
        mdatp_file_ref {
            ino,
            dev,
            mnt_id,
            mode,
            flags
        }
    );
    layout!(
        m,
        mdatp_file_open_event {
            hdr,
            task,
            file,
            open_flags,
            access,
            fd,
            path_len,
            _pad,
            path
        }
    );
    layout!(
        m,
        mdatp_file_fold_event {
            hdr,
            task,
            ino,
            dev,
            access,
            count,
            _pad,
            first_ns,
            last_ns
        }
    );
    layout!(
        m,
        mdatp_file_op_event {
            hdr,
            task,
            dir1,
            dir2,
            ret,
            op_flags,
            mode,
            uid,
            gid,
            dir1_len,
            name1_len,
            dir2_len,
            name2_len,
            name1_flags,
            name2_flags,
            _pad,
            data
        }
    );
    layout!(
        m,
        mdatp_net_event {
            hdr,
            task,
            ret,
            family,
            protocol,
            sock_type,
            local_port,
            remote_port,
            _pad,
            backlog,
            _pad2,
            local_addr,
            remote_addr
        }
    );
    layout!(
        m,
        mdatp_settings {
            event_mask,
            fold_window_ns,
            flags
        }
    );
    layout!(m, mdatp_path_key { prefixlen, data });
    layout!(
        m,
        mdatp_exclude_value {
            exact_len,
            dev,
            ino
        }
    );
    layout!(
        m,
        mdatp_io_uring_event {
            hdr,
            task,
            op,
            fd,
            fd2,
            flags,
            sq_entries,
            setup_flags,
            name_len,
            name2_len,
            family,
            port,
            cwd_len,
            addr,
            data
        }
    );
    layout!(m, mdatp_net_key { prefixlen, addr });
    layout!(
        m,
        mdatp_fold_slot {
            ino,
            dev,
            access,
            count,
            _pad,
            start_ns,
            first_repeat_ns,
            last_ns,
            last_tick
        }
    );
    layout!(m, mdatp_proc_state { flags, _pad, slots });
    layout!(
        m,
        mdatp_udp_flow_key {
            sock,
            addr,
            port,
            direction,
            _pad
        }
    );
    m
}

/// Struct layouts of the object's BTF, read with bpftool.
fn btf_layout() -> BTreeMap<String, (usize, BTreeMap<String, usize>)> {
    let obj = concat!(env!("OUT_DIR"), "/mdatp.bpf.o");
    let out = Command::new(env!("MDATP_BPFTOOL_PATH"))
        .args(["-j", "btf", "dump", "file", obj])
        .output()
        .expect("run bpftool (apt-get install bpftool)");
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool json");
    let mut res = BTreeMap::new();
    for t in v["types"].as_array().expect("types") {
        let name = t["name"].as_str().unwrap_or("");
        if t["kind"] != "STRUCT" || !name.starts_with("mdatp_") {
            continue;
        }
        let mut members = BTreeMap::new();
        for mem in t["members"].as_array().expect("members") {
            let mname = mem["name"].as_str().expect("member name");
            // bindgen renames the C member `type` (a Rust keyword).
            let mname = if mname == "type" { "type_" } else { mname };
            let bits = mem["bits_offset"].as_u64().expect("bits_offset") as usize;
            members.insert(mname.to_string(), bits / 8);
        }
        res.insert(
            name.to_string(),
            (t["size"].as_u64().expect("size") as usize, members),
        );
    }
    res
}

#[test]
fn every_shared_struct_has_the_same_layout_in_c_and_rust() {
    let rust = rust_layout();
    let btf = btf_layout();
    for (name, (size, members)) in &rust {
        let (bsize, bmembers) = btf
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not in the object's BTF"));
        assert_eq!(size, bsize, "size of {name}");
        assert_eq!(members, bmembers, "member offsets of {name}");
    }
    // A struct used by the programs but unknown to this test is a gap in
    // the check (the scratch/map structs are kernel-private).
    for name in btf.keys() {
        let private = name.ends_with("_map")
            || [
                "mdatp_pathbuf",
                "mdatp_path_result",
                "mdatp_abi_anchor",
                "op_args",
            ]
            .contains(&name.as_str());
        assert!(
            private || rust.contains_key(name.as_str()),
            "{name} has no layout check"
        );
    }
}
