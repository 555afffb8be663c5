//! The one definition of what `Health()` reports. The daemon fills it;
//! it is serialized to the D-Bus `a{sv}` dictionary, to JSON for
//! `mdatp health --output json` and into the diagnostics archive; the
//! CLI reads it back from the dictionary. Field names are the contract.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use zbus::zvariant::{OwnedValue, Value};

/// Declares the struct and, from the same list, its field names in order.
macro_rules! health {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        /// The sensor's health (see docs/ARCHITECTURE.md, "Health").
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Health {
            $($(#[$doc])* pub $name: $ty,)*
        }

        impl Health {
            /// Field names in display order.
            pub const FIELDS: &[&str] = &[$(stringify!($name)),*];
        }
    };
}

health! {
    /// No issue: no loss, no failed hook, no refused reload.
    healthy: bool,
    /// What keeps the sensor from being healthy, each with its remedy.
    health_issues: Vec<String>,
    /// `ebpf`, `auditd`, `ebpf+auditd` (eBPF, audit for the kinds eBPF
    /// cannot serve) or `proc_connector` (neither: process events from
    /// the netlink process connector).
    supplementary_events_subsystem: String,
    /// The setting in force: `enabled` or `disabled`.
    ebpf_supplementary_event_provider: String,
    /// Why eBPF does not serve every kind (empty when it does).
    fallback_reason: String,
    /// Event kind → `ebpf`, `auditd`, `auditd (PAM records)`,
    /// `proc_connector (...)` or `unavailable: <reason>`.
    event_sources: BTreeMap<String, String>,
    active_hooks: Vec<String>,
    /// `<hook>: <one-line verdict>` per refused program.
    failed_hooks: Vec<String>,
    /// Ways around the sensor this host leaves open, each with why: a
    /// hook the kernel lacks (io_uring's submit tracepoint before 6.0), a
    /// refused 32-bit or io_uring program, what the audit subsystem
    /// cannot see. Empty when every path is covered.
    not_covered: Vec<String>,
    events_delivered: BTreeMap<String, u64>,
    /// Loss per stage (and kind); zero entries left out.
    loss: BTreeMap<String, u64>,
    /// Loss in the last minute per kind (or `sink`, `unknown`): the
    /// sensor is unhealthy while it is not empty.
    loss_last_minute: BTreeMap<String, u64>,
    /// The kernel's audit `enabled` (0, 1, 2); absent when unknown.
    audit_enabled: Option<u32>,
    audit_immutable: bool,
    audit_rules_loaded: bool,
    login_events: String,
    /// Problems of the last refused configuration reload.
    config_errors: Vec<String>,
    /// A file path, or `stdout`.
    event_output: String,
    /// Why events cannot be written now (a full disk, a removed
    /// directory); empty while writes succeed. Unhealthy while set.
    event_output_error: String,
    /// The event file's counters: bytes_written, rotations, reopened
    /// (renamed or removed under the sensor, SIGHUP, Reload),
    /// torn_records_cut (a torn last line cut at start).
    event_output_counters: BTreeMap<String, u64>,
    /// Each output (`file`, `syslog`, `nats`) that is enabled: `ok:
    /// <target>` or `failing: <target>: <why>` (unhealthy).
    outputs: BTreeMap<String, String>,
    /// `<output>.<counter>`: delivered, lost, connected (1 or 0),
    /// backlog_events and backlog_bytes (held in memory), spooled_bytes
    /// (NATS, on disk), and each output's own (bytes_written, rotations,
    /// connects, write_errors, acknowledged, ...).
    output_counters: BTreeMap<String, u64>,
    /// What the sensor itself uses, sampled every 5 s: rss_bytes,
    /// rss_peak_bytes, cpu_ms_total, cpu_permille_last_minute (1,000 = one
    /// core busy), threads, open_fds, bpf_maps and bpf_map_bytes (kernel
    /// memory of its maps, the ring included), bpf_programs and
    /// bpf_program_bytes.
    resources: BTreeMap<String, u64>,
    /// `<table>.entries`, `<table>.cap`, `<table>.dropped` for every
    /// user-space table keyed by event data (process cache, user names,
    /// opened paths, hot sources, audit assembly, switch duplicates).
    state_tables: BTreeMap<String, u64>,
    version: String,
    kernel: String,
    /// What the kernel offers eBPF, probed at start: capability → `yes`
    /// or `no: <why>` (ring_buffer, btf, bpf_task_pt_regs, fentry, lsm, ...).
    kernel_capabilities: BTreeMap<String, String>,
    /// The build of the syscall exit programs loaded for this kernel and
    /// why: `typed: ...` (5.15+) or `compat: <missing helper>` (5.8-5.14).
    ebpf_program_build: String,
}

impl Health {
    /// The JSON object (`mdatp health --output json`, diagnostics).
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// The D-Bus dictionary; unknown (null) values are left out.
    pub fn to_dict(&self) -> HashMap<String, OwnedValue> {
        self.to_json()
            .into_iter()
            .filter_map(|(k, v)| json_to_value(&v).map(|v| (k, v)))
            .collect()
    }

    /// Reads a D-Bus dictionary back; fields a (newer or older) daemon
    /// does not send keep their defaults.
    pub fn from_dict(dict: &HashMap<String, OwnedValue>) -> Result<Self, serde_json::Error> {
        let obj: serde_json::Map<String, serde_json::Value> = dict
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect();
        serde_json::from_value(serde_json::Value::Object(obj))
    }
}

fn owned(v: Value<'_>) -> Option<OwnedValue> {
    OwnedValue::try_from(v).ok()
}

/// The health's JSON shapes as D-Bus values: b, t, s, as, a{st}, a{ss}.
fn json_to_value(v: &serde_json::Value) -> Option<OwnedValue> {
    use serde_json::Value as J;
    match v {
        J::Null => None,
        J::Bool(b) => owned(Value::from(*b)),
        J::Number(n) => owned(Value::from(n.as_u64()?)),
        J::String(s) => owned(Value::from(s.as_str())),
        J::Array(a) => {
            let strs: Vec<&str> = a.iter().filter_map(|x| x.as_str()).collect();
            owned(Value::from(strs))
        }
        J::Object(o) if o.values().all(|x| x.is_u64()) => {
            let m: HashMap<&str, u64> = o
                .iter()
                .filter_map(|(k, x)| Some((k.as_str(), x.as_u64()?)))
                .collect();
            owned(Value::from(m))
        }
        J::Object(o) => {
            let m: HashMap<&str, &str> = o
                .iter()
                .filter_map(|(k, x)| Some((k.as_str(), x.as_str()?)))
                .collect();
            owned(Value::from(m))
        }
    }
}

/// A D-Bus value as JSON (the CLI's decoding of `Health()`).
pub fn value_to_json(v: &Value<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Bool(b) => J::Bool(*b),
        Value::U8(n) => J::from(*n),
        Value::U16(n) => J::from(*n),
        Value::U32(n) => J::from(*n),
        Value::U64(n) => J::from(*n),
        Value::I16(n) => J::from(*n),
        Value::I32(n) => J::from(*n),
        Value::I64(n) => J::from(*n),
        Value::F64(n) => J::from(*n),
        Value::Str(s) => J::String(s.to_string()),
        Value::Value(inner) => value_to_json(inner),
        Value::Array(a) => J::Array(a.iter().map(value_to_json).collect()),
        Value::Dict(d) => {
            let mut m = serde_json::Map::new();
            for (k, v) in d.iter() {
                let key = match k {
                    Value::Str(s) => s.to_string(),
                    other => format!("{other:?}"),
                };
                m.insert(key, value_to_json(v));
            }
            J::Object(m)
        }
        other => J::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Health {
        Health {
            healthy: true,
            health_issues: vec!["x".into()],
            supplementary_events_subsystem: "ebpf".into(),
            event_sources: [("file_open".to_string(), "ebpf".to_string())].into(),
            loss: [("sink_lost.file_open".to_string(), 3)].into(),
            audit_enabled: Some(1),
            version: "0.1.0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_dictionary_reads_back_as_the_same_health() {
        let h = sample();
        assert_eq!(Health::from_dict(&h.to_dict()).expect("decode"), h);
        let unknown = Health {
            audit_enabled: None,
            ..sample()
        };
        let d = unknown.to_dict();
        assert!(!d.contains_key("audit_enabled"));
        assert_eq!(Health::from_dict(&d).expect("decode"), unknown);
    }

    #[test]
    fn every_field_is_in_the_json_in_declaration_order_list() {
        let json = sample().to_json();
        for f in Health::FIELDS {
            assert!(json.contains_key(*f), "{f}");
        }
        assert_eq!(json.len(), Health::FIELDS.len());
    }
}
