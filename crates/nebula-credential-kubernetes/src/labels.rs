//! Labels and annotations of our Secrets, on the shared [`TagScheme`] with Kubernetes'
//! label rules, and the syntax checks of configured labels and annotations.
//!
//! The scheme works in its own key space (raw credential tag keys, reserved keys, default
//! labels); [`to_labels`] and [`from_labels`] translate at the edge:
//! - the managed-by marker is `app.kubernetes.io/managed-by=nebula-credential`;
//! - each credential tag `k=v` is the label `tag.nebula-credential.io/k`, its value `v`
//!   itself when label-safe (≤ 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends), else
//!   `sha256-<hex>`, which still filters exactly — so `list` selects every tag on the server;
//! - `nebula-credential.io/created-at` holds `created_at` in Unix milliseconds;
//! - the keys we own (digests, longer than a label value may be) go to the annotation
//!   `nebula-credential.io/tag-keys`, so an overwrite removes only labels we wrote.

use std::collections::BTreeMap;

use nebula_credential_core::Tags;
use nebula_credential_core::remote::TagScheme;

/// Label every Secret of ours carries, with [`MANAGED_BY`] as its value.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "nebula-credential";
/// DNS prefix of the labels holding credential tags.
pub const TAG_LABEL_PREFIX: &str = "tag.nebula-credential.io/";
/// Prefix of the labels and annotations this library reserves.
pub(crate) const RESERVED_PREFIX: &str = "nebula-credential.io/";
/// Label holding the encoded `secret_prefix`, so providers with different prefixes in one
/// namespace never list each other's Secrets.
pub const PREFIX_LABEL: &str = "nebula-credential.io/prefix";
/// Annotation holding the credential id, exactly as given.
pub const ID_ANNOTATION: &str = "nebula-credential.io/id";
/// Annotation holding the credential's metadata as JSON.
pub const METADATA_ANNOTATION: &str = "nebula-credential.io/metadata";
/// Longest label value.
pub(crate) const MAX_LABEL_VALUE: usize = 63;
/// Longest label or annotation name (the part after `/`).
pub(crate) const MAX_NAME_PART: usize = 63;
/// Longest DNS prefix of a label or annotation key.
pub(crate) const MAX_KEY_PREFIX: usize = 253;
/// Most bytes all annotations of one object may hold (keys and values), as the API server counts.
pub(crate) const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// The shared tag rules with Kubernetes' label limits.
pub(crate) const SCHEME: TagScheme = TagScheme {
    managed_key: MANAGED_BY_LABEL,
    managed_value: MANAGED_BY,
    created_key: "nebula-credential.io/created-at",
    owned_key: "nebula-credential.io/tag-keys",
    reserved_prefix: RESERVED_PREFIX,
    max_value_chars: MAX_LABEL_VALUE,
    value_char: |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
    value_edge_char: |c| c.is_ascii_alphanumeric(),
    digest_separator: '-',
};

/// Credential tag keys (1..=63 of `[A-Za-z0-9._-]`, alphanumeric at both ends, as the
/// core enforces) are exactly the label names without a prefix.
fn is_credential_tag_key(key: &str) -> bool {
    is_name_part(key)
}

/// Splits the scheme's tags into the labels they become and the owned-keys annotation.
pub(crate) fn to_labels(tags: &Tags) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let mut owned = String::new();
    for (k, v) in tags {
        if k == SCHEME.owned_key {
            owned = v.clone();
        } else {
            labels.insert(label_key(k), v.clone());
        }
    }
    (labels, owned)
}

/// The scheme's view of an object's labels and owned-keys annotation: credential tags
/// (under [`TAG_LABEL_PREFIX`], unprefixed here) and every key with a DNS prefix. Labels
/// without a prefix are never ours (default labels need one), so they stay out of view
/// and cannot be mistaken for credential tags.
pub(crate) fn from_labels(labels: &BTreeMap<String, String>, owned: Option<&str>) -> Tags {
    let mut tags: Tags = labels
        .iter()
        .filter_map(|(k, v)| match k.strip_prefix(TAG_LABEL_PREFIX) {
            Some(raw) => Some((raw.to_string(), v.clone())),
            None if k.contains('/') => Some((k.clone(), v.clone())),
            None => None,
        })
        .collect();
    if let Some(owned) = owned {
        tags.insert(SCHEME.owned_key.to_string(), owned.to_string());
    }
    tags
}

/// The label key of a key of the scheme's view.
pub(crate) fn label_key(key: &str) -> String {
    if is_credential_tag_key(key) {
        format!("{TAG_LABEL_PREFIX}{key}")
    } else {
        key.to_string()
    }
}

/// The label selector part `key=value` for the credential tag filter `key=value`.
pub(crate) fn tag_selector(key: &str, value: &str) -> String {
    format!("{TAG_LABEL_PREFIX}{key}={}", SCHEME.encode_value(value))
}

fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_PART
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Checks a label or annotation key: an optional DNS-subdomain prefix (≤ 253) and `/`,
/// then a name of ≤ 63 characters `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.len() > MAX_KEY_PREFIX || !crate::naming::is_dns_subdomain(p))
    {
        return Err(format!(
            "has the prefix {p:?}, which is not a lowercase DNS subdomain of at most {MAX_KEY_PREFIX} characters"
        ));
    }
    if !is_name_part(name) {
        return Err(format!(
            "has the name {name:?}; names are 1 to {MAX_NAME_PART} characters of letters, digits, '-', '_' and '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or ≤ 63 characters `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name_part(value) {
        return Ok(());
    }
    Err(format!(
        "has the value {value:?}; label values are empty or 1 to {MAX_LABEL_VALUE} characters of letters, digits, \
         '-', '_' and '.', starting and ending with a letter or digit"
    ))
}

/// Checks a configured default label (key, value, and that it is not one of ours).
pub(crate) fn check_default_label(key: &str, value: &str) -> Result<(), String> {
    check_key(key)?;
    check_label_value(value)?;
    check_not_reserved(key)?;
    SCHEME.check_default_key(key)
}

/// Refuses keys under the prefixes this library writes.
pub(crate) fn check_not_reserved(key: &str) -> Result<(), String> {
    if key.starts_with(RESERVED_PREFIX) || key.starts_with(TAG_LABEL_PREFIX) || key == MANAGED_BY_LABEL {
        return Err(format!(
            "is reserved by nebula-credential (keys under {RESERVED_PREFIX:?} or {TAG_LABEL_PREFIX:?}, and {MANAGED_BY_LABEL:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use nebula_credential_core::CredentialMetadata;

    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> CredentialMetadata {
        CredentialMetadata::new().with_tags(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn every_tag_becomes_a_valid_label_and_odd_values_become_digests() {
        let long = "x".repeat(64);
        let m = meta(&[
            ("env", "prod"),
            ("city", "Zürich"),
            ("edge", "-x"),
            ("long", &long),
            ("empty", ""),
        ]);
        let defaults = Tags::from([("app.kubernetes.io/name".to_string(), "nebula-credential".to_string())]);
        let (labels, owned) = to_labels(&SCHEME.desired(&m, &defaults));
        assert_eq!(labels["tag.nebula-credential.io/env"], "prod");
        assert_eq!(labels["tag.nebula-credential.io/empty"], "");
        for k in ["city", "edge", "long"] {
            assert!(labels[&format!("{TAG_LABEL_PREFIX}{k}")].starts_with("sha256-"), "{k}");
        }
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels["app.kubernetes.io/name"], "nebula-credential");
        for (k, v) in &labels {
            check_key(k).unwrap();
            check_label_value(v).unwrap();
        }
        assert_eq!(owned.split('.').count(), 5);
        let back = from_labels(&labels, Some(&owned));
        assert_eq!(back, SCHEME.desired(&m, &defaults));
        assert_eq!(
            tag_selector("city", "Zürich"),
            format!("{TAG_LABEL_PREFIX}city={}", labels["tag.nebula-credential.io/city"])
        );
    }

    #[test]
    fn removing_a_tag_removes_its_label_and_keeps_foreign_labels() {
        let first = SCHEME.desired(&meta(&[("env", "prod"), ("tier", "1")]), &Tags::new());
        let (mut labels, owned) = to_labels(&first);
        labels.insert("tier".into(), "foreign".into());
        labels.insert("example.com/tier".into(), "foreign".into());
        let current = from_labels(&labels, Some(&owned));
        assert_eq!(current["tier"], "1", "an unprefixed foreign label is out of view");
        let update = SCHEME.update(&current, &SCHEME.desired(&meta(&[("env", "prod")]), &Tags::new()));
        assert_eq!(update.remove, vec!["tier".to_string()]);
        assert_eq!(label_key("tier"), "tag.nebula-credential.io/tier");
    }

    #[test]
    fn keys_and_values_follow_kubernetes_syntax_and_name_the_offender() {
        assert!(check_key("app.kubernetes.io/name").is_ok());
        assert!(check_key("team").is_ok());
        assert!(check_key("Example.com/x").unwrap_err().contains("Example.com"));
        assert!(check_key(&format!("{}/x", "a".repeat(254))).is_err());
        assert!(check_key(&"n".repeat(64)).unwrap_err().contains("name"));
        assert!(check_key("a/-x").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value(&"v".repeat(63)).is_ok());
        assert!(check_label_value(&"v".repeat(64)).is_err());
        assert!(check_label_value("a b").unwrap_err().contains("\"a b\""));
        assert!(
            check_default_label("nebula-credential.io/x", "y")
                .unwrap_err()
                .contains("reserved")
        );
        assert!(check_default_label("app.kubernetes.io/managed-by", "y").is_err());
        assert!(check_default_label("team", "y").unwrap_err().contains("myorg/team"));
    }
}
