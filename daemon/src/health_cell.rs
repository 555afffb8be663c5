//! The health report shared between the event loop (its one writer,
//! after every change and once a second) and the D-Bus object (any
//! number of readers). `Health()` is the one method any local user may
//! call: its dictionary is built once per report and shared, so a flood
//! of calls costs the serialization of each reply and nothing more — it
//! cost a JSON tree and a dictionary per call before, and a flood of
//! 6,000 calls/s took 80% of a core from the event loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mdatp_dbus::Health;
use zbus::zvariant::{OwnedValue, Signature, Type};

type Dict = HashMap<String, OwnedValue>;

#[derive(Default)]
struct Published {
    health: Health,
    /// Built on the first read of this report.
    dict: Option<Arc<Dict>>,
}

#[derive(Default)]
pub struct HealthCell {
    inner: Mutex<Published>,
}

/// `Health()`'s reply: the shared dictionary, serialized as `a{sv}`.
pub struct SharedDict(Arc<Dict>);

impl serde::Serialize for SharedDict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Type for SharedDict {
    const SIGNATURE: &'static Signature = <Dict as Type>::SIGNATURE;
}

impl HealthCell {
    /// Publishes a new report (the old dictionary is dropped with it).
    pub fn set(&self, health: Health) {
        if let Ok(mut p) = self.inner.lock() {
            *p = Published { health, dict: None };
        }
    }

    /// A copy of the report in force.
    pub fn get(&self) -> Health {
        self.read(|h| h.clone())
    }

    /// Reads one part of the report without copying the rest.
    pub fn read<T: Default>(&self, f: impl FnOnce(&Health) -> T) -> T {
        self.inner.lock().map(|p| f(&p.health)).unwrap_or_default()
    }

    /// The report as `Health()` answers it, built once per report.
    pub fn dict(&self) -> SharedDict {
        let Ok(mut p) = self.inner.lock() else {
            return SharedDict(Arc::default());
        };
        let p = &mut *p;
        let dict = p
            .dict
            .get_or_insert_with(|| Arc::new(p.health.to_dict()))
            .clone();
        SharedDict(dict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_report_replaces_the_dictionary_built_for_the_last() {
        let cell = HealthCell::default();
        let first = Health {
            healthy: true,
            ..Health::default()
        };
        cell.set(first.clone());
        let a = cell.dict();
        assert_eq!(a.0.as_ref(), &first.to_dict());
        assert!(Arc::ptr_eq(&a.0, &cell.dict().0), "built once per report");
        let second = Health {
            healthy: false,
            ..first
        };
        cell.set(second.clone());
        assert_eq!(cell.dict().0.as_ref(), &second.to_dict());
        assert!(!cell.read(|h| h.healthy));
    }
}
