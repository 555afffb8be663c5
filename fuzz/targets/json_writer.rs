//! The hand-written JSON writer against serde_json (differential): any
//! strings and numbers written by `json::Obj` parse back, with serde_json,
//! to exactly the values given, and the bytes equal serde_json's own
//! serialization of them.
//!
//! The body shared by the libFuzzer target (`fuzz_targets/`) and the
//! stable replay test (`tests/fuzz-replay`).

use arbitrary::Arbitrary;
use mdatpd::json;

#[derive(Arbitrary, Debug)]
enum Field {
    Str(String),
    OptStr(Option<String>),
    U64(u64),
    I64(i64),
    Bool(bool),
    Strs(Vec<String>),
    Nested(Vec<(u8, String)>),
    Octal(u64, bool),
    U64Str(u64),
    Joined(u64, u64),
}

/// The input's bytes as fields (libFuzzer's typed input, by hand, so the
/// stable replay test can run the same body).
pub fn run(data: &[u8]) {
    let Ok(fields) = Vec::<Field>::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    let keys: Vec<String> = (0..fields.len()).map(|i| format!("k{i}")).collect();
    let mut out = Vec::new();
    json::object(&mut out, |o| {
        for (k, f) in keys.iter().zip(&fields) {
            match f {
                Field::Str(s) => o.str(k, s),
                Field::OptStr(s) => o.opt_str(k, s.as_deref()),
                Field::U64(n) => o.u64(k, *n),
                Field::I64(n) => o.i64(k, *n),
                Field::Bool(b) => o.bool(k, *b),
                Field::Strs(v) => o.strs(k, v.iter().map(String::as_str)),
                Field::Octal(n, p) => o.octal(k, *n, *p),
                Field::U64Str(n) => o.u64_str(k, *n),
                Field::Joined(a, b) => o.joined_u64s(k, *a, b':', *b),
                Field::Nested(v) => o.obj(k, |inner| {
                    for (i, (_, s)) in v.iter().enumerate() {
                        inner.str(&format!("n{i}"), s);
                    }
                }),
            };
        }
    });
    let mut expected = serde_json::Map::new();
    for (k, f) in keys.iter().zip(&fields) {
        let v = match f {
            Field::Str(s) => serde_json::json!(s),
            Field::OptStr(None) => serde_json::Value::Null,
            Field::Octal(n, true) => serde_json::json!(format!("{n:#o}")),
            Field::Octal(n, false) => serde_json::json!(format!("{n:o}")),
            Field::U64Str(n) => serde_json::json!(n.to_string()),
            Field::Joined(a, b) => serde_json::json!(format!("{a}:{b}")),
            Field::OptStr(Some(s)) => serde_json::json!(s),
            Field::U64(n) => serde_json::json!(n),
            Field::I64(n) => serde_json::json!(n),
            Field::Bool(b) => serde_json::json!(b),
            Field::Strs(v) => serde_json::json!(v),
            Field::Nested(v) => serde_json::Value::Object(
                v.iter()
                    .enumerate()
                    .map(|(i, (_, s))| (format!("n{i}"), serde_json::json!(s)))
                    .collect(),
            ),
        };
        expected.insert(k.clone(), v);
    }
    let parsed: serde_json::Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&out)));
    assert_eq!(parsed, serde_json::Value::Object(expected.clone()));
    // Byte for byte as serde_json writes it (keys here are in order, and
    // serde_json's map without preserve_order sorts them: compare values).
    for (k, v) in &expected {
        let ours = &parsed[k];
        assert_eq!(
            serde_json::to_string(ours).expect("to_string"),
            serde_json::to_string(v).expect("to_string")
        );
    }
}
