//! Settings of the outputs that leave the host: syslog and NATS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogOutput {
    pub enabled: bool,
    /// `unix` (a local socket, datagram or stream), `tcp` or `tls`
    /// (RFC 6587 octet counting over either).
    pub transport: SyslogTransport,
    /// The local socket for `unix`.
    pub socket: PathBuf,
    /// `host:port` of the collector for `tcp` and `tls`.
    pub address: String,
    pub facility: SyslogFacility,
    /// RFC 5424 APP-NAME.
    pub app_name: String,
    /// Events held in memory while the collector is away; beyond it
    /// events are counted lost (and reported in band when it returns).
    pub backlog_max_bytes: bytesize::ByteSize,
    pub tls: TlsSettings,
}

impl Default for SyslogOutput {
    fn default() -> Self {
        Self {
            enabled: false,
            transport: SyslogTransport::Unix,
            socket: PathBuf::from("/dev/log"),
            address: String::new(),
            facility: SyslogFacility::Local0,
            app_name: "mdatp".into(),
            backlog_max_bytes: bytesize::ByteSize::mib(64),
            tls: TlsSettings::default(),
        }
    }
}

impl SyslogOutput {
    pub(super) fn problems(&self, out: &mut Vec<(String, String)>) {
        if !self.enabled {
            return;
        }
        match self.transport {
            SyslogTransport::Unix if !self.socket.is_absolute() => out.push((
                "output.syslog.socket".into(),
                format!("{}: an absolute path", self.socket.display()),
            )),
            SyslogTransport::Tcp | SyslogTransport::Tls if !has_port(&self.address) => out.push((
                "output.syslog.address".into(),
                format!("{:?}: host:port of the collector", self.address),
            )),
            _ => {}
        }
        if self.app_name.is_empty()
            || self.app_name.len() > 48
            || !self.app_name.bytes().all(|b| (33..=126).contains(&b))
        {
            out.push((
                "output.syslog.app_name".into(),
                format!(
                    "{:?}: 1 to 48 printable ASCII characters, no space (RFC 5424)",
                    self.app_name
                ),
            ));
        }
        if self.backlog_max_bytes.as_u64() < 1 << 20 {
            out.push((
                "output.syslog.backlog_max_bytes".into(),
                "at least 1 MiB".into(),
            ));
        }
    }
}

fn has_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    #[default]
    Unix,
    Tcp,
    Tls,
}

/// RFC 5424 facilities a sensor would log under.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFacility {
    Daemon,
    Auth,
    Authpriv,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl SyslogFacility {
    pub fn code(self) -> u8 {
        match self {
            SyslogFacility::Daemon => 3,
            SyslogFacility::Auth => 4,
            SyslogFacility::Authpriv => 10,
            SyslogFacility::Local0 => 16,
            SyslogFacility::Local1 => 17,
            SyslogFacility::Local2 => 18,
            SyslogFacility::Local3 => 19,
            SyslogFacility::Local4 => 20,
            SyslogFacility::Local5 => 21,
            SyslogFacility::Local6 => 22,
            SyslogFacility::Local7 => 23,
        }
    }
}

/// TLS for syslog and NATS: the CA that signs the server's certificate
/// (the system's roots are not read: a sensor trusts what it is told),
/// the name to check, and a client certificate where the server asks.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    /// Defaults to the address's host.
    pub server_name: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NatsOutput {
    pub enabled: bool,
    /// `nats://host:port` or `tls://host:port` URLs of one cluster.
    pub servers: Vec<String>,
    /// Events go to `<subject_prefix>.<OCSF class>`, e.g.
    /// `mdatp.events.process_activity`.
    pub subject_prefix: String,
    /// A JetStream stream the sensor creates (file storage, subjects
    /// `<subject_prefix>.>`) when it does not exist; empty: a stream
    /// the operator created must cover the subjects.
    pub stream: String,
    /// A NATS credentials file (JWT and NKey seed), if the server wants one.
    pub credentials_file: Option<PathBuf>,
    /// Where events wait while the server is unreachable; relative to
    /// the state directory.
    pub spool_dir: PathBuf,
    /// Beyond it events are counted lost, and reported in band when
    /// there is room again.
    pub spool_max_bytes: bytesize::ByteSize,
    /// How long a publish waits for its acknowledgement.
    pub ack_timeout_ms: u64,
    /// Events of one OCSF class per message (JSON Lines when more than
    /// one, header `Mdatp-Events: <n>`); 1: each event its own message.
    pub batch_events: u32,
    pub tls: TlsSettings,
}

impl Default for NatsOutput {
    fn default() -> Self {
        Self {
            enabled: false,
            servers: vec!["nats://127.0.0.1:4222".into()],
            subject_prefix: "mdatp.events".into(),
            stream: String::new(),
            credentials_file: None,
            spool_dir: PathBuf::from("nats-spool"),
            spool_max_bytes: bytesize::ByteSize::mib(256),
            ack_timeout_ms: 5_000,
            batch_events: 64,
            tls: TlsSettings::default(),
        }
    }
}

impl NatsOutput {
    pub(super) fn problems(&self, out: &mut Vec<(String, String)>) {
        if !self.enabled {
            return;
        }
        if self.servers.is_empty() {
            out.push((
                "output.nats.servers".into(),
                "at least one server URL".into(),
            ));
        }
        for s in &self.servers {
            let ok = s
                .split_once("://")
                .is_some_and(|(scheme, rest)| matches!(scheme, "nats" | "tls") && has_port(rest));
            if !ok {
                out.push((
                    "output.nats.servers".into(),
                    format!("{s:?}: nats://host:port or tls://host:port"),
                ));
            }
        }
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !self.subject_prefix.split('.').all(token_ok) {
            out.push((
                "output.nats.subject_prefix".into(),
                format!(
                    "{:?}: dot-separated tokens of letters, digits, _ and -",
                    self.subject_prefix
                ),
            ));
        }
        if !self.stream.is_empty() && !token_ok(&self.stream) {
            out.push((
                "output.nats.stream".into(),
                format!("{:?}: letters, digits, _ and -", self.stream),
            ));
        }
        if self.spool_max_bytes.as_u64() < 1 << 20 {
            out.push((
                "output.nats.spool_max_bytes".into(),
                "at least 1 MiB".into(),
            ));
        }
        if !(1..=1000).contains(&self.batch_events) {
            out.push((
                "output.nats.batch_events".into(),
                format!("{}: 1 to 1000", self.batch_events),
            ));
        }
        if self.ack_timeout_ms == 0 {
            out.push(("output.nats.ack_timeout_ms".into(), "more than 0".into()));
        }
    }
}
