//! Reading the fields of parsed audit records: values as bytes, text,
//! numbers, syscall arguments, ids, the `msg='...'` of user records, a
//! device, a SOCKADDR's address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use linux_audit_parser::{Body, Key, Number, Value};

use crate::event::Device;

/// An unset id (-1 as an unsigned 32-bit value).
pub(super) const UNSET: i64 = 4294967295;

pub(super) fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Str(s, _) => Some(s.to_vec()),
        Value::Owned(b) => Some(b.clone()),
        Value::Segments(segs) => Some(segs.concat()),
        Value::Number(n) => Some(n.to_string().into_bytes()),
        Value::Literal(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// A record's field. `Body::get` compares every key of the record with
/// the name by formatting it to a string (an allocation per key per
/// lookup: the audit source's largest cost under a storm); the name is
/// made into the parser's `Key` once and compared as such instead.
pub(super) fn get<'b>(body: &'b Body<'b>, key: &str) -> Option<&'b Value<'b>> {
    let wanted: Key = match key.parse() {
        Ok(k) => k,
        Err(never) => match never {},
    };
    body.into_iter().find(|(k, _)| *k == wanted).map(|(_, v)| v)
}

pub(super) fn text(body: &Body, key: &str) -> Option<String> {
    let b = bytes(get(body, key)?)?;
    let s = String::from_utf8_lossy(&b).into_owned();
    (s != "?" && s != "(null)" && !s.is_empty()).then_some(s)
}

pub(super) fn num_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(Number::Dec(i)) => Some(*i),
        Value::Number(Number::Hex(u)) | Value::Number(Number::Oct(u)) => Some(*u as i64),
        Value::Str(s, _) => std::str::from_utf8(s).ok()?.parse().ok(),
        _ => None,
    }
}

pub(super) fn num(body: &Body, key: &str) -> Option<i64> {
    num_of(get(body, key)?)
}

/// A syscall argument (a0..a3): hex in the record.
pub(super) fn arg(body: &Body, key: &str) -> Option<u64> {
    match get(body, key)? {
        Value::Number(Number::Hex(u)) => Some(*u),
        Value::Number(Number::Dec(i)) => Some(*i as u64),
        Value::Str(s, _) => u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok(),
        _ => None,
    }
}

pub(super) fn id(body: &Body, key: &str) -> Option<u32> {
    num(body, key)
        .filter(|v| *v != UNSET && *v >= 0)
        .map(|v| v as u32)
}

/// The `msg='op=... acct=...'` map of a user-space record.
pub(super) fn msg_field(body: &Body, key: &str) -> Option<String> {
    let Value::Map(m) = get(body, "msg")? else {
        return None;
    };
    let (_, v) = m.iter().find(|(k, _)| k == key.as_bytes())?;
    let b = bytes(v)?;
    let s = String::from_utf8_lossy(&b).into_owned();
    (s != "?" && !s.is_empty()).then_some(s)
}

/// "fd:01" (hex major:minor) → "253:1".
pub(super) fn audit_dev(s: &str) -> Option<Device> {
    let (ma, mi) = s.split_once(':')?;
    Some(Device {
        major: u32::from_str_radix(ma, 16).ok()?,
        minor: u32::from_str_radix(mi, 16).ok()?,
    })
}

pub(super) fn sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_le_bytes([*b.first()?, *b.get(1)?]);
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match family {
        2 => {
            let a: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
        }
        10 => {
            let a: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}
