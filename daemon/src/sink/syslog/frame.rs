//! RFC 5424 records carrying one OCSF event each:
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, where MSGID
//! is the OCSF class (`process_activity`, ...) and MSG the JSON. Over a
//! stream (TCP, TLS, a unix stream socket) each record is framed by
//! octet counting (RFC 6587 3.4.1): `LEN SP RECORD`.

use std::time::SystemTime;

/// The OCSF class of a serialized event, from its leading `class_uid`
/// (the sensor writes it first): subject token and MSGID.
pub fn class_name(record: &[u8]) -> &'static str {
    const KEY: &[u8] = b"{\"class_uid\":";
    let Some(rest) = record.strip_prefix(KEY) else {
        return "unknown";
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    match &rest[..digits] {
        b"1001" => "file_system_activity",
        b"1007" => "process_activity",
        b"3002" => "authentication",
        b"4001" => "network_activity",
        b"0" => "base_event",
        _ => "unknown",
    }
}

/// The fixed part of every record's header.
pub struct Header {
    facility: u8,
    hostname: String,
    app_name: String,
    pid: u32,
}

/// Severity: informational for events, warning for loss records.
const INFO: u8 = 6;
const WARNING: u8 = 4;

impl Header {
    pub fn new(facility: u8, hostname: &str, app_name: &str) -> Self {
        // RFC 5424 HOSTNAME: printable ASCII, at most 255, "-" if unknown.
        let hostname: String = hostname
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        Self {
            facility,
            hostname: if hostname.is_empty() {
                "-".into()
            } else {
                hostname
            },
            app_name: app_name.to_string(),
            pid: std::process::id(),
        }
    }

    /// Appends one record (no framing) to `out`.
    pub fn record(&self, event: &[u8], now: SystemTime, out: &mut Vec<u8>) {
        let class = class_name(event);
        let severity = if class == "base_event" { WARNING } else { INFO };
        let pri = u16::from(self.facility) * 8 + u16::from(severity);
        let ts = humantime::format_rfc3339_micros(now);
        use std::io::Write;
        let _ = write!(
            out,
            "<{pri}>1 {ts} {} {} {} {class} - ",
            self.hostname, self.app_name, self.pid
        );
        out.extend_from_slice(event);
    }

    /// Appends one octet-counted record to `out`.
    pub fn framed(&self, event: &[u8], now: SystemTime, out: &mut Vec<u8>) {
        let mut rec = Vec::with_capacity(event.len() + 96);
        self.record(event, now, &mut rec);
        let mut len = itoa::Buffer::new();
        out.extend_from_slice(len.format(rec.len()).as_bytes());
        out.push(b' ');
        out.extend_from_slice(&rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_rfc5424_with_the_class_as_msgid_and_framing_counts_octets() {
        let h = Header::new(16, "host é 1", "mdatp");
        let ev = br#"{"class_uid":1007,"x":"\u00e9"}"#;
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        let mut out = Vec::new();
        h.framed(ev, t, &mut out);
        let s = String::from_utf8(out).unwrap();
        let (len, rec) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rec.len());
        let pid = std::process::id();
        assert_eq!(
            rec,
            format!(
                "<134>1 2023-11-14T22:13:20.123456Z host1 mdatp {pid} process_activity - {}",
                std::str::from_utf8(ev).unwrap()
            )
        );
        assert_eq!(class_name(br#"{"class_uid":0,"#), "base_event");
        assert_eq!(class_name(b"garbage"), "unknown");
    }
}
