//! Kfunc calls in the BPF object, resolved at load. aya 0.14 does not
//! resolve them (it links only BPF-to-BPF calls), so the object carries
//! each as its raw instruction with a placeholder number
//! (`bpf/include/syscall.bpf.h`, `mdatp_rdonly_cast`), and this module
//! writes the kfunc's BTF id in the running kernel over it — or, where the
//! kernel has no such kfunc, `r0 = 0`, the NULL result the BPF code checks
//! and falls back from. Nothing else in the object is touched.

use aya::Btf;
use aya_obj::btf::BtfKind;

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
}

impl std::fmt::Display for KfuncResolution {
    /// Health's words: what the loaded programs read kernel objects with.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.sites, self.btf_id) {
            (0, _) => f.write_str("no kfunc calls in this build"),
            (_, Some(_)) => write!(f, "{RDONLY_CAST}: yes (plain loads)"),
            (_, None) => write!(
                f,
                "{RDONLY_CAST}: no, not in this kernel (6.2+): bpf_task_pt_regs and \
                 bpf_probe_read_kernel instead"
            ),
        }
    }
}

/// The BTF id of `name`, a kernel function, in `btf`.
pub fn kfunc_id(btf: &Btf, name: &str) -> Option<u32> {
    btf.id_by_type_name_kind(name, BtfKind::Func).ok()
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
    (out, KfuncResolution { sites, btf_id })
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

    #[test]
    fn the_placeholder_is_the_one_the_bpf_header_writes() {
        // syscall.bpf.h: ".8byte 0x4d44415400002085", little-endian.
        assert_eq!(
            u64::from_le_bytes(RDONLY_CAST_PLACEHOLDER),
            0x4d44_4154_0000_2085
        );
    }
}
