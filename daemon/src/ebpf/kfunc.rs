//! Kfunc calls in the BPF object, resolved at load. aya 0.14 does not
//! resolve them (it links only BPF-to-BPF calls), so the object carries
//! each as its raw instruction with a placeholder number
//! (`bpf/include/syscall.bpf.h`, `mdatp_rdonly_cast`), and this module
//! writes the kfunc's BTF id in the running kernel over it — or, where the
//! kernel has no such kfunc, `r0 = 0`, the NULL result the BPF code checks
//! and falls back from. Nothing else in the object is touched.

/// `call` with src_reg 2 (BPF_PSEUDO_KFUNC_CALL) and imm "MDAT": the
/// placeholder `MDATP_KFUNC_RDONLY_CAST_INSN` in syscall.bpf.h.
const RDONLY_CAST_PLACEHOLDER: [u8; 8] = [0x85, 0x20, 0, 0, 0x54, 0x41, 0x44, 0x4d];
/// `r0 = 0` (BPF_ALU64 | BPF_MOV | BPF_K).
const R0_ZERO: [u8; 8] = [0xb7, 0, 0, 0, 0, 0, 0, 0];
/// The kfunc the placeholder stands for (kernel 6.2+).
pub const RDONLY_CAST: &str = "bpf_rdonly_cast";

/// How the object's kfunc calls were resolved at this load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfuncResolution {
    /// Call sites found in the object (0 in the compat build).
    pub sites: usize,
    /// The kfunc's BTF id in the running kernel; None where it has none
    /// (each site then reads as NULL).
    pub btf_id: Option<u32>,
    /// The kernel has it but refused the calls: loaded again without.
    pub refused: bool,
}

impl KfuncResolution {
    /// The object's calls are real kfunc calls (not `r0 = 0`): what the
    /// programs' `rdonly_cast_resolved` says (kfunc.bpf.h).
    pub fn resolved(&self) -> bool {
        self.sites > 0 && self.btf_id.is_some()
    }
}

impl std::fmt::Display for KfuncResolution {
    /// Health's words: what the loaded programs read kernel objects with.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.sites, self.btf_id) {
            (0, _) => f.write_str("no kfunc calls in this build"),
            (_, Some(_)) => write!(f, "{RDONLY_CAST}: yes (plain loads)"),
            (_, None) => write!(
                f,
                "{RDONLY_CAST}: no, {}: bpf_task_pt_regs and bpf_probe_read_kernel instead",
                if self.refused {
                    "refused by this kernel"
                } else {
                    "not in this kernel (6.2+)"
                }
            ),
        }
    }
}

/// Whether a program's load error is the verifier refusing a kfunc call
/// (not allowed for this program type, or no such function).
pub fn refused(error: &str) -> bool {
    ["kernel function", "kernel btf_id", "kfunc"]
        .iter()
        .any(|w| error.contains(w))
}

/// Where the running kernel's BTF is.
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The BTF id of `name`, a function of the running kernel (None: no
/// such function, or no readable BTF — then the helper paths serve).
pub fn kernel_func_id(name: &str) -> Option<u32> {
    let data = std::fs::read(KERNEL_BTF).ok()?;
    func_id(&data, name)
}

/// The id of the FUNC type named `name` in raw BTF `data`, by a scan that
/// keeps nothing. Hand-written rather than aya-obj's `Btf`: that parse
/// holds the whole kernel BTF (≈ 18 MiB here), and aya's loader makes its
/// own; a second one raised the sensor's start-up peak by 3 MiB. The
/// layout is the kernel's UAPI (include/uapi/linux/btf.h), stable since
/// 4.18; a kind this scan does not know ends it (None), never a misread.
pub fn func_id(data: &[u8], name: &str) -> Option<u32> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?));
    if u16_at(0)? != 0xeb9f {
        return None;
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let str_off = u32_at(16)? as usize;
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let wanted = name.as_bytes();
    let (mut at, mut id) = (types, 1u32);
    while at + 12 <= types + type_len {
        let (name_off, info) = (u32_at(at)? as usize, u32_at(at + 4)?);
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        const FUNC: u32 = 12;
        if kind == FUNC {
            let s = data.get(strings + name_off..)?;
            let end = s.iter().position(|&b| b == 0)?;
            if &s[..end] == wanted {
                return Some(id);
            }
        }
        // What follows the 12-byte common part, per kind.
        let extra = match kind {
            // int, var, decl_tag
            1 | 14 | 17 => 4,
            // ptr, fwd, typedef, volatile, const, restrict, func, float,
            // type_tag
            2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
            // array
            3 => 12,
            // struct, union, datasec, enum64
            4 | 5 | 15 | 19 => 12 * vlen,
            // enum, func_proto
            6 | 13 => 8 * vlen,
            _ => return None,
        };
        at += 12 + extra;
        id += 1;
    }
    None
}

/// `object` with every placeholder replaced: by a call of the kfunc with
/// BTF id `btf_id`, or by `r0 = 0` when None. Instructions are 8-byte
/// aligned within their section, and sections within the file, so only
/// aligned offsets are looked at.
pub fn resolve(object: &[u8], btf_id: Option<u32>) -> (Vec<u8>, KfuncResolution) {
    let mut out = object.to_vec();
    let replacement = match btf_id {
        Some(id) => {
            let mut insn = RDONLY_CAST_PLACEHOLDER;
            // imm, little-endian (x86_64 and every target aya loads for).
            insn[4..].copy_from_slice(&id.to_le_bytes());
            insn
        }
        None => R0_ZERO,
    };
    let mut sites = 0;
    for insn in out.chunks_exact_mut(8) {
        if *insn == RDONLY_CAST_PLACEHOLDER {
            insn.copy_from_slice(&replacement);
            sites += 1;
        }
    }
    (
        out,
        KfuncResolution {
            sites,
            btf_id,
            refused: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object_with_sites(n: usize) -> Vec<u8> {
        let mut o = vec![0x11u8; 64];
        for _ in 0..n {
            o.extend_from_slice(&RDONLY_CAST_PLACEHOLDER);
            o.extend_from_slice(&[0x95, 0, 0, 0, 0, 0, 0, 0]);
        }
        o
    }

    #[test]
    fn each_placeholder_becomes_the_kfunc_call_with_its_id() {
        let (o, r) = resolve(&object_with_sites(2), Some(0x0102_0304));
        assert_eq!(r.sites, 2);
        assert_eq!(&o[64..72], &[0x85, 0x20, 0, 0, 4, 3, 2, 1]);
        assert_eq!(&o[80..88], &[0x85, 0x20, 0, 0, 4, 3, 2, 1]);
        assert_eq!(
            &o[72..80],
            &[0x95, 0, 0, 0, 0, 0, 0, 0],
            "the rest untouched"
        );
    }

    #[test]
    fn without_the_kfunc_each_placeholder_reads_as_null() {
        let (o, r) = resolve(&object_with_sites(1), None);
        assert_eq!((r.sites, r.btf_id), (1, None));
        assert_eq!(&o[64..72], &R0_ZERO);
    }

    #[test]
    fn unaligned_bytes_that_look_like_a_placeholder_are_left_alone() {
        let mut o = vec![0u8; 3];
        o.extend_from_slice(&RDONLY_CAST_PLACEHOLDER);
        o.extend_from_slice(&[0; 5]);
        let (out, r) = resolve(&o, Some(7));
        assert_eq!(r.sites, 0);
        assert_eq!(out, o);
    }

    /// A BTF blob: header, then types as (name_off, info, size_or_type,
    /// extra bytes), then the strings.
    fn btf(types: &[(u32, u32, u32, usize)], strings: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        for &(name, info, st, extra) in types {
            for v in [name, info, st] {
                t.extend_from_slice(&v.to_le_bytes());
            }
            t.extend(std::iter::repeat_n(0u8, extra));
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0xeb9fu16.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(strings);
        b
    }

    #[test]
    fn a_function_is_found_by_name_past_types_of_every_size() {
        // Strings: "" at 0, "x" at 1, "bpf_rdonly_cast" at 3.
        let strings = b"\0x\0bpf_rdonly_cast\0";
        let kind = |k: u32, vlen: u32| (k << 24) | vlen;
        let types = [
            (1, kind(1, 0), 4, 4),   // 1: int "x"
            (1, kind(4, 2), 8, 24),  // 2: struct of two members
            (0, kind(13, 2), 1, 16), // 3: func_proto of two params
            (1, kind(12, 0), 3, 0),  // 4: func "x"
            (3, kind(6, 3), 4, 24),  // 5: enum named like the kfunc: not a func
            (3, kind(12, 0), 3, 0),  // 6: func "bpf_rdonly_cast"
        ];
        let b = btf(&types, strings);
        assert_eq!(func_id(&b, "bpf_rdonly_cast"), Some(6));
        assert_eq!(func_id(&b, "x"), Some(4));
        assert_eq!(func_id(&b, "absent"), None);
    }

    #[test]
    fn an_unknown_kind_or_a_bad_header_ends_the_scan_without_a_guess() {
        let strings = b"\0f\0";
        let b = btf(&[(0, 31 << 24, 0, 0), (1, 12 << 24, 1, 0)], strings);
        assert_eq!(
            func_id(&b, "f"),
            None,
            "kind 31 is unknown: its size is too"
        );
        assert_eq!(func_id(&b"not btf at all"[..], "f"), None);
        assert_eq!(func_id(&[], "f"), None);
    }

    /// The scan agrees with aya-obj's full parse on the running kernel.
    #[test]
    fn the_running_kernels_ids_match_aya_obj() {
        let Ok(btf) = aya::Btf::from_sys_fs() else {
            eprintln!("no kernel BTF here: skipped");
            return;
        };
        let data = std::fs::read(KERNEL_BTF).unwrap();
        let mut found = 0;
        for name in [RDONLY_CAST, "bpf_task_pt_regs", "do_sys_openat2"] {
            let want = btf
                .id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func)
                .ok();
            assert_eq!(func_id(&data, name), want, "{name}");
            found += usize::from(want.is_some());
        }
        // Not only a comparison of two Nones: the scan must find a
        // function on this kernel for the test to mean anything.
        assert!(found > 0, "none of the names is in this kernel's BTF");
    }

    #[test]
    fn the_verifiers_kfunc_refusals_are_recognised_and_nothing_else() {
        for e in [
            "calling kernel function bpf_rdonly_cast is not allowed",
            "kernel btf_id 1 is not a function",
            "JIT does not support calling kfunc bpf_rdonly_cast",
        ] {
            assert!(refused(e), "{e}");
        }
        assert!(!refused("R6 invalid mem access 'scalar'"));
    }

    #[test]
    fn the_placeholder_is_the_one_the_bpf_header_writes() {
        // syscall.bpf.h: ".8byte 0x4d44415400002085", little-endian.
        assert_eq!(
            u64::from_le_bytes(RDONLY_CAST_PLACEHOLDER),
            0x4d44_4154_0000_2085
        );
    }
}
