//! The configuration in the kernel's maps: the exclusion tries, the
//! settings (event switches, fold window) and the excluded processes'
//! flags. Written at load, and rewritten live on every reload, make
//! before break: new entries go in before old ones go out, so a reload
//! never opens a window where something newly excluded is reported twice
//! or something still excluded slips through; a removed exclusion takes
//! effect once its entry is gone.

use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData};
use mdatp_bpf::abi::mdatp_bounds::MDATP_EXCLUDE_PATH_LEN;
use mdatp_bpf::abi::{
    mdatp_exclude_value, mdatp_proc_flags, mdatp_proc_state, mdatp_settings, mdatp_settings_flags,
};

use super::loader::EbpfError;
use crate::exe_identity::{self, KernelFileId};
use crate::filters::{KernelFilters, TrieEntry};
use crate::procfs::ProcSnapshot;

const PATH_KEY_LEN: usize = MDATP_EXCLUDE_PATH_LEN as usize;

fn path_key(e: &TrieEntry) -> Key<[u8; PATH_KEY_LEN]> {
    let mut data = [0u8; PATH_KEY_LEN];
    let n = e.prefix.len().min(PATH_KEY_LEN);
    data[..n].copy_from_slice(&e.prefix[..n]);
    Key::new((n * 8) as u32, data)
}

type PathTrie<'a> = LpmTrie<&'a mut MapData, [u8; PATH_KEY_LEN], mdatp_exclude_value>;

fn path_trie<'a>(bpf: &'a mut Ebpf, name: &'static str) -> Result<PathTrie<'a>, EbpfError> {
    let map = bpf.map_mut(name).ok_or(EbpfError::MissingMap(name))?;
    LpmTrie::try_from(map).map_err(|source| EbpfError::Map { name, source })
}

fn value(e: &TrieEntry, id: Option<KernelFileId>) -> mdatp_exclude_value {
    mdatp_exclude_value {
        exact_len: e.exact_len,
        dev: id.map_or(0, |i| i.dev),
        ino: id.map_or(0, |i| i.ino),
    }
}

/// Puts `entries` into trie `name`, each with its file's identity
/// (`ids[i]`; none for path prefixes).
fn insert(
    bpf: &mut Ebpf,
    name: &'static str,
    entries: &[TrieEntry],
    ids: &[Option<KernelFileId>],
) -> Result<(), EbpfError> {
    let mut trie = path_trie(bpf, name)?;
    for (i, e) in entries.iter().enumerate() {
        let id = ids.get(i).copied().flatten();
        trie.insert(&path_key(e), value(e, id), 0)
            .map_err(|source| EbpfError::Filter { name, source })?;
    }
    Ok(())
}

/// Writes the excluded executables with the identities of their files
/// (`ids`, one per entry of `f.processes`).
pub fn write_exe_ids(
    bpf: &mut Ebpf,
    f: &KernelFilters,
    ids: &[Option<KernelFileId>],
) -> Result<(), EbpfError> {
    insert(bpf, "excluded_exes", &f.processes, ids)
}

/// Writes `f` into the maps (`exe_ids`: the identity of each excluded
/// executable's file); with `old` (what the maps hold now), removes what
/// `f` no longer has, after the new entries are in.
pub fn write(
    bpf: &mut Ebpf,
    f: &KernelFilters,
    exe_ids: &[Option<KernelFileId>],
    old: Option<&KernelFilters>,
) -> Result<(), EbpfError> {
    write_exe_ids(bpf, f, exe_ids)?;
    insert(bpf, "excluded_paths", &f.paths, &[])?;
    for (name, entries, before) in [
        ("excluded_paths", &f.paths, old.map(|o| &o.paths)),
        ("excluded_exes", &f.processes, old.map(|o| &o.processes)),
    ] {
        let mut trie = path_trie(bpf, name)?;
        for e in before.into_iter().flatten() {
            if !entries.iter().any(|n| n.prefix == e.prefix) {
                trie.remove(&path_key(e))
                    .map_err(|source| EbpfError::Filter { name, source })?;
            }
        }
    }
    let name = "excluded_nets";
    let map = bpf.map_mut(name).ok_or(EbpfError::MissingMap(name))?;
    let mut nets: LpmTrie<_, [u8; 16], u32> =
        LpmTrie::try_from(map).map_err(|source| EbpfError::Map { name, source })?;
    for (addr, bits) in &f.networks {
        nets.insert(&Key::new(*bits, *addr), 1, 0)
            .map_err(|source| EbpfError::Filter { name, source })?;
    }
    for net in old.map(|o| &o.networks).into_iter().flatten() {
        if !f.networks.contains(net) {
            nets.remove(&Key::new(net.1, net.0))
                .map_err(|source| EbpfError::Filter { name, source })?;
        }
    }
    // Last: the flag that makes the programs consult the path trie is set
    // only once the trie is filled.
    let name = "settings";
    let map = bpf.map_mut(name).ok_or(EbpfError::MissingMap(name))?;
    let mut settings: Array<_, mdatp_settings> =
        Array::try_from(map).map_err(|source| EbpfError::Map { name, source })?;
    let flags = if f.paths.is_empty() {
        0
    } else {
        mdatp_settings_flags::MDATP_SETTINGS_PATHS_EXCLUDED as u64
    };
    settings
        .set(
            0,
            mdatp_settings {
                event_mask: f.event_mask,
                fold_window_ns: f.fold_window_ns,
                flags,
            },
            0,
        )
        .map_err(|source| EbpfError::Filter { name, source })
}

/// Marks running processes whose executable is excluded — by path and by
/// the file they run (the exec hook does it for processes started from
/// now on). `reset`: first clears
/// every mark (a reload that changed the excluded executables; children
/// that inherited a mark lose it too, and are reported: more, not less).
pub fn mark_running(
    bpf: &mut Ebpf,
    filters: &KernelFilters,
    snapshot: &[ProcSnapshot],
    reset: bool,
) -> Result<usize, EbpfError> {
    let name = "procs";
    let map = bpf.map_mut(name).ok_or(EbpfError::MissingMap(name))?;
    let mut procs: HashMap<_, u32, mdatp_proc_state> =
        HashMap::try_from(map).map_err(|source| EbpfError::Map { name, source })?;
    if reset {
        let marked: Vec<u32> = procs
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, st)| st.flags & mdatp_proc_flags::MDATP_PROC_EXCLUDED != 0)
            .map(|(pid, _)| pid)
            .collect();
        for pid in marked {
            if let Ok(mut st) = procs.get(&pid, 0) {
                st.flags &= !mdatp_proc_flags::MDATP_PROC_EXCLUDED;
                let _ = procs.insert(pid, st, 0);
            }
        }
    }
    if filters.processes.is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    for p in snapshot {
        let Some(exe) = &p.exe else { continue };
        // The path, and the file behind it (exe_identity.rs).
        if !filters.processes.iter().any(|e| e.prefix == exe.as_bytes())
            || !exe_identity::runs(p.pid, exe)
        {
            continue;
        }
        // An entry made by the kernel meanwhile keeps its fold state.
        let mut st = procs.get(&p.pid, 0).unwrap_or_default();
        st.flags |= mdatp_proc_flags::MDATP_PROC_EXCLUDED;
        procs
            .insert(p.pid, st, 0)
            .map_err(|source| EbpfError::Filter { name, source })?;
        n += 1;
    }
    Ok(n)
}
