//! The fuzz targets of nebula-credential's parsers, as plain functions: each takes any
//! bytes, runs one parser on them and panics when a property breaks (or the parser
//! panics). `cargo xtask fuzz` runs them under libFuzzer (the harness in
//! `fuzz/libfuzzer/`); `tests/regressions.rs` replays every kept input (`seeds/<target>/`
//! and the crash inputs in `regressions/<target>/`) through them in a normal `cargo test`.
//!
//! The name codecs of the local, Kubernetes and Azure backends are private to their
//! crates: they are compiled here from the same source files (`#[path]`), so the fuzzer
//! runs exactly the code the backends run, without the backends' SDKs.

use std::sync::OnceLock;

use nebula_credential::StorageConfig;
use nebula_credential_core::remote::TagScheme;
use nebula_credential_core::remote::config_keys::{Entries, Renamed, Renames, Upgrade};
use nebula_credential_core::{
    ConfigError, CredentialFilter, CredentialId, EncryptionKey, ErrorKind, Keyring, MAX_ID_LEN, RecordEnvelope, Tags,
};
use serde::{Deserialize, Deserializer};

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/nebula-credential-local/src/naming.rs"]
mod local_naming;

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/nebula-credential-kubernetes/src/naming.rs"]
mod kubernetes_naming;

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/nebula-credential-azure/src/naming.rs"]
mod azure_naming;

/// One fuzz target: its name (as `cargo xtask fuzz` and the directories name it) and its check.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("credential_id", credential_id),
    ("record_envelope", record_envelope),
    ("storage_config", storage_config),
    ("renamed_keys", renamed_keys),
    ("tag_decode", tag_decode),
    ("local_file_name", local_file_name),
    ("kubernetes_secret_name", kubernetes_secret_name),
    ("azure_secret_name", azure_secret_name),
];

/// The check of the target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, check)| *check)
}

/// `data` as text (invalid UTF-8 replaced), so every input reaches the text parsers.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Splits `data` at the first 0 byte: two inputs from one.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// `CredentialId`: accepted exactly when the rules allow, displayed as given, errors short.
pub fn credential_id(data: &[u8]) {
    let s = text(data);
    let rules = (1..=MAX_ID_LEN).contains(&s.chars().count())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match CredentialId::new(s.clone()) {
        Ok(id) => {
            assert!(rules, "{s:?} accepted against the rules");
            assert_eq!(id.to_string(), s);
            let json = serde_json::to_string(&id).expect("serialises");
            assert_eq!(serde_json::from_str::<CredentialId>(&json).expect("reads back"), id);
        }
        Err(e) => {
            assert!(!rules, "{s:?} refused: {e}");
            // At most 40 characters of the input are shown, each escaped to at most 10.
            assert!(e.to_string().chars().count() <= 40 * 10 + 300, "a long error: {e}");
        }
    }
}

/// `RecordEnvelope::from_json`: never panics, fails only as `Corrupted`, and what parses
/// never decrypts (no input forges a record sealed with the test key) nor reads as
/// another id.
pub fn record_envelope(data: &[u8]) {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    let keyring = KEYRING.get_or_init(|| Keyring::new(EncryptionKey::from_bytes(&[7u8; 32]).expect("32 bytes")));
    let expected = CredentialId::new("fuzz").expect("valid");
    for wanted in [None, Some(&expected)] {
        match RecordEnvelope::from_json(data, "fuzz", "fuzz://record", wanted) {
            Ok(record) => {
                if let Some(id) = wanted {
                    assert_eq!(&record.id, id, "read as another id");
                }
                let decrypted = keyring.decrypt(&record.id, &record.encrypted_data);
                assert!(decrypted.is_err(), "a forged record decrypts");
                // Written again, a record of an older format is in the current one, the
                // rest unchanged.
                let again = record.to_json("fuzz", usize::MAX).expect("serialises");
                let back = RecordEnvelope::from_json(&again, "fuzz", "fuzz://record", wanted).expect("reads back");
                assert_eq!(back.format_version, RecordEnvelope::FORMAT_VERSION);
                assert_eq!(
                    (back.id, back.encrypted_data, back.metadata),
                    (record.id, record.encrypted_data, record.metadata)
                );
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}"),
        }
    }
}

/// `StorageConfig` from TOML: parsing and validating never panic, and what parses and
/// validates writes out and reads back the same.
pub fn storage_config(data: &[u8]) {
    let s = text(data);
    let Ok(config) = toml::from_str::<StorageConfig>(&s) else {
        return;
    };
    if config.validate().is_err() {
        return;
    }
    let _ = format!("{config:?}");
    if let Ok(written) = toml::to_string(&config) {
        let back: StorageConfig = toml::from_str(&written).unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(back, config, "{written}");
    }
}

/// Settings read through [`Renamed`] with every kind of rename the backends use.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(remote = "Self", default, deny_unknown_fields)]
struct Settings {
    endpoint: Option<String>,
    delete_mode: Option<String>,
    recovery_window_days: Option<u64>,
    port: Option<u16>,
    nested: Option<Box<Settings>>,
}

fn upgrade_deletion(value: serde_json::Value) -> Result<Entries, ConfigError> {
    match value {
        serde_json::Value::String(s) if s == "force" => Ok(vec![("delete_mode", "purge".into())]),
        serde_json::Value::Object(o) => match o.get("days") {
            Some(days) => Ok(vec![
                ("delete_mode", "soft".into()),
                ("recovery_window_days", days.clone()),
            ]),
            None => Err(ConfigError::new("fuzz", "deletion", "needs days")),
        },
        _ => Err(ConfigError::new("fuzz", "deletion", "is \"force\" or { days = N }")),
    }
}

const RENAMES: Renames = Renames {
    provider: "fuzz",
    keys: &[("endpoint_url", "endpoint"), ("address", "endpoint")],
    values: &[("delete_mode", &[("force", "purge")])],
    upgrades: &[Upgrade {
        old: "deletion",
        claims: &["delete_mode", "recovery_window_days"],
        upgrade: upgrade_deletion,
    }],
};

impl<'de> Deserialize<'de> for Settings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Settings::deserialize(Renamed::new(d, RENAMES))
    }
}

/// [`Renamed`], the deprecated-key reader every remote backend's configuration uses: never
/// panics, on TOML and on JSON.
pub fn renamed_keys(data: &[u8]) {
    let s = text(data);
    let _ = toml::from_str::<Settings>(&s);
    let _ = serde_json::from_slice::<Settings>(data);
}

/// The tag codec: decoding arbitrary tags (created time, owned keys, filters) never panics,
/// and encoded values always fit each scheme.
pub fn tag_decode(data: &[u8]) {
    const LABELS: TagScheme = TagScheme {
        managed_key: "app.kubernetes.io/managed-by",
        managed_value: "nebula-credential",
        created_key: "nebula-credential.io/created-at",
        owned_key: "nebula-credential.io/tag-keys",
        reserved_prefix: "nebula-credential.io/",
        max_value_chars: 63,
        value_char: |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
        value_edge_char: |c| c.is_ascii_alphanumeric(),
        digest_separator: '-',
    };
    const OPEN: TagScheme = TagScheme {
        max_value_chars: 256,
        value_char: |c| !c.is_control(),
        ..TagScheme::DEFAULT
    };
    let s = text(data);
    let mut parts = s.split('\u{1}');
    let mut tags = Tags::new();
    let mut wanted = Tags::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.len() % 2 == 0 {
            tags.insert(k.to_string(), v.to_string());
        } else {
            wanted.insert(k.to_string(), v.to_string());
        }
    }
    let id = CredentialId::new("fuzz").expect("valid");
    for scheme in [TagScheme::DEFAULT, LABELS, OPEN] {
        let mut tags = tags.clone();
        tags.insert(scheme.created_key.into(), s.clone());
        tags.insert(scheme.owned_key.into(), s.clone());
        tags.insert(scheme.managed_key.into(), scheme.managed_value.into());
        let _ = scheme.created_at(&tags);
        let view = scheme.owned_view(&tags);
        assert!(
            view.iter().all(|(k, v)| tags.get(k) == Some(v)),
            "the owned view invents tags"
        );
        let mut filter = CredentialFilter::new();
        filter.tags = wanted.clone();
        let _ = scheme.matches(&filter, &id, &tags);
        let _ = scheme.update(&tags, &view);
        let encoded = scheme.encode_value(&s);
        assert!(encoded.chars().count() <= scheme.max_value_chars, "{encoded}");
    }
}

/// The local file-name codec: only the name an id is given parses, back to that id.
pub fn local_file_name(data: &[u8]) {
    let (name, ext) = split(data);
    let (name, ext) = (text(name), text(ext));
    let ext = if ext.is_empty() { "enc.json".to_string() } else { ext };
    if let Some(id) = local_naming::parse_file_name(&name, &ext) {
        assert_eq!(local_naming::file_name(&id, &ext), name, "a non-canonical name parses");
    }
    if let Ok(id) = CredentialId::new(name) {
        let file = local_naming::file_name(&id, "enc.json");
        assert_eq!(local_naming::parse_file_name(&file, "enc.json"), Some(id));
        assert!(file.len() <= 255, "{file}");
    }
}

/// The Kubernetes Secret-name codec: only canonical names parse; every id's name is a
/// valid DNS-1123 subdomain that parses back.
pub fn kubernetes_secret_name(data: &[u8]) {
    let (name, prefix) = split(data);
    let (name, prefix) = (text(name), text(prefix));
    let prefix = if kubernetes_naming::check_prefix(&prefix).is_ok() {
        prefix
    } else {
        "nebula-cred-".to_string()
    };
    let full = format!("{prefix}{name}");
    if let Some(id) = kubernetes_naming::credential_id(&prefix, &full) {
        assert_eq!(
            kubernetes_naming::secret_name(&prefix, &id),
            full,
            "a non-canonical name parses"
        );
    }
    if let Ok(id) = CredentialId::new(name) {
        let secret = kubernetes_naming::secret_name(&prefix, &id);
        assert!(kubernetes_naming::is_dns_subdomain(&secret), "{secret}");
        assert_eq!(kubernetes_naming::credential_id(&prefix, &secret), Some(id));
    }
}

/// The Key Vault secret-name codec (it has no decoder: the id is kept in a tag): names fit
/// the room, use `[0-9a-z-]` only, and a case change of the id changes the name.
pub fn azure_secret_name(data: &[u8]) {
    let room = data.first().map_or(azure_naming::MAX_NAME_LEN, |b| {
        azure_naming::MAX_NAME_LEN - usize::from(*b) % azure_naming::MAX_PREFIX_LEN - 1
    });
    let Ok(id) = CredentialId::new(text(data.get(1..).unwrap_or_default())) else {
        return;
    };
    let name = azure_naming::encode(id.as_str(), room);
    assert!(!name.is_empty() && name.len() <= room, "{name} (room {room})");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{name}"
    );
    let flipped: String = id
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    if flipped != id.as_str() {
        assert!(
            !azure_naming::encode(&flipped, room).eq_ignore_ascii_case(&name),
            "{id} and {flipped}"
        );
    }
}
