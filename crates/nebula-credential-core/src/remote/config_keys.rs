//! Deprecated configuration keys, accepted for one release: [`rename_keys`] moves each
//! old key of a configuration table to its new name with one warning, and refuses a
//! table that sets both; [`rename_values`] does the same for renamed values of one key.
//! [`renamed_table`] applies the renames while a configuration deserialises, so every
//! format serde reads (TOML, JSON, YAML) accepts the old names.
//!
//! A configuration struct opts in with serde's `remote = "Self"`, which turns its derived
//! `Deserialize` into an inherent function the trait implementation calls on the
//! upgraded table:
//!
//! ```
//! use serde::{Deserialize, Deserializer, Serialize, Serializer};
//! use nebula_credential_core::remote::config_keys;
//!
//! #[derive(Debug, Default, Deserialize, Serialize)]
//! #[serde(remote = "Self", default, deny_unknown_fields)]
//! struct Settings {
//!     endpoint: Option<String>,
//! }
//!
//! impl<'de> Deserialize<'de> for Settings {
//!     fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
//!         let table = config_keys::renamed_table(d, "example", &[("endpoint_url", "endpoint")])?;
//!         Settings::deserialize(serde_json::Value::Object(table)).map_err(serde::de::Error::custom)
//!     }
//! }
//!
//! impl Serialize for Settings {
//!     fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
//!         Settings::serialize(self, s)
//!     }
//! }
//!
//! let old: Settings = serde_json::from_str(r#"{"endpoint_url": "http://127.0.0.1:1"}"#).unwrap();
//! assert_eq!(old.endpoint.as_deref(), Some("http://127.0.0.1:1"));
//! let both = serde_json::from_str::<Settings>(r#"{"endpoint_url": "a", "endpoint": "b"}"#);
//! assert!(both.unwrap_err().to_string().contains("endpoint_url"));
//! ```

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ConfigError;

/// A configuration table: the keys and values of one configuration, as deserialised.
pub type Table = Map<String, Value>;

/// Moves each `(old, new)` of `renames` present in `table` to `new`, with one warning per
/// old key found. A table that sets both names is refused with a [`ConfigError`] naming
/// both, since which one was meant cannot be known.
pub fn rename_keys(provider: &'static str, table: &mut Table, renames: &[(&str, &str)]) -> Result<(), ConfigError> {
    for (old, new) in renames {
        let Some(value) = table.remove(*old) else {
            continue;
        };
        if table.contains_key(*new) {
            return Err(both_set(provider, old, new));
        }
        warn_renamed("configuration key", old, new);
        table.insert((*new).to_string(), value);
    }
    Ok(())
}

/// Replaces each old string value of `key` in `renames` (`(old, new)`) by its new one,
/// with one warning: a value renamed while its key stays.
pub fn rename_values(table: &mut Table, key: &str, renames: &[(&str, &str)]) {
    let Some(Value::String(value)) = table.get_mut(key) else {
        return;
    };
    if let Some((old, new)) = renames.iter().find(|(old, _)| old == value) {
        warn_renamed(
            "configuration value",
            &format!("{key} = {old:?}"),
            &format!("{key} = {new:?}"),
        );
        *value = (*new).to_string();
    }
}

/// The [`ConfigError`] of a configuration that sets a key under both its old and its new name.
pub fn both_set(provider: &'static str, old: &str, new: &str) -> ConfigError {
    ConfigError::new(
        provider,
        new,
        format!("is set together with its deprecated name `{old}`; remove `{old}` and keep `{new}`"),
    )
}

/// Deserialises a configuration table from `deserializer` and applies `renames` with
/// [`rename_keys`]; a refusal becomes the deserialiser's error. The caller deserialises
/// its struct from the returned table (see the module example).
pub fn renamed_table<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    provider: &'static str,
    renames: &[(&str, &str)],
) -> Result<Table, D::Error> {
    let mut table = Table::deserialize(deserializer)?;
    rename_keys(provider, &mut table, renames).map_err(serde::de::Error::custom)?;
    Ok(table)
}

/// The one warning about a deprecated name still in use: `what` (`configuration key`,
/// `environment variable`, …) `old` is deprecated, use `new`. For renames the table
/// functions cannot express (a key whose values change shape too).
pub fn warn_renamed(what: &str, old: &str, new: &str) {
    tracing::warn!("{what} `{old}` is deprecated and will be removed in the next release; use `{new}` instead");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RENAMES: &[(&str, &str)] = &[
        ("endpoint_url", "endpoint"),
        ("address", "endpoint"),
        ("deletion", "delete_mode"),
    ];

    fn table(v: Value) -> Table {
        match v {
            Value::Object(t) => t,
            _ => unreachable!(),
        }
    }

    #[test]
    fn old_keys_move_to_their_new_names() {
        let mut t = table(json!({"endpoint_url": "http://127.0.0.1:1", "deletion": "force", "region": "x"}));
        rename_keys("aws", &mut t, RENAMES).unwrap();
        assert_eq!(
            Value::Object(t),
            json!({"endpoint": "http://127.0.0.1:1", "delete_mode": "force", "region": "x"})
        );
    }

    #[test]
    fn new_keys_pass_unchanged() {
        let mut t = table(json!({"endpoint": "e", "delete_mode": "soft"}));
        let before = t.clone();
        rename_keys("aws", &mut t, RENAMES).unwrap();
        assert_eq!(t, before);
    }

    #[test]
    fn setting_both_names_is_refused_naming_both() {
        let mut t = table(json!({"endpoint_url": "a", "endpoint": "b"}));
        let e = rename_keys("aws", &mut t, RENAMES).unwrap_err();
        assert_eq!((e.provider(), e.field()), ("aws", "endpoint"));
        assert!(
            e.rule().contains("`endpoint_url`") && e.rule().contains("remove"),
            "{e}"
        );
        let mut t = table(json!({"endpoint_url": "a", "address": "b"}));
        assert!(rename_keys("aws", &mut t, RENAMES).is_err(), "two old names of one key");
    }

    #[test]
    fn renamed_values_are_replaced() {
        let mut t = table(json!({"delete_mode": "destroy", "other": "destroy"}));
        rename_values(&mut t, "delete_mode", &[("destroy", "purge")]);
        assert_eq!(Value::Object(t), json!({"delete_mode": "purge", "other": "destroy"}));
        let mut t = table(json!({"delete_mode": "soft"}));
        rename_values(&mut t, "delete_mode", &[("destroy", "purge")]);
        assert_eq!(t["delete_mode"], "soft");
    }

    #[test]
    fn one_warning_per_old_key() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::fmt::MakeWriter;

        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Capture {
            type Writer = Capture;
            fn make_writer(&'a self) -> Self::Writer {
                self.clone()
            }
        }

        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut t = table(json!({"endpoint_url": "a", "deletion": "force"}));
            rename_keys("aws", &mut t, RENAMES).unwrap();
        });
        let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.matches("WARN").count(), 2, "{logs}");
        assert!(
            logs.contains("`endpoint_url` is deprecated") && logs.contains("use `endpoint`"),
            "{logs}"
        );
        assert!(
            logs.contains("`deletion` is deprecated") && logs.contains("use `delete_mode`"),
            "{logs}"
        );
    }

    #[test]
    fn a_struct_deserialises_through_the_renamed_table() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Settings {
            endpoint: Option<String>,
        }
        let from = |v: Value| -> Result<Settings, serde_json::Error> {
            let t = renamed_table(v, "x", &[("endpoint_url", "endpoint")])?;
            Settings::deserialize(Value::Object(t))
        };
        assert_eq!(
            from(json!({"endpoint_url": "a"})).unwrap().endpoint.as_deref(),
            Some("a")
        );
        let e = from(json!({"endpoint_url": "a", "endpoint": "b"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("endpoint_url") && e.contains("endpoint"), "{e}");
        assert!(from(json!({"nope": 1})).is_err(), "unknown keys are still refused");
    }
}
