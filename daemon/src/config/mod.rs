//! Layered configuration: built-in defaults < `mdatp.yaml` < `conf.d/*.yaml`
//! (sorted) < `local.yaml` in the state directory (what the CLI and D-Bus
//! write) < `managed/*.yaml` (sorted; managed profiles win and lock the
//! keys they set).
//!
//! Each file is checked on its own first — YAML syntax, unknown keys,
//! wrong types (with the key path), values — so that every problem in
//! every file is reported at once with its file and key. The valid layers
//! are then merged by the `config` crate and deserialized into one
//! `FilterConfig`.

pub mod local;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::filters::{FilterConfig, KernelFilters};

/// Where the layers live (every path overridable for tests).
#[derive(Debug, Clone)]
pub struct ConfigPaths {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Replaces `<config_dir>/mdatp.yaml` as the base file.
    pub base_override: Option<PathBuf>,
}

impl ConfigPaths {
    pub fn base(&self) -> PathBuf {
        self.base_override
            .clone()
            .unwrap_or_else(|| self.config_dir.join("mdatp.yaml"))
    }

    pub fn local(&self) -> PathBuf {
        self.state_dir.join("local.yaml")
    }

    /// Every layer file that exists, lowest first, with its kind.
    pub fn layers(&self) -> Vec<(Layer, PathBuf)> {
        let mut out = Vec::new();
        let base = self.base();
        if base.exists() {
            out.push((Layer::Base, base));
        }
        out.extend(
            yaml_files(&self.config_dir.join("conf.d"))
                .into_iter()
                .map(|p| (Layer::DropIn, p)),
        );
        let local = self.local();
        if local.exists() {
            out.push((Layer::Local, local));
        }
        out.extend(
            yaml_files(&self.config_dir.join("managed"))
                .into_iter()
                .map(|p| (Layer::Managed, p)),
        );
        out
    }
}

/// `*.yaml` in `dir`, sorted by name; none if the directory is missing.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Base,
    DropIn,
    Local,
    Managed,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{}: {k}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found, all files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// The effective configuration and where each value came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub settings: FilterConfig,
    pub filters: KernelFilters,
    /// Dotted key → the file that set it last.
    pub sources: BTreeMap<String, PathBuf>,
    /// Dotted key → the managed profile that locks it.
    pub locked: BTreeMap<String, PathBuf>,
}

/// Dotted keys a YAML document sets ("exclude.paths", "events.file_open").
pub fn keys_of(v: &serde_yaml::Value) -> Vec<String> {
    fn walk(prefix: &str, v: &serde_yaml::Value, out: &mut Vec<String>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    let k = k
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| format!("{k:?}"));
                    let key = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    if !matches!(v, serde_yaml::Value::Null) {
        walk("", v, &mut out);
    }
    out
}

/// Checks one layer file on its own; returns its YAML text and keys.
fn check_file(path: &Path, problems: &mut Vec<ConfigProblem>) -> Option<(String, Vec<String>)> {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(ConfigProblem {
                file,
                key: None,
                message: format!("cannot read: {e}"),
            });
            return None;
        }
    };
    let value: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(ConfigProblem {
                file,
                key: None,
                message: format!("not valid YAML: {e}"),
            });
            return None;
        }
    };
    if matches!(value, serde_yaml::Value::Null) {
        return Some((String::new(), Vec::new()));
    }
    let parsed: Result<FilterConfig, _> = serde_path_to_error::deserialize(value.clone());
    let cfg = match parsed {
        Ok(c) => c,
        Err(e) => {
            let key = e.path().to_string();
            problems.push(ConfigProblem {
                file,
                key: (key != ".").then_some(key),
                message: e.inner().to_string(),
            });
            return None;
        }
    };
    if let Err(crate::filters::FilterError::Invalid { problems: p, .. }) = cfg.compile(&file) {
        problems.extend(p.into_iter().map(|one| ConfigProblem {
            file: file.clone(),
            key: Some(one.key),
            message: one.message,
        }));
        return None;
    }
    Some((text, keys_of(&value)))
}

pub fn load(paths: &ConfigPaths) -> Result<LoadedConfig, ConfigErrors> {
    let mut problems = Vec::new();
    let mut builder = config::Config::builder();
    let mut sources = BTreeMap::new();
    let mut locked = BTreeMap::new();
    for (layer, path) in paths.layers() {
        let Some((text, keys)) = check_file(&path, &mut problems) else {
            continue;
        };
        if text.is_empty() {
            continue;
        }
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Yaml));
        for k in keys {
            if layer == Layer::Managed {
                locked.insert(k.clone(), path.clone());
            }
            sources.insert(k, path.clone());
        }
    }
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    let merged = builder
        .build()
        .and_then(|c| c.try_deserialize::<FilterConfig>());
    let settings = merged.map_err(|e| {
        ConfigErrors(vec![ConfigProblem {
            file: "<merged layers>".into(),
            key: None,
            message: e.to_string(),
        }])
    })?;
    let filters = settings.compile("<merged layers>").map_err(|e| {
        ConfigErrors(vec![ConfigProblem {
            file: "<merged layers>".into(),
            key: None,
            message: e.to_string(),
        }])
    })?;
    Ok(LoadedConfig {
        settings,
        filters,
        sources,
        locked,
    })
}

impl LoadedConfig {
    /// Every effective value (dotted key → JSON text).
    pub fn effective(&self) -> BTreeMap<String, String> {
        let value = serde_yaml::to_value(&self.settings).unwrap_or(serde_yaml::Value::Null);
        let mut effective = BTreeMap::new();
        flatten_values("", &value, &mut effective);
        effective
    }

    /// One key: `value` (JSON text; absent when the key has no value of
    /// its own, such as an unset entry of a map), `source` (the file that
    /// set it, or `default`), `locked_by` (the managed profile, or empty).
    pub fn describe(&self, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(v) = self.effective().remove(key) {
            out.insert("value".into(), v);
        }
        let src = self
            .sources
            .get(key)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "default".into());
        out.insert("source".into(), src);
        let lock = self
            .locked
            .get(key)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        out.insert("locked_by".into(), lock);
        out
    }

    /// Every effective value with its source and lock, one per line.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.effective() {
            let src = self
                .sources
                .get(&k)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "default".into());
            let lock = self
                .locked
                .get(&k)
                .map(|p| format!("  [locked by {}]", p.display()))
                .unwrap_or_default();
            out.push_str(&format!("{k} = {v}  ({src}){lock}\n"));
        }
        out
    }
}

fn flatten_values(prefix: &str, v: &serde_yaml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_yaml::Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or("?");
                let key = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_values(&key, v, out);
            }
        }
        other => {
            let s = serde_json::to_string(other).unwrap_or_default();
            out.insert(prefix.to_string(), s);
        }
    }
}

#[cfg(test)]
mod tests;
