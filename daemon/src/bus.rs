//! The D-Bus interface object (`org.mdatp.Sensor1`): a thin adapter. It
//! reads a health snapshot the main loop keeps current, and sends
//! changes to the main loop. Changing state is root only: the bus policy
//! says so, and the caller's uid is checked here again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use mdatp_dbus::{BUS_NAME, OBJECT_PATH};
use tokio::sync::mpsc;
use zbus::fdo;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};

use crate::config::ConfigPaths;
use crate::config::local::{self, SetError};

/// What `Health()` and the properties report.
#[derive(Debug, Clone, Default)]
pub struct HealthSnapshot {
    pub healthy: bool,
    pub issues: Vec<String>,
    pub subsystem: String,
    pub setting: String,
    pub fallback_reason: String,
    pub active_hooks: Vec<String>,
    pub failed_hooks: Vec<String>,
    pub events_delivered: BTreeMap<String, u64>,
    pub loss: BTreeMap<String, u64>,
    pub audit_enabled: Option<u32>,
    pub audit_rules_loaded: bool,
    pub login_events: String,
    pub config_errors: Vec<String>,
    pub kernel: String,
    /// Event type → "ebpf", "auditd" or "unavailable".
    pub event_sources: BTreeMap<String, String>,
    /// Where events are written: a file path, or "stdout".
    pub event_output: String,
}

fn owned(v: Value<'_>) -> Option<OwnedValue> {
    OwnedValue::try_from(v).ok()
}

impl HealthSnapshot {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "healthy": self.healthy,
            "health_issues": self.issues,
            "supplementary_events_subsystem": self.subsystem,
            "ebpf_supplementary_event_provider": self.setting,
            "fallback_reason": self.fallback_reason,
            "active_hooks": self.active_hooks,
            "failed_hooks": self.failed_hooks,
            "events_delivered": self.events_delivered,
            "loss": self.loss,
            "audit_enabled": self.audit_enabled,
            "audit_rules_loaded": self.audit_rules_loaded,
            "login_events": self.login_events,
            "config_errors": self.config_errors,
            "version": env!("CARGO_PKG_VERSION"),
            "kernel": self.kernel,
            "event_sources": self.event_sources,
            "event_output": self.event_output,
        })
    }

    pub fn to_dict(&self) -> HashMap<String, OwnedValue> {
        let hm = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<HashMap<_, _>>()
        };
        let entries: Vec<(&str, Value<'_>)> = vec![
            ("healthy", Value::from(self.healthy)),
            ("health_issues", Value::from(self.issues.clone())),
            (
                "supplementary_events_subsystem",
                Value::from(self.subsystem.clone()),
            ),
            (
                "ebpf_supplementary_event_provider",
                Value::from(self.setting.clone()),
            ),
            ("fallback_reason", Value::from(self.fallback_reason.clone())),
            ("active_hooks", Value::from(self.active_hooks.clone())),
            ("failed_hooks", Value::from(self.failed_hooks.clone())),
            ("events_delivered", Value::from(hm(&self.events_delivered))),
            ("loss", Value::from(hm(&self.loss))),
            (
                "audit_enabled",
                Value::from(self.audit_enabled.map(i64::from).unwrap_or(-1)),
            ),
            (
                "audit_immutable",
                Value::from(self.audit_enabled == Some(2)),
            ),
            ("audit_rules_loaded", Value::from(self.audit_rules_loaded)),
            ("login_events", Value::from(self.login_events.clone())),
            ("config_errors", Value::from(self.config_errors.clone())),
            ("version", Value::from(env!("CARGO_PKG_VERSION"))),
            ("kernel", Value::from(self.kernel.clone())),
            (
                "event_sources",
                Value::from(
                    self.event_sources
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<HashMap<_, _>>(),
                ),
            ),
            ("event_output", Value::from(self.event_output.clone())),
        ];
        entries
            .into_iter()
            .filter_map(|(k, v)| owned(v).map(|v| (k.to_string(), v)))
            .collect()
    }
}

/// Requests from the bus to the main loop.
#[derive(Debug)]
pub enum BusCommand {
    Reload,
}

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.mdatp.Sensor1.Error")]
pub enum SensorError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// A managed profile sets the key.
    Locked(String),
    /// The change would make the configuration invalid.
    InvalidConfig(String),
}

impl From<fdo::Error> for SensorError {
    fn from(e: fdo::Error) -> Self {
        SensorError::ZBus(zbus::Error::FDO(Box::new(e)))
    }
}

pub struct SensorObject {
    health: Arc<Mutex<HealthSnapshot>>,
    paths: ConfigPaths,
    /// Default directory of diagnostics archives.
    diag_dir: std::path::PathBuf,
    commands: mpsc::UnboundedSender<BusCommand>,
}

impl SensorObject {
    fn snapshot(&self) -> HealthSnapshot {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// Root only, checked with the bus's own record of the caller.
async fn require_root(
    conn: &zbus::Connection,
    hdr: &zbus::message::Header<'_>,
) -> Result<(), SensorError> {
    let sender = hdr
        .sender()
        .ok_or_else(|| fdo::Error::AccessDenied("no sender on the message".into()))?;
    let dbus = fdo::DBusProxy::new(conn).await.map_err(SensorError::ZBus)?;
    let uid = dbus
        .get_connection_unix_user(sender.to_owned().into())
        .await
        .map_err(SensorError::from)?;
    if uid != 0 {
        return Err(fdo::Error::AccessDenied(format!(
            "uid {uid} may read the sensor but not change it"
        ))
        .into());
    }
    Ok(())
}

/// A D-Bus value as the YAML text of a setting.
fn yaml_text(v: &Value<'_>) -> Result<String, SensorError> {
    Ok(match v {
        Value::Str(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::U8(n) => n.to_string(),
        Value::U16(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::I16(n) => n.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::Value(inner) => yaml_text(inner)?,
        Value::Array(a) => {
            let items: Result<Vec<String>, _> = a.iter().map(yaml_text).collect();
            let items: Vec<String> = items?.into_iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(", "))
        }
        other => {
            return Err(fdo::Error::InvalidArgs(format!(
                "unsupported value type {}",
                other.value_signature()
            ))
            .into());
        }
    })
}

#[zbus::interface(name = "org.mdatp.Sensor1")]
impl SensorObject {
    async fn health(&self) -> HashMap<String, OwnedValue> {
        self.snapshot().to_dict()
    }

    async fn get_config(&self, key: String) -> Result<OwnedValue, SensorError> {
        let loaded = crate::config::load(&self.paths)
            .map_err(|e| SensorError::InvalidConfig(e.to_string()))?;
        let value = loaded
            .effective()
            .remove(&key)
            .ok_or_else(|| fdo::Error::InvalidArgs(format!("{key}: not a configuration key")))?;
        owned(Value::from(value)).ok_or_else(|| fdo::Error::Failed("value".into()).into())
    }

    async fn set_config(
        &self,
        key: String,
        value: OwnedValue,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), SensorError> {
        require_root(conn, &hdr).await?;
        let text = yaml_text(&value)?;
        match local::set(&self.paths, &key, &text) {
            Ok(()) => {}
            Err(SetError::Locked { key, file }) => {
                return Err(SensorError::Locked(format!(
                    "{key} is managed by {}: change it there",
                    file.display()
                )));
            }
            Err(SetError::UnknownKey { key }) => {
                return Err(
                    fdo::Error::InvalidArgs(format!("{key}: not a configuration key")).into(),
                );
            }
            Err(e) => return Err(SensorError::InvalidConfig(e.to_string())),
        }
        let _ = self.commands.send(BusCommand::Reload);
        Ok(())
    }

    async fn reload(
        &self,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), SensorError> {
        require_root(conn, &hdr).await?;
        let _ = self.commands.send(BusCommand::Reload);
        Ok(())
    }

    /// Writes a diagnostics archive into `directory` (empty: the default
    /// under the log directory) and returns its path.
    async fn create_diagnostic(
        &self,
        directory: String,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<String, SensorError> {
        require_root(conn, &hdr).await?;
        let dir = if directory.is_empty() {
            self.diag_dir.clone()
        } else {
            std::path::PathBuf::from(directory)
        };
        let config_explain = match crate::config::load(&self.paths) {
            Ok(c) => c.explain(),
            Err(e) => format!("configuration invalid:\n{e}"),
        };
        let parts = crate::diagnostic::Parts {
            health_json: serde_json::to_string_pretty(&self.snapshot().to_json())
                .unwrap_or_default(),
            config_explain,
        };
        let path = tokio::task::spawn_blocking(move || crate::diagnostic::create(&dir, parts))
            .await
            .map_err(|e| fdo::Error::Failed(e.to_string()))?
            .map_err(|e| fdo::Error::Failed(format!("{e}: {}", e.source)))?;
        Ok(path.display().to_string())
    }

    #[zbus(property)]
    async fn supplementary_events_subsystem(&self) -> String {
        self.snapshot().subsystem
    }

    #[zbus(property)]
    async fn ebpf_supplementary_event_provider(&self) -> String {
        self.snapshot().setting
    }

    #[zbus(property)]
    async fn healthy(&self) -> bool {
        self.snapshot().healthy
    }

    #[zbus(property)]
    async fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    #[zbus(signal)]
    async fn provider_changed(
        emitter: &SignalEmitter<'_>,
        old: &str,
        new: &str,
        reason: &str,
    ) -> zbus::Result<()>;
}

/// The daemon's bus presence.
pub struct Bus {
    conn: zbus::Connection,
}

/// Owns the name on the system bus (DBUS_SYSTEM_BUS_ADDRESS honoured) and
/// serves the object.
pub async fn start(
    health: Arc<Mutex<HealthSnapshot>>,
    paths: ConfigPaths,
    diag_dir: std::path::PathBuf,
    commands: mpsc::UnboundedSender<BusCommand>,
) -> zbus::Result<Bus> {
    let object = SensorObject {
        health,
        paths,
        diag_dir,
        commands,
    };
    let conn = zbus::connection::Builder::system()?
        .name(BUS_NAME)?
        .serve_at(OBJECT_PATH, object)?
        .build()
        .await?;
    Ok(Bus { conn })
}

impl Bus {
    /// ProviderChanged plus PropertiesChanged for what changed.
    pub async fn provider_changed(&self, old: &str, new: &str, reason: &str) {
        let iface = match self
            .conn
            .object_server()
            .interface::<_, SensorObject>(OBJECT_PATH)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                log::warn!("D-Bus: cannot signal the provider change: {e}");
                return;
            }
        };
        let emitter = iface.signal_emitter();
        if let Err(e) = SensorObject::provider_changed(emitter, old, new, reason).await {
            log::warn!("D-Bus: ProviderChanged: {e}");
        }
        let obj = iface.get().await;
        let _ = obj.supplementary_events_subsystem_changed(emitter).await;
        let _ = obj.ebpf_supplementary_event_provider_changed(emitter).await;
        let _ = obj.healthy_changed(emitter).await;
    }
}
