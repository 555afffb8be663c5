//! The D-Bus contract of mdatp (docs/ARCHITECTURE.md, "D-Bus"): names, the
//! client proxy the CLI uses, and the `Health` type. The daemon's server
//! object lives in the daemon and implements the same interface;
//! `org.mdatp.Sensor1.xml` is its introspection data and
//! `org.mdatp.Sensor1.conf` the bus policy.

mod health;

pub use health::{Health, value_to_json};

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

pub const BUS_NAME: &str = "org.mdatp.Sensor1";
pub const OBJECT_PATH: &str = "/org/mdatp/Sensor1";

#[zbus::proxy(
    interface = "org.mdatp.Sensor1",
    default_service = "org.mdatp.Sensor1",
    default_path = "/org/mdatp/Sensor1"
)]
pub trait Sensor1 {
    fn health(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    fn get_config(&self, key: &str) -> zbus::Result<OwnedValue>;
    fn set_config(&self, key: &str, value: &Value<'_>) -> zbus::Result<()>;
    /// Root only: `value`, `source`, `locked_by` of one key.
    fn describe_config(&self, key: &str) -> zbus::Result<HashMap<String, String>>;
    /// Root only: a dry run of SetConfig (`current`, `proposed`,
    /// `changed`, `source`); nothing is changed.
    fn check_config(&self, key: &str, value: &Value<'_>) -> zbus::Result<HashMap<String, String>>;
    /// Root only: the keys a layer file sets that are not in force, with
    /// the value in force and its source; empty when all of it is.
    fn not_in_force(&self, file: &str) -> zbus::Result<HashMap<String, String>>;
    fn reload(&self) -> zbus::Result<()>;
    /// Root only. Empty `directory`: /var/log/mdatp/diag.
    fn create_diagnostic(&self, directory: &str) -> zbus::Result<String>;
    /// Seconds counted and (`path`|`executable`, name, events).
    fn hot_event_sources(&self, top: u32) -> zbus::Result<(f64, Vec<(String, String, u64)>)>;
    /// Why run counts are unavailable (or empty) and, per BPF object:
    /// kind, name, id, memlock bytes, runs, run ns, detail.
    #[allow(clippy::type_complexity)]
    fn ebpf_statistics(
        &self,
        seconds: u32,
    ) -> zbus::Result<(String, Vec<(String, String, u32, u64, u64, u64, String)>)>;
    #[zbus(property)]
    fn supplementary_events_subsystem(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn ebpf_supplementary_event_provider(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn healthy(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(signal)]
    fn provider_changed(&self, old: &str, new: &str, reason: &str) -> zbus::Result<()>;
}
