//! The D-Bus contract of mdatp (shared/DESIGN.md): names, the client proxy
//! the CLI uses, and the health keys. The daemon's server object lives in
//! the daemon and implements the same interface; `org.mdatp.Sensor1.xml`
//! is its introspection data and `org.mdatp.Sensor1.conf` the bus policy.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

pub const BUS_NAME: &str = "org.mdatp.Sensor1";
pub const OBJECT_PATH: &str = "/org/mdatp/Sensor1";
pub const INTERFACE: &str = "org.mdatp.Sensor1";
/// Error name of a change refused because a managed profile sets the key.
pub const ERROR_LOCKED: &str = "org.mdatp.Sensor1.Error.Locked";
/// Error name of a change the configuration rejects.
pub const ERROR_INVALID: &str = "org.mdatp.Sensor1.Error.InvalidConfig";

/// Keys of the `Health()` dictionary, in display order.
pub const HEALTH_KEYS: &[&str] = &[
    "healthy",
    "health_issues",
    "supplementary_events_subsystem",
    "ebpf_supplementary_event_provider",
    "fallback_reason",
    "event_sources",
    "active_hooks",
    "failed_hooks",
    "events_delivered",
    "loss",
    "audit_enabled",
    "audit_immutable",
    "audit_rules_loaded",
    "login_events",
    "config_errors",
    "event_output",
    "version",
    "kernel",
];

#[zbus::proxy(
    interface = "org.mdatp.Sensor1",
    default_service = "org.mdatp.Sensor1",
    default_path = "/org/mdatp/Sensor1"
)]
pub trait Sensor1 {
    fn health(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    fn get_config(&self, key: &str) -> zbus::Result<OwnedValue>;
    fn set_config(&self, key: &str, value: &Value<'_>) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    /// Root only. Empty `directory`: /var/log/mdatp/diag.
    fn create_diagnostic(&self, directory: &str) -> zbus::Result<String>;
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
