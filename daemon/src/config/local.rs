//! `local.yaml` in the state directory: the settings the CLI and D-Bus
//! change. A key a managed profile sets cannot be changed here.

use std::path::PathBuf;

use super::{Candidate, ConfigErrors, ConfigPaths, LoadedConfig, load};

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("{key} is managed by {file}: change it there")]
    Locked { key: String, file: PathBuf },
    #[error("{key}: not a configuration key")]
    UnknownKey { key: String },
    #[error("{key}: value {value:?} is not valid YAML: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("the change was refused:\n{0}")]
    Invalid(ConfigErrors),
    #[error("write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Sets `key` (dotted, e.g. `ebpf_supplementary_event_provider` or
/// `folding.window_ms`) to `value` (a YAML scalar or list) in local.yaml.
/// The result is validated as a whole, once, and returned to be applied;
/// an invalid result is not written. `running` is the configuration in
/// force (its managed locks decide what may change).
pub fn set(
    paths: &ConfigPaths,
    running: &LoadedConfig,
    key: &str,
    value: &str,
) -> Result<LoadedConfig, SetError> {
    let path = paths.local();
    let old = std::fs::read_to_string(&path).ok();
    let text = with_value(running, old.as_deref(), key, value)?;
    write_atomic(&path, &text)?;
    // The tree as it is now: a managed profile added since the last
    // reload locks its keys too.
    let loaded = load(paths)
        .map_err(SetError::Invalid)
        .and_then(|l| locked(&l, key).map(|()| l));
    if loaded.is_err() {
        // Put the old file back: a refused change changes nothing.
        let _ = match &old {
            Some(t) => write_atomic(&path, t),
            None => std::fs::remove_file(&path).map_err(|source| SetError::Io {
                path: path.clone(),
                source,
            }),
        };
    }
    loaded
}

/// What `set` would do, without doing it: the whole tree with the change,
/// validated (the same errors as `set`), from a private copy of
/// local.yaml; nothing of the running sensor or its files changes.
pub fn check(
    paths: &ConfigPaths,
    running: &LoadedConfig,
    key: &str,
    value: &str,
) -> Result<LoadedConfig, SetError> {
    let old = std::fs::read_to_string(paths.local()).ok();
    let text = with_value(running, old.as_deref(), key, value)?;
    // In the state directory: the unit's sandbox (ProtectSystem=strict)
    // leaves /tmp read-only to the daemon — the VM test's busctl
    // CheckConfig failed there with a scratch copy in /tmp.
    let io = |source| SetError::Io {
        path: paths.state_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&paths.state_dir).map_err(io)?;
    let scratch = tempfile::Builder::new()
        .prefix(".check-")
        .tempdir_in(&paths.state_dir)
        .map_err(io)?;
    let trial = ConfigPaths {
        candidate: Some(Candidate {
            stands_for: paths.local(),
            read_from: scratch.path().join("local.yaml"),
        }),
        ..paths.clone()
    };
    write_atomic(&scratch.path().join("local.yaml"), &text)?;
    load(&trial)
        .map_err(SetError::Invalid)
        .and_then(|l| locked(&l, key).map(|()| l))
}

/// local.yaml's text (`old`, or an empty document) with `key` set to
/// `value`; refused when locked, unknown or not YAML.
fn with_value(
    running: &LoadedConfig,
    old: Option<&str>,
    key: &str,
    value: &str,
) -> Result<String, SetError> {
    locked(running, key)?;
    if !known(key) {
        return Err(SetError::UnknownKey {
            key: key.to_string(),
        });
    }
    let parsed: serde_yaml::Value =
        serde_yaml::from_str(value).map_err(|e| SetError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: e.to_string(),
        })?;
    let mut doc: serde_yaml::Value = old
        .and_then(|t| serde_yaml::from_str(t).ok())
        .filter(|v: &serde_yaml::Value| v.is_mapping())
        .unwrap_or_else(|| serde_yaml::Value::Mapping(Default::default()));
    let mut node = &mut doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let serde_yaml::Value::Mapping(m) = node else {
            return Err(SetError::UnknownKey {
                key: key.to_string(),
            });
        };
        let k = serde_yaml::Value::String((*part).to_string());
        if i == parts.len() - 1 {
            m.insert(k, parsed.clone());
            break;
        }
        node = m
            .entry(k)
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    }
    Ok(serde_yaml::to_string(&doc).unwrap_or_default())
}

/// Whether `key` is a setting of the schema, walking the defaults: a
/// field at every level, or an entry of a map-typed setting
/// (`events.file_open`: maps are empty by default; the value check then
/// says whether the entry is valid).
pub fn is_key(key: &str) -> bool {
    known(key)
}

fn known(key: &str) -> bool {
    let Ok(mut node) = serde_yaml::to_value(crate::filters::FilterConfig::default()) else {
        return false;
    };
    for part in key.split('.') {
        let serde_yaml::Value::Mapping(m) = node else {
            return false;
        };
        if m.is_empty() {
            return true;
        }
        match m.get(part) {
            Some(v) => node = v.clone(),
            None => return false,
        }
    }
    true
}

/// Err(Locked) when a managed profile of `config` sets `key`, one of its
/// parents, or one of its children.
fn locked(config: &LoadedConfig, key: &str) -> Result<(), SetError> {
    let file = config.locked.get(key).or_else(|| {
        config
            .locked
            .iter()
            .find(|(k, _)| key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}.")))
            .map(|(_, f)| f)
    });
    match file {
        Some(file) => Err(SetError::Locked {
            key: key.to_string(),
            file: file.clone(),
        }),
        None => Ok(()),
    }
}

fn write_atomic(path: &PathBuf, text: &str) -> Result<(), SetError> {
    let io = |source| SetError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
