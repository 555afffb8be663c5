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
    /// A file read in place of one layer file (which need not exist yet).
    pub candidate: Option<Candidate>,
}

/// A file standing in for a layer file: the tree is checked as it will be
/// once the file is installed (`mdatpd validate --as`, which Ansible's
/// and Puppet's `validate` run on the rendered profile before it replaces
/// the real one), and the `--check` dry run of a local.yaml change.
/// Problems and sources name the layer file, not the stand-in.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub stands_for: PathBuf,
    pub read_from: PathBuf,
}

/// The stand-in is not at a place the daemon reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a configuration layer: it must be {base}, {dir}/conf.d/*.yaml, {local} or {dir}/managed/*.yaml",
    base = .1.display(), dir = .2.display(), local = .3.display()
)]
pub struct NotALayer(pub String, pub PathBuf, pub PathBuf, pub PathBuf);

impl ConfigPaths {
    /// A whole tree under one directory: `<root>/etc` and `<root>/state`
    /// (tests, the fuzz target).
    pub fn under(root: &Path) -> Self {
        Self {
            config_dir: root.join("etc"),
            state_dir: root.join("state"),
            base_override: None,
            candidate: None,
        }
    }

    pub fn base(&self) -> PathBuf {
        self.base_override
            .clone()
            .unwrap_or_else(|| self.config_dir.join("mdatp.yaml"))
    }

    pub fn local(&self) -> PathBuf {
        self.state_dir.join("local.yaml")
    }

    /// Every layer file that exists (or that the candidate stands for),
    /// lowest first, with its kind.
    pub fn layers(&self) -> Result<Vec<(Layer, PathBuf)>, NotALayer> {
        // Where the candidate goes: checked once here, then added to its
        // layer's list (a directory layer's file need not exist yet).
        let stands_for = match &self.candidate {
            None => None,
            Some(c) => {
                let layer = self.layer_of(&c.stands_for).ok_or_else(|| {
                    NotALayer(
                        c.stands_for.display().to_string(),
                        self.base(),
                        self.config_dir.clone(),
                        self.local(),
                    )
                })?;
                Some((layer, c.stands_for.as_path()))
            }
        };
        let wanted = |p: &Path| p.exists() || stands_for.is_some_and(|(_, s)| s == p);
        let dir_files = |layer: Layer, dir: PathBuf| {
            let mut files = yaml_files(&dir);
            if let Some((l, s)) = stands_for
                && l == layer
                && !files.iter().any(|f| f == s)
            {
                files.push(s.to_path_buf());
                files.sort();
            }
            files.into_iter().map(move |p| (layer, p))
        };
        let mut out = Vec::new();
        let base = self.base();
        if wanted(&base) {
            out.push((Layer::Base, base));
        }
        out.extend(dir_files(Layer::DropIn, self.config_dir.join("conf.d")));
        let local = self.local();
        if wanted(&local) {
            out.push((Layer::Local, local));
        }
        out.extend(dir_files(Layer::Managed, self.config_dir.join("managed")));
        Ok(out)
    }

    /// Which layer a file would be, if any.
    pub fn layer_of(&self, path: &Path) -> Option<Layer> {
        let in_dir = |d: &str| {
            path.parent() == Some(self.config_dir.join(d).as_path())
                && path.extension().is_some_and(|e| e == "yaml")
        };
        if path == self.base() {
            Some(Layer::Base)
        } else if path == self.local() {
            Some(Layer::Local)
        } else if in_dir("conf.d") {
            Some(Layer::DropIn)
        } else if in_dir("managed") {
            Some(Layer::Managed)
        } else {
            None
        }
    }

    /// The file to read for a layer: the candidate's stand-in for the
    /// file it stands for.
    fn read_path<'a>(&'a self, layer_file: &'a Path) -> &'a Path {
        match &self.candidate {
            Some(c) if c.stands_for == layer_file => &c.read_from,
            _ => layer_file,
        }
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

/// Checks one layer file on its own (read from `read`, named `path`);
/// returns its YAML text and keys.
fn check_file(
    path: &Path,
    read: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<(String, Vec<String>)> {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(read) {
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
    let layers = paths.layers().map_err(|e| {
        ConfigErrors(vec![ConfigProblem {
            file: e.0.clone(),
            key: None,
            message: e.to_string(),
        }])
    })?;
    for (layer, path) in layers {
        let Some((text, keys)) = check_file(&path, paths.read_path(&path), &mut problems) else {
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

/// Every value of `settings` (dotted key → JSON text).
fn flat(settings: &FilterConfig) -> BTreeMap<String, String> {
    let value = serde_yaml::to_value(settings).unwrap_or(serde_yaml::Value::Null);
    let mut out = BTreeMap::new();
    flatten_values("", &value, &mut out);
    out
}

impl LoadedConfig {
    /// Every effective value (dotted key → JSON text).
    pub fn effective(&self) -> BTreeMap<String, String> {
        flat(&self.settings)
    }

    /// The keys the layer file `file` sets whose value in force here is
    /// not the file's, each with the value in force and the file it comes
    /// from; empty when all of the file is in force. Automation asks the
    /// running daemon this after a reload (`mdatp config in-force`): it
    /// tells "not applied yet" and "overridden by a later layer" apart
    /// from done.
    pub fn not_in_force(
        &self,
        paths: &ConfigPaths,
        file: &Path,
    ) -> Result<BTreeMap<String, String>, ConfigErrors> {
        let one = |message: String| {
            ConfigErrors(vec![ConfigProblem {
                file: file.display().to_string(),
                key: None,
                message,
            }])
        };
        if paths.layer_of(file).is_none() {
            return Err(one(
                "not a configuration layer of this sensor (mdatpd explain lists them)".into(),
            ));
        }
        let mut problems = Vec::new();
        let Some((text, keys)) = check_file(file, file, &mut problems) else {
            return Err(ConfigErrors(problems));
        };
        let alone: FilterConfig = if text.is_empty() {
            FilterConfig::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| one(e.to_string()))?
        };
        let wanted = flat(&alone);
        let running = self.effective();
        let mut out = BTreeMap::new();
        for k in keys {
            let in_force = running.get(&k);
            if in_force != wanted.get(&k) {
                let source = self
                    .sources
                    .get(&k)
                    .map_or_else(|| "default".to_string(), |p| p.display().to_string());
                let why = format!(
                    "{} (from {source}) instead of {}",
                    in_force.map_or("(not set)", String::as_str),
                    wanted.get(&k).map_or("(not set)", String::as_str)
                );
                out.insert(k, why);
            }
        }
        Ok(out)
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
