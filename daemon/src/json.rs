//! A JSON object writer straight into a byte buffer, for the event hot
//! path. Building a `serde_json::Value` tree per event (a map and a string
//! allocation per field) was two thirds of the daemon's per-event CPU
//! (docs/PERFORMANCE.md); writing the bytes directly skips all of it.
//! Escaping follows serde_json's exactly, so the output is the same JSON.
//!
//! Hand-written rather than serde derive: the OCSF shape is built from
//! several normalized event types with per-class optional parts, which as
//! derive structs would need a borrowed mirror type per object; the
//! writer keeps that logic in plain code (ocsf.rs).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;

/// One JSON object being written; fields appear in call order. Keys are
/// written as given (callers use literal, escape-free keys) and must be
/// unique within an object.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
    /// A compact record: `label`s are left out, and writers may leave out
    /// more (`is_compact`). Inherited by nested objects.
    compact: bool,
}

/// Writes `{...}` filled by `f` to `out`.
pub fn object(out: &mut Vec<u8>, f: impl FnOnce(&mut Obj<'_>)) {
    object_in(out, false, f)
}

/// `object`, compact or not.
pub fn object_in(out: &mut Vec<u8>, compact: bool, f: impl FnOnce(&mut Obj<'_>)) {
    out.push(b'{');
    let mut o = Obj {
        out,
        empty: true,
        compact,
    };
    f(&mut o);
    o.out.push(b'}');
}

impl Obj<'_> {
    /// The comma before every field but the first.
    #[inline(always)]
    fn sep(&mut self) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
    }

    // Inlined so each call site copies its literal key with a known
    // length rather than through a memcpy call.
    #[inline(always)]
    fn key(&mut self, k: &str) {
        self.sep();
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A value that is already JSON (a constant fragment).
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.raw_bytes(k, json.as_bytes())
    }

    /// A value that is already JSON, as bytes (a fragment written once
    /// and copied: `ocsf::Fragments`).
    pub fn raw_bytes(&mut self, k: &str, json: &[u8]) -> &mut Self {
        self.key(k);
        self.out.extend_from_slice(json);
        self
    }

    /// Fields that are already JSON (`"a":1,"b":"x"`: a fragment written
    /// once and copied, `ocsf::Fragments`).
    pub fn fields(&mut self, json: &[u8]) -> &mut Self {
        if !json.is_empty() {
            self.sep();
            self.out.extend_from_slice(json);
        }
        self
    }

    /// An unsigned number as a JSON string in octal, prefixed with `0o`
    /// when `prefix` (as `{:#o}` prints it): "755", "0o100000".
    pub fn octal(&mut self, k: &str, v: u64, prefix: bool) -> &mut Self {
        self.key(k);
        let mut digits = [0u8; 23];
        let mut i = digits.len();
        let mut n = v;
        loop {
            i -= 1;
            digits[i] = b'0' + (n & 7) as u8;
            n >>= 3;
            if n == 0 {
                break;
            }
        }
        self.out.push(b'"');
        if prefix {
            self.out.extend_from_slice(b"0o");
        }
        self.out.extend_from_slice(&digits[i..]);
        self.out.push(b'"');
        self
    }

    /// A constant string of the program's own (an enum caption, a
    /// version): written without the escaping scan, which a per-event
    /// string pays. Such strings never need escaping; tests check it.
    pub fn caption(&mut self, k: &str, v: &'static str) -> &mut Self {
        debug_assert_eq!(clean_len(v.as_bytes()), v.len(), "{v:?} needs escaping");
        self.key(k);
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
        self
    }

    /// A constant caption that only repeats the id beside it (OCSF's
    /// `*_name` of a `*_id`): left out of a compact record.
    pub fn label(&mut self, k: &str, v: &'static str) -> &mut Self {
        if !self.compact {
            self.caption(k, v);
        }
        self
    }

    /// Whether this is a compact record (see `label`).
    pub fn is_compact(&self) -> bool {
        self.compact
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        string(self.out, v);
        self
    }

    /// A string or null.
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.str(k, s),
            None => self.null(k),
        }
    }

    /// A string from a Display value that never needs escaping (IP
    /// addresses, errno names): formatted straight into the buffer.
    pub fn display(&mut self, k: &str, v: impl Display) -> &mut Self {
        self.key(k);
        self.out.push(b'"');
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{v}");
        self.out.push(b'"');
        self
    }

    /// An integer as a JSON string (OCSF's string-typed ids).
    pub fn u64_str(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let mut b = itoa::Buffer::new();
        self.out.push(b'"');
        self.out.extend_from_slice(b.format(v).as_bytes());
        self.out.push(b'"');
        self
    }

    /// Two unsigned numbers joined by `sep`, as one JSON string ("254:0").
    pub fn joined_u64s(&mut self, k: &str, a: u64, sep: u8, b: u64) -> &mut Self {
        self.key(k);
        let mut buf = itoa::Buffer::new();
        self.out.push(b'"');
        self.out.extend_from_slice(buf.format(a).as_bytes());
        self.out.push(sep);
        self.out.extend_from_slice(buf.format(b).as_bytes());
        self.out.push(b'"');
        self
    }

    pub fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let mut b = itoa::Buffer::new();
        self.out.extend_from_slice(b.format(v).as_bytes());
        self
    }

    pub fn i64(&mut self, k: &str, v: i64) -> &mut Self {
        self.key(k);
        let mut b = itoa::Buffer::new();
        self.out.extend_from_slice(b.format(v).as_bytes());
        self
    }

    /// A number or null.
    pub fn opt_u64(&mut self, k: &str, v: Option<u64>) -> &mut Self {
        match v {
            Some(n) => self.u64(k, n),
            None => self.null(k),
        }
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        self
    }

    pub fn null(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.out.extend_from_slice(b"null");
        self
    }

    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        self.key(k);
        object_in(self.out, self.compact, f);
        self
    }

    pub fn strs<'s>(&mut self, k: &str, items: impl IntoIterator<Item = &'s str>) -> &mut Self {
        self.key(k);
        array_of_strs(self.out, items);
        self
    }

    /// Strings joined by one space, as one JSON string.
    pub fn joined<'s>(&mut self, k: &str, items: impl IntoIterator<Item = &'s str>) -> &mut Self {
        self.key(k);
        self.out.push(b'"');
        for (i, s) in items.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b' ');
            }
            escaped(self.out, s);
        }
        self.out.push(b'"');
        self
    }

    /// A path as three strings, escaped once: `path`, its last component
    /// (`name`) and, when `folder` is given, what is before the last `/`
    /// (`/` for a file at the root; empty when there is no `/`). Escaping
    /// is per byte, so the escaped path is the escaped folder, `/` and the
    /// escaped name: those are copied from the bytes just written.
    pub fn path_parts(
        &mut self,
        path: &str,
        keys: (&str, &str),
        folder: Option<&str>,
    ) -> &mut Self {
        let split = path.rfind('/');
        self.key(keys.0);
        self.out.push(b'"');
        let start = self.out.len();
        escaped(self.out, &path[..split.unwrap_or(0)]);
        let slash = self.out.len();
        escaped(self.out, &path[split.unwrap_or(0)..]);
        let end = self.out.len();
        self.out.push(b'"');
        let name_at = if split.is_some() { slash + 1 } else { slash };
        self.key(keys.1);
        self.out.push(b'"');
        self.out.extend_from_within(name_at..end);
        self.out.push(b'"');
        if let Some(k) = folder {
            self.key(k);
            self.out.push(b'"');
            match split {
                Some(0) => self.out.push(b'/'),
                _ => self.out.extend_from_within(start..slash),
            }
            self.out.push(b'"');
        }
        self
    }

    pub fn counts(&mut self, k: &str, m: &BTreeMap<String, u64>) -> &mut Self {
        self.obj(k, |o| {
            for (name, n) in m {
                o.key_escaped(name);
                let mut b = itoa::Buffer::new();
                o.out.extend_from_slice(b.format(*n).as_bytes());
            }
        })
    }

    fn key_escaped(&mut self, k: &str) {
        self.sep();
        string(self.out, k);
        self.out.push(b':');
    }
}

/// A JSON array of strings.
pub fn array_of_strs<'s>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'s str>) {
    out.push(b'[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s);
    }
    out.push(b']');
}

/// A JSON string literal.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escaped(out, s);
    out.push(b'"');
}

/// What each byte becomes in a JSON string: 0 = itself, `u` = \u00XX,
/// anything else = a backslash and that byte (serde_json's table).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// How many leading bytes of `b` need no escaping. Eight bytes at a time:
/// the has-less-than / has-zero-byte tests flag a byte below 0x20, a `"`
/// or a `\\`; their lowest flagged byte is always a true match (false
/// flags only occur above a true one), so its index is exact.
fn clean_len(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        let quote = x ^ (LO * u64::from(b'"'));
        let backslash = x ^ (LO * u64::from(b'\\'));
        let flags = (x.wrapping_sub(LO * 0x20) & !x
            | quote.wrapping_sub(LO) & !quote
            | backslash.wrapping_sub(LO) & !backslash)
            & HI;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .position(|&c| ESCAPE[c as usize] != 0)
        .unwrap_or(b.len() - i)
}

/// The body of a JSON string, escaped as serde_json does; clean runs are
/// copied whole.
fn escaped(out: &mut Vec<u8>, s: &str) {
    let mut rest = s.as_bytes();
    loop {
        let n = clean_len(rest);
        out.extend_from_slice(&rest[..n]);
        let Some(&b) = rest.get(n) else {
            return;
        };
        let e = ESCAPE[b as usize];
        if e == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        rest = &rest[n + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_does() {
        let samples = [
            "",
            "plain /usr/bin/true",
            "quote \" backslash \\ slash /",
            "controls \u{0}\u{1}\u{7}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1b}\u{1f} del \u{7f}",
            "unicode é 日本 🦀 \u{2028}",
            "exactly8",
            "sixteen bytes!!!",
            "/a/long/path/with/no/escapes/at/all/but/quite/some/length\"x",
            "12345678\n2345678\\",
            "\u{1f}1234567\u{1f}",
        ];
        for s in samples {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(
                String::from_utf8(out).ok(),
                serde_json::to_string(s).ok(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn path_parts_are_the_split_of_the_path_escaped() {
        let paths = [
            "/etc/passwd",
            "/",
            "/top",
            "relative",
            "",
            "a/b\"c/d\\e\n",
            "/dir\u{1}/na\tme",
            "/dir/",
            "//x",
            "/é/日本/🦀",
        ];
        for path in paths {
            let mut out = Vec::new();
            object(&mut out, |o| {
                o.path_parts(path, ("path", "name"), Some("parent_folder"));
            });
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
            let (parent, name) = match path.rfind('/') {
                Some(0) => ("/", &path[1..]),
                Some(i) => (&path[..i], &path[i + 1..]),
                None => ("", path),
            };
            assert_eq!(
                v,
                serde_json::json!({"path": path, "name": name, "parent_folder": parent}),
                "{path:?}"
            );
        }
    }

    #[test]
    fn objects_nest_and_parse() {
        let mut out = Vec::new();
        let mut counts = BTreeMap::new();
        counts.insert("file_open".to_string(), 3);
        counts.insert("we\"ird".to_string(), 1);
        object(&mut out, |o| {
            o.u64("a", 1)
                .str("c", "x\ny")
                .opt_str("d", None)
                .opt_u64("e", Some(5))
                .bool("f", true)
                .display("g", format_args!("{:o}", 0o755))
                .u64_str("g2", 42)
                .caption("g20", "File System Activity")
                .joined_u64s("g21", 254, b':', 0)
                .octal("g3", 0o100644, true)
                .octal("g4", 0, false)
                .raw("g5", r#"{"x":[1]}"#)
                .strs("h", ["a", "b\""])
                .joined("i", ["ls", "-l", "a b"])
                .counts("j", &counts)
                .obj("k", |o| {
                    o.obj("empty", |_| {});
                });
        });
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "a": 1, "c": "x\ny", "d": null, "e": 5, "f": true, "g": "755", "g2": "42", "g20": "File System Activity", "g21": "254:0", "g3": "0o100644", "g4": "0", "g5": {"x": [1]},
                "h": ["a", "b\""], "i": "ls -l a b", "j": {"file_open": 3, "we\"ird": 1},
                "k": {"empty": {}}
            })
        );
    }
}
