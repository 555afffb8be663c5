//! argv from an exec's EXECVE records, in one pass over their fields.
//! The kernel writes `argc=N a0=.. a1=..` and spreads long argument lists
//! over several EXECVE records; an argument too long for one record comes
//! as `aI_len=L aI[0]=.. aI[1]=..` (hex). Each field is visited once, so
//! the cost is linear in the records' size (a per-argument lookup by
//! name was quadratic: seconds for 100,000 arguments). The same bound as
//! the eBPF side applies: at most `MDATP_ARGV_MAX` bytes of arguments are
//! kept, the rest is cut and flagged.

use linux_audit_parser::{Body, Common, Key};

use mdatp_bpf::abi::mdatp_bounds::MDATP_ARGV_MAX;

/// What an exec's records say of its arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Argv {
    pub argc: u32,
    pub argv: Vec<String>,
    /// Arguments were cut (the bound) or missing from the records.
    pub truncated: bool,
}

/// The arguments from `bodies` (the event's EXECVE records, in order).
/// `value` turns a field's value into bytes.
pub fn assemble<'a>(
    bodies: impl Iterator<Item = &'a Body<'a>>,
    value: impl Fn(&linux_audit_parser::Value) -> Option<Vec<u8>>,
) -> Argv {
    // Each argument costs its bytes and a separator, as in the kernel's
    // NUL-separated argv the eBPF side copies.
    let budget = MDATP_ARGV_MAX as usize;
    let mut argc: Option<u32> = None;
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut used = 0usize;
    let mut cut = false;
    let mut full = false;
    for body in bodies {
        for (k, v) in body {
            let i = match k {
                Key::Common(Common::Argc) => {
                    argc = argc.or_else(|| {
                        value(v).and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
                    });
                    continue;
                }
                Key::Arg(i, _) => *i as usize,
                _ => continue,
            };
            if full {
                continue;
            }
            // Arguments arrive in order: a gap is missing arguments.
            if i > args.len() {
                let missing = i - args.len();
                if used + missing > budget {
                    (full, cut) = (true, true);
                    continue;
                }
                args.resize(i, Vec::new());
                used += missing;
                cut = true;
            }
            let Some(bytes) = value(v) else { continue };
            let cost = bytes.len() + usize::from(i == args.len());
            if used + cost > budget {
                (full, cut) = (true, true);
                continue;
            }
            used += cost;
            if i == args.len() {
                args.push(bytes);
            } else if let Some(a) = args.get_mut(i) {
                // aI[n]: the next part of argument I.
                a.extend_from_slice(&bytes);
            }
        }
    }
    let argc = argc.unwrap_or(args.len() as u32);
    if (args.len() as u32) < argc {
        cut = true;
    }
    Argv {
        argc,
        argv: args
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .collect(),
        truncated: cut,
    }
}

#[cfg(test)]
mod tests {
    use linux_audit_parser::Parser;

    use super::*;

    fn bodies(lines: &[&str]) -> Vec<Body<'static>> {
        lines
            .iter()
            .map(|l| {
                let line = format!("type=EXECVE msg=audit(1.0:7): {l}\n");
                Parser::default().parse(line.as_bytes()).unwrap().body
            })
            .collect()
    }

    fn value(v: &linux_audit_parser::Value) -> Option<Vec<u8>> {
        crate::audit::fields::bytes(v)
    }

    #[test]
    fn arguments_over_several_records_split_and_hex_are_whole() {
        let b = bodies(&[
            "argc=4 a0=\"cat\" a1=2F6574632F706173737764 a2_len=6 a2[0]=666F6F",
            "a2[1]=626172 a3=\"last\"",
        ]);
        let a = assemble(b.iter(), value);
        assert_eq!(a.argc, 4);
        assert_eq!(a.argv, ["cat", "/etc/passwd", "foobar", "last"]);
        assert!(!a.truncated);
    }

    #[test]
    fn a_missing_record_and_the_bound_are_flagged() {
        // a2 is in a record that never came.
        let b = bodies(&["argc=4 a0=\"x\" a1=\"y\"", "a3=\"z\""]);
        let a = assemble(b.iter(), value);
        assert_eq!(a.argv, ["x", "y", "", "z"]);
        assert!(a.truncated);
        // 200,000 arguments: the first ones up to the bound, flagged.
        let mut line = String::from("argc=200000");
        for i in 0..200_000 {
            line.push_str(&format!(" a{i}=\"arg\""));
        }
        let b = bodies(&[&line]);
        let a = assemble(b.iter(), value);
        assert_eq!(a.argc, 200_000);
        assert!(a.truncated);
        assert_eq!(a.argv.len(), MDATP_ARGV_MAX as usize / 4);
        assert!(a.argv.iter().all(|x| x == "arg"));
    }
}
