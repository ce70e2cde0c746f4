//! Confirming that `mount_path` is a KV version 2 mount, from the answer of
//! `GET sys/internal/ui/mounts/<mount_path>`.

use nebula_credential_core::{ConfigError, StorageError};

use crate::PROVIDER;

/// A `Config` error of this provider.
pub(crate) fn config_error(field: &str, rule: String) -> StorageError {
    StorageError::Config(ConfigError::new(PROVIDER, field, rule))
}

/// Checks the answer of `sys/internal/ui/mounts/<mount>`: a KV version 2 mount at exactly
/// `mount`.
pub(crate) fn check_mount(mount: &str, in_namespace: &str, body: &serde_json::Value) -> Result<(), StorageError> {
    let data = &body["data"];
    let kind = data["type"].as_str().unwrap_or_default();
    let at = data["path"].as_str().unwrap_or_default().trim_end_matches('/');
    if !at.is_empty() && at != mount {
        return Err(config_error(
            "mount_path",
            format!(
                "{mount:?}{in_namespace} is not a mount: it lies inside the {kind:?} mount {at:?}; set mount_path to \
                 the mount itself and put the rest of the path into path_prefix"
            ),
        ));
    }
    if kind != "kv" && kind != "generic" {
        return Err(config_error(
            "mount_path",
            format!(
                "{mount:?}{in_namespace} is a {kind:?} secrets engine, not KV version 2; set mount_path to a KV \
                 version 2 mount"
            ),
        ));
    }
    let version = match &data["options"]["version"] {
        serde_json::Value::String(v) => v.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => "1".into(),
    };
    if version != "2" {
        return Err(config_error(
            "mount_path",
            format!(
                "{mount:?}{in_namespace} is a KV version {version} mount; the provider needs KV version 2 (`bao \
                 secrets enable -version=2 -path=…`, or upgrade it with `bao kv enable-versioning {mount}`)"
            ),
        ));
    }
    Ok(())
}
