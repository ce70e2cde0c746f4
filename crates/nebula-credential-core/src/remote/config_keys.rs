//! Deprecated configuration keys, accepted for one release: [`rename_keys`] moves each
//! old key of a configuration table to its new name with one warning, and refuses a
//! table that sets both; [`rename_values`] does the same for renamed values of one key.
//! [`Renamed`] applies the renames while a configuration deserialises, so every format
//! serde reads (TOML, JSON, YAML) accepts the old names, and the format's own error
//! positions (TOML's line and column) are kept (see its example).

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

/// Entries of a configuration table, as an [`Upgrade`] returns them: `(key, value)`.
pub type Entries = Vec<(&'static str, Value)>;

/// An old key whose value changes shape as well as name: its value is read as a whole and
/// [`upgrade`](Self::upgrade) returns the entries that replace it. Setting it together with
/// any of the keys it [`claims`](Self::claims) is refused, as for a plain rename.
#[derive(Clone, Copy)]
pub struct Upgrade {
    /// The deprecated key, e.g. `deletion`.
    pub old: &'static str,
    /// The keys its value becomes, e.g. `delete_mode` and `recovery_window_days`.
    pub claims: &'static [&'static str],
    /// The new entries for the old key's value (which it should check and refuse).
    pub upgrade: fn(Value) -> Result<Entries, ConfigError>,
}

/// The deprecated names of one configuration struct, applied while it deserialises by
/// [`Renamed`].
#[derive(Clone, Copy)]
pub struct Renames {
    /// The backend, for [`ConfigError`]s.
    pub provider: &'static str,
    /// Renamed keys, `(old, new)`.
    pub keys: &'static [(&'static str, &'static str)],
    /// Renamed values: `(key, &[(old, new)])`, as [`rename_values`].
    pub values: &'static [(&'static str, &'static [(&'static str, &'static str)])],
    /// Old keys whose value changes shape too.
    pub upgrades: &'static [Upgrade],
}

/// A deserialiser of a configuration struct that reads the deprecated names of
/// [`Renames`] as their new ones while it deserialises, so the format's own error
/// positions (TOML's line and column) are kept for every other key and value. The struct
/// derives its `Deserialize` with serde's `remote = "Self"` and calls that derived
/// function with a `Renamed`:
///
/// ```
/// use serde::{Deserialize, Deserializer};
/// use nebula_credential_core::remote::config_keys::{Renamed, Renames};
///
/// #[derive(Debug, Default, Deserialize)]
/// #[serde(remote = "Self", default, deny_unknown_fields)]
/// struct Settings {
///     endpoint: Option<String>,
///     port: u16,
/// }
///
/// const RENAMES: Renames = Renames {
///     provider: "example",
///     keys: &[("endpoint_url", "endpoint")],
///     values: &[],
///     upgrades: &[],
/// };
///
/// impl<'de> Deserialize<'de> for Settings {
///     fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
///         Settings::deserialize(Renamed::new(d, RENAMES))
///     }
/// }
///
/// let old: Settings = toml::from_str("endpoint_url = \"http://127.0.0.1:1\"").unwrap();
/// assert_eq!(old.endpoint.as_deref(), Some("http://127.0.0.1:1"));
/// let e = toml::from_str::<Settings>("endpoint_url = \"a\"\nport = \"x\"").unwrap_err();
/// assert!(e.to_string().contains("line 2"), "{e}");
/// ```
pub struct Renamed<D> {
    inner: D,
    renames: Renames,
}

impl<D> Renamed<D> {
    /// Wraps `inner`, the deserialiser of the configuration table.
    pub fn new(inner: D, renames: Renames) -> Self {
        Renamed { inner, renames }
    }
}

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for Renamed<D> {
    type Error = D::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(RenamedVisitor {
            visitor,
            renames: self.renames,
        })
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            RenamedVisitor {
                visitor,
                renames: self.renames,
            },
        )
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

struct RenamedVisitor<V> {
    visitor: V,
    renames: Renames,
}

impl<'de, V: serde::de::Visitor<'de>> serde::de::Visitor<'de> for RenamedVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(RenamedMap {
            map,
            renames: self.renames,
            seen: Vec::new(),
            pending: std::collections::VecDeque::new(),
            value: Pending::None,
        })
    }
}

/// What the next value of a [`RenamedMap`] is.
enum Pending {
    /// The underlying map's value, as is.
    None,
    /// The underlying map's value, with the renamed values of this list.
    Values(&'static [(&'static str, &'static str)], &'static str),
    /// A value an [`Upgrade`] produced.
    Upgraded(Value),
}

struct RenamedMap<A> {
    map: A,
    renames: Renames,
    /// Keys given so far, each with the deprecated name it came from.
    seen: Vec<(String, Option<&'static str>)>,
    /// Entries an upgrade produced, not yet handed out.
    pending: std::collections::VecDeque<(&'static str, Value)>,
    value: Pending,
}

/// Records `key` (given under `old`, if renamed) in `seen`, refusing a key set under both
/// its old and its new name.
fn note(
    provider: &'static str,
    seen: &mut Vec<(String, Option<&'static str>)>,
    key: &str,
    old: Option<&'static str>,
) -> Result<(), ConfigError> {
    if let Some((_, before)) = seen.iter().find(|(k, _)| k == key)
        && let Some(old) = old.or(*before)
    {
        return Err(both_set(provider, old, key));
    }
    seen.push((key.to_string(), old));
    Ok(())
}

/// The key of the underlying map, renamed, as the struct's own field seed sees it.
struct KeySeed<'a, K> {
    seed: K,
    renames: Renames,
    seen: &'a mut Vec<(String, Option<&'static str>)>,
    value: &'a mut Pending,
}

/// What [`KeySeed`] found: a field for the struct, or an upgraded key to expand.
enum Key<T, K> {
    Field(T),
    /// The key of an upgrade, with the seed back for the entries it becomes.
    Upgrade(Upgrade, K),
}

impl<'de, K: serde::de::DeserializeSeed<'de>> serde::de::DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value, K>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        use serde::de::{Error, IntoDeserializer};
        let key = String::deserialize(d)?;
        let r = self.renames;
        if let Some(up) = r.upgrades.iter().find(|u| u.old == key) {
            for claimed in up.claims {
                note(r.provider, self.seen, claimed, Some(up.old)).map_err(D::Error::custom)?;
            }
            return Ok(Key::Upgrade(*up, self.seed));
        }
        let (key, old) = match r.keys.iter().find(|(old, _)| *old == key) {
            Some((old, new)) => (new.to_string(), Some(*old)),
            None => (key, None),
        };
        note(r.provider, self.seen, &key, old).map_err(D::Error::custom)?;
        if let Some(old) = old {
            warn_renamed("configuration key", old, &key);
        }
        if let Some((k, values)) = r.values.iter().find(|(k, _)| *k == key) {
            *self.value = Pending::Values(values, k);
        }
        let de: serde::de::value::StringDeserializer<D::Error> = key.into_deserializer();
        self.seed.deserialize(de).map(Key::Field)
    }
}

/// A value read with its renamed values replaced, then handed to the struct's seed.
struct ValueSeed<S> {
    seed: S,
    key: &'static str,
    values: &'static [(&'static str, &'static str)],
}

impl<'de, S: serde::de::DeserializeSeed<'de>> serde::de::DeserializeSeed<'de> for ValueSeed<S> {
    type Value = S::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        use serde::de::Error;
        let mut table = Table::from_iter([(self.key.to_string(), Value::deserialize(d)?)]);
        rename_values(&mut table, self.key, self.values);
        let value = table.remove(self.key).unwrap_or_default();
        self.seed.deserialize(value).map_err(D::Error::custom)
    }
}

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for RenamedMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        use serde::de::{Error, IntoDeserializer};
        let mut seed = seed;
        loop {
            if let Some((key, value)) = self.pending.pop_front() {
                self.value = Pending::Upgraded(value);
                let de: serde::de::value::StrDeserializer<'_, A::Error> = key.into_deserializer();
                return seed.deserialize(de).map(Some);
            }
            let found = self.map.next_key_seed(KeySeed {
                seed,
                renames: self.renames,
                seen: &mut self.seen,
                value: &mut self.value,
            })?;
            match found {
                None => return Ok(None),
                Some(Key::Field(field)) => return Ok(Some(field)),
                Some(Key::Upgrade(up, back)) => {
                    let old: Value = self.map.next_value()?;
                    let entries = (up.upgrade)(old).map_err(A::Error::custom)?;
                    warn_renamed("configuration key", up.old, &up.claims.join(" and "));
                    self.pending.extend(entries);
                    seed = back;
                }
            }
        }
    }

    fn next_value_seed<S: serde::de::DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        use serde::de::Error;
        match std::mem::replace(&mut self.value, Pending::None) {
            Pending::None => self.map.next_value_seed(seed),
            Pending::Values(values, key) => self.map.next_value_seed(ValueSeed { seed, key, values }),
            Pending::Upgraded(value) => seed.deserialize(value).map_err(A::Error::custom),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
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
        let c = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(c.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let v =
                json!({"address": "VALUE-1", "deletion": "force", "delete_mode": null, "tags": {"address": "VALUE-2"}});
            let _ = serde_json::from_value::<Settings>(v);
            serde_json::from_value::<Settings>(json!({"address": "VALUE-3", "deletion": "force"})).unwrap();
        });
        let renamed = String::from_utf8(c.0.lock().unwrap().clone()).unwrap();
        assert!(
            renamed.contains("`address` is deprecated") && renamed.contains("use `endpoint`"),
            "{renamed}"
        );
        assert!(renamed.contains("`deletion` is deprecated"), "{renamed}");
        assert!(!renamed.contains("VALUE-"), "never a value: {renamed}");
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

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(remote = "Self", default, deny_unknown_fields)]
    struct Settings {
        endpoint: Option<String>,
        delete_mode: Option<String>,
        days: Option<u8>,
        tags: std::collections::BTreeMap<String, String>,
    }

    fn upgrade_deletion(old: Value) -> Result<Vec<(&'static str, Value)>, ConfigError> {
        match old.as_str() {
            Some("force") => Ok(vec![("delete_mode", "purge".into())]),
            Some(_) | None => Err(ConfigError::new("x", "deletion", "must be \"force\"")),
        }
    }

    const SETTINGS: Renames = Renames {
        provider: "x",
        keys: &[("endpoint_url", "endpoint"), ("address", "endpoint")],
        values: &[("delete_mode", &[("destroy", "purge")])],
        upgrades: &[Upgrade {
            old: "deletion",
            claims: &["delete_mode", "days"],
            upgrade: upgrade_deletion,
        }],
    };

    impl<'de> Deserialize<'de> for Settings {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Settings::deserialize(Renamed::new(d, SETTINGS))
        }
    }

    #[test]
    fn a_struct_deserialises_with_its_old_names() {
        let from = |v: Value| serde_json::from_value::<Settings>(v);
        assert_eq!(
            from(json!({"endpoint_url": "a"})).unwrap().endpoint.as_deref(),
            Some("a")
        );
        assert_eq!(
            from(json!({"deletion": "force"})).unwrap().delete_mode.as_deref(),
            Some("purge")
        );
        assert_eq!(
            from(json!({"delete_mode": "destroy"})).unwrap().delete_mode.as_deref(),
            Some("purge")
        );
        for both in [
            json!({"endpoint_url": "a", "endpoint": "b"}),
            json!({"endpoint": "b", "endpoint_url": "a"}),
            json!({"endpoint_url": "a", "address": "b"}),
            json!({"deletion": "force", "delete_mode": "soft"}),
            json!({"days": 3, "deletion": "force"}),
        ] {
            let e = from(both.clone()).unwrap_err().to_string();
            assert!(e.contains("deprecated name") && e.contains("remove"), "{both}: {e}");
        }
        let e = from(json!({"deletion": 3})).unwrap_err().to_string();
        assert!(e.contains("deletion"), "{e}");
        assert!(from(json!({"nope": 1})).is_err(), "unknown keys are still refused");
        assert!(from(json!({"endpoint": 1})).is_err(), "wrong types too");
    }

    #[test]
    fn keys_of_nested_tables_keep_their_names() {
        let c: Settings =
            serde_json::from_value(json!({"tags": {"address": "a", "endpoint_url": "b", "deletion": "force"}}))
                .unwrap();
        assert_eq!(c.endpoint, None);
        assert_eq!(c.tags.len(), 3);
    }

    /// The struct behind a `provider`-tagged enum (as the umbrella's `StorageConfig`).
    #[test]
    fn old_names_pass_through_a_tagged_enum() {
        #[derive(Debug, Deserialize)]
        #[serde(tag = "provider")]
        enum Tagged {
            #[serde(rename = "x")]
            X(Settings),
        }
        let Tagged::X(c) = toml::from_str("provider = \"x\"\naddress = \"a\"\ndeletion = \"force\"").unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("a"));
        assert_eq!(c.delete_mode.as_deref(), Some("purge"));
        assert!(toml::from_str::<Tagged>("provider = \"x\"\nnope = 1").is_err());
    }

    #[test]
    fn toml_errors_keep_their_line() {
        for (text, line) in [
            ("endpoint_url = \"a\"\ndays = \"x\"", 2),
            ("endpoint_url = \"a\"\nnope = 1", 2),
            ("deletion = \"force\"\n[tags]\na = 1", 3),
        ] {
            let e = toml::from_str::<Settings>(text).unwrap_err();
            let span = e.span().unwrap_or_else(|| panic!("{text}: no span in {e}"));
            assert_eq!(text[..span.start].matches('\n').count() + 1, line, "{text}: {e}");
        }
    }
}
