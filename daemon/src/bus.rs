//! The D-Bus interface object (`org.mdatp.Sensor1`): a thin adapter. It
//! reads the health the daemon keeps current, and sends everything else
//! to the daemon as commands, which owns the running configuration. Changing state is root only: the bus policy
//! says so, and the caller's uid is checked here again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mdatp_dbus::{BUS_NAME, OBJECT_PATH};

use crate::health_cell::{HealthCell, SharedDict};
use tokio::sync::{mpsc, oneshot};
use zbus::fdo;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};

fn owned(v: Value<'_>) -> Option<OwnedValue> {
    OwnedValue::try_from(v).ok()
}

/// Requests from the bus to the daemon, which owns the running state.
#[derive(Debug)]
pub enum BusCommand {
    Reload,
    /// The effective value of a key, as JSON text.
    GetConfig {
        key: String,
        reply: oneshot::Sender<Result<String, ConfigReply>>,
    },
    /// A key's value, the file that set it and the profile locking it.
    DescribeConfig {
        key: String,
        reply: oneshot::Sender<Result<BTreeMap<String, String>, ConfigReply>>,
    },
    /// The keys a layer file sets that are not in force (empty: all).
    NotInForce {
        file: String,
        reply: oneshot::Sender<Result<BTreeMap<String, String>, ConfigReply>>,
    },
    /// What SetConfig would do: the current and proposed values and
    /// whether it changes anything; nothing is written or applied.
    CheckConfig {
        key: String,
        value: String,
        reply: oneshot::Sender<Result<BTreeMap<String, String>, ConfigReply>>,
    },
    /// Set a key in local.yaml (value as YAML text), validate, apply.
    SetConfig {
        key: String,
        value: String,
        reply: oneshot::Sender<Result<String, ConfigReply>>,
    },
    Diagnostic {
        reply: oneshot::Sender<crate::diagnostic::Parts>,
    },
    /// The top paths and executables by events, and the seconds counted.
    HotSources {
        top: u32,
        reply: oneshot::Sender<HotTop>,
    },
}

/// Seconds counted, and (`path`|`executable`, name, events).
pub type HotTop = (f64, Vec<(&'static str, String, u64)>);

/// One BPF object of `EbpfStatistics`: kind (`map`, `program`), name,
/// id, kernel memory, runs and run time in the window, detail.
pub type BpfStatRow = (String, String, u32, u64, u64, u64, String);

/// The longest window `EbpfStatistics` enables run-time statistics for
/// (D-Bus callers time out after 25 s by default).
const MAX_STATS_SECONDS: u32 = 20;

/// Why a configuration read or change was refused.
#[derive(Debug)]
pub enum ConfigReply {
    Locked(String),
    UnknownKey(String),
    Invalid(String),
}

impl From<ConfigReply> for SensorError {
    fn from(r: ConfigReply) -> Self {
        match r {
            ConfigReply::Locked(m) => SensorError::Locked(m),
            ConfigReply::UnknownKey(key) => {
                fdo::Error::InvalidArgs(format!("{key}: not a configuration key")).into()
            }
            ConfigReply::Invalid(m) => SensorError::InvalidConfig(m),
        }
    }
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
    health: Arc<HealthCell>,
    /// Default directory of diagnostics archives.
    diag_dir: std::path::PathBuf,
    commands: mpsc::UnboundedSender<BusCommand>,
}

impl SensorObject {
    /// Sends a command and waits for the daemon's answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> BusCommand,
    ) -> Result<T, SensorError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| fdo::Error::Failed("the daemon is stopping".into()))?;
        rx.await
            .map_err(|_| fdo::Error::Failed("the daemon did not answer".into()).into())
    }
}

/// Whether a program the kernel names `name` (its first 15 bytes) is one
/// of ours entered by tail call (run statistics are the entry program's).
fn entered_by_tail_call(name: &str) -> bool {
    !name.is_empty()
        && mdatp_bpf::programs()
            .any(|p| matches!(p.hook, mdatp_bpf::Hook::TailCall(..)) && p.name.starts_with(name))
}

/// What a caller other than root is refused.
#[derive(Clone, Copy)]
enum RootOnly {
    /// Changing the sensor.
    Change,
    /// Reading its configuration: the exclusions and filters are the
    /// list of what the sensor does not watch, an attacker's map.
    ReadConfig,
    /// Reading what other users did (the hot paths and executables).
    ReadActivity,
}

/// Root only, checked with the bus's own record of the caller.
async fn require_root(
    conn: &zbus::Connection,
    hdr: &zbus::message::Header<'_>,
    what: RootOnly,
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
        let msg = match what {
            RootOnly::Change => format!("uid {uid} may read the sensor's health but not change it"),
            RootOnly::ReadConfig => format!(
                "uid {uid} may read the sensor's health but not its configuration (root only: it lists what the sensor does not watch)"
            ),
            RootOnly::ReadActivity => format!(
                "uid {uid} may read the sensor's health but not the hot event sources (root only: they name other users' files and programs)"
            ),
        };
        return Err(fdo::Error::AccessDenied(msg).into());
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
    async fn health(&self) -> SharedDict {
        self.health.dict()
    }

    async fn get_config(
        &self,
        key: String,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedValue, SensorError> {
        require_root(conn, &hdr, RootOnly::ReadConfig).await?;
        let value = self
            .ask(|reply| BusCommand::GetConfig { key, reply })
            .await??;
        owned(Value::from(value)).ok_or_else(|| fdo::Error::Failed("value".into()).into())
    }

    /// `value` (JSON text), `source` (file or `default`), `locked_by`.
    async fn describe_config(
        &self,
        key: String,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<HashMap<String, String>, SensorError> {
        require_root(conn, &hdr, RootOnly::ReadConfig).await?;
        let d = self
            .ask(|reply| BusCommand::DescribeConfig { key, reply })
            .await??;
        Ok(d.into_iter().collect())
    }

    /// The keys the layer file `file` sets whose value in force is not the
    /// file's: key → the value in force and its source. Empty when the
    /// whole file is in force (automation waits for that after a reload).
    async fn not_in_force(
        &self,
        file: String,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<HashMap<String, String>, SensorError> {
        require_root(conn, &hdr, RootOnly::ReadConfig).await?;
        let d = self
            .ask(|reply| BusCommand::NotInForce { file, reply })
            .await??;
        Ok(d.into_iter().collect())
    }

    /// A dry run of SetConfig: `current`, `proposed`, `changed`
    /// (`true`/`false`), `source`; refused (locked, unknown, invalid)
    /// with the same errors. Nothing is written or applied.
    async fn check_config(
        &self,
        key: String,
        value: OwnedValue,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<HashMap<String, String>, SensorError> {
        require_root(conn, &hdr, RootOnly::ReadConfig).await?;
        let value = yaml_text(&value)?;
        let d = self
            .ask(|reply| BusCommand::CheckConfig { key, value, reply })
            .await??;
        Ok(d.into_iter().collect())
    }

    async fn set_config(
        &self,
        key: String,
        value: OwnedValue,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), SensorError> {
        require_root(conn, &hdr, RootOnly::Change).await?;
        let value = yaml_text(&value)?;
        self.ask(|reply| BusCommand::SetConfig { key, value, reply })
            .await??;
        Ok(())
    }

    async fn reload(
        &self,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), SensorError> {
        require_root(conn, &hdr, RootOnly::Change).await?;
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
        require_root(conn, &hdr, RootOnly::Change).await?;
        let dir = if directory.is_empty() {
            self.diag_dir.clone()
        } else {
            std::path::PathBuf::from(directory)
        };
        let parts = self.ask(|reply| BusCommand::Diagnostic { reply }).await?;
        let path = tokio::task::spawn_blocking(move || crate::diagnostic::create(&dir, parts))
            .await
            .map_err(|e| fdo::Error::Failed(e.to_string()))?
            .map_err(|e| fdo::Error::Failed(format!("{e}: {}", e.source)))?;
        Ok(path.display().to_string())
    }

    /// The `top` paths and executables by events since the sensor
    /// started: the seconds counted, and (`path`|`executable`, name,
    /// events) highest first.
    async fn hot_event_sources(
        &self,
        top: u32,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(f64, Vec<(String, String, u64)>), SensorError> {
        require_root(conn, &hdr, RootOnly::ReadActivity).await?;
        let (secs, rows) = self
            .ask(|reply| BusCommand::HotSources { top, reply })
            .await?;
        Ok((
            secs,
            rows.into_iter()
                .map(|(t, k, n)| (t.to_string(), k, n))
                .collect(),
        ))
    }

    /// The sensor's BPF maps and programs with their kernel memory, and
    /// each program's runs and run time over `seconds` (1–20) with the
    /// kernel's run-time statistics enabled for that window only. The
    /// string is empty, or says why run counts are unavailable.
    async fn ebpf_statistics(
        &self,
        seconds: u32,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(String, Vec<BpfStatRow>), SensorError> {
        require_root(conn, &hdr, RootOnly::Change).await?;
        if !(1..=MAX_STATS_SECONDS).contains(&seconds) {
            return Err(fdo::Error::InvalidArgs(format!(
                "seconds {seconds}: expected 1 to {MAX_STATS_SECONDS}"
            ))
            .into());
        }
        // Reads /proc/self only: the event loop is not involved.
        let (objects, note) =
            crate::own_usage::sample_bpf(std::time::Duration::from_secs(seconds.into())).await;
        let rows = objects
            .into_iter()
            .map(|o| {
                let detail = if o.kind == crate::own_usage::BpfKind::Program && entered_by_tail_call(&o.name) {
                    format!(
                        "{}; entered by tail call: the kernel counts its runs and time in its dispatcher's",
                        o.detail
                    )
                } else {
                    o.detail
                };
                (
                    o.kind.as_str().to_string(),
                    o.name,
                    o.id,
                    o.memlock,
                    o.run_cnt,
                    o.run_time_ns,
                    detail,
                )
            })
            .collect();
        Ok((note.unwrap_or_default(), rows))
    }

    #[zbus(property)]
    async fn supplementary_events_subsystem(&self) -> String {
        self.health
            .read(|h| h.supplementary_events_subsystem.clone())
    }

    #[zbus(property)]
    async fn ebpf_supplementary_event_provider(&self) -> String {
        self.health
            .read(|h| h.ebpf_supplementary_event_provider.clone())
    }

    #[zbus(property)]
    async fn healthy(&self) -> bool {
        self.health.read(|h| h.healthy)
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
    health: Arc<HealthCell>,
    diag_dir: std::path::PathBuf,
    commands: mpsc::UnboundedSender<BusCommand>,
) -> zbus::Result<Bus> {
    let object = SensorObject {
        health,
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
