//! Confirming that `mount_path` is a KV version 2 mount, from the answer of
//! `GET sys/internal/ui/mounts/<mount_path>`.

use nebula_credential_core::{ConfigError, StorageError};

use crate::PROVIDER;

/// A `Config` error of this provider.
pub(crate) fn config_error(field: &str, rule: String) -> StorageError {
    StorageError::Config(ConfigError::new(PROVIDER, field, rule))
}

/// Checks the answer of `sys/internal/ui/mounts/<mount>`, asked in `namespace`: a KV
/// version 2 mount at exactly `mount`. When `mount` starts with a child namespace
/// (`namespace = "parent"`, `mount = "child/kv"`, which Vault routes to `kv` in
/// `parent/child`), Vault answers with the mount's path from `namespace`'s own parent
/// on (`parent/child/kv/`): that is the same mount.
pub(crate) fn check_mount(
    mount: &str,
    namespace: Option<&str>,
    in_namespace: &str,
    body: &serde_json::Value,
) -> Result<(), StorageError> {
    let data = &body["data"];
    let kind = data["type"].as_str().unwrap_or_default();
    let at = data["path"].as_str().unwrap_or_default().trim_end_matches('/');
    let same_mount = at == mount
        || namespace.map(|ns| ns.trim_matches('/')).is_some_and(|ns| {
            !ns.is_empty() && at.strip_prefix(ns).and_then(|rest| rest.strip_prefix('/')) == Some(mount)
        });
    if !at.is_empty() && !same_mount {
        return Err(config_error(
            "mount_path",
            format!(
                "{mount:?}{in_namespace} is not a mount: it lies inside the {kind:?} mount {at:?}; set mount_path to \
                 the mount itself and put the rest of the path into secret_prefix"
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
