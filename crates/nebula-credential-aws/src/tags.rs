//! Credential metadata ↔ AWS tags, within AWS's tag rules.
//!
//! Every secret carries the credential's tags, the configured default tags, and two
//! reserved tags: the managed-by marker (so `list` never returns foreign secrets) and the
//! creation time (so `list` filters by it without reading values). Tag values use only
//! the characters AWS allows; a value with others (say `✓` or `🚀`) is stored as
//! `sha256:<hex>` of itself, which still matches exactly when filtering. The full
//! metadata always travels in the record itself.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use nebula_credential_core::{CredentialFilter, CredentialMetadata, Timestamp};
use sha2::{Digest, Sha256};

/// Most tags AWS allows on a secret.
pub(crate) const MAX_AWS_TAGS: usize = 50;
/// Tags this crate adds to every secret.
pub(crate) const RESERVED_TAGS: usize = 2;
/// Key prefix of the reserved tags.
pub(crate) const RESERVED_PREFIX: &str = "nebula-credential:";
/// Marks secrets this crate manages.
pub(crate) const MANAGED_KEY: &str = "nebula-credential:managed";
const MANAGED_VALUE: &str = "true";
/// The credential's `created_at`, RFC 3339 with milliseconds.
pub(crate) const CREATED_KEY: &str = "nebula-credential:created-at";

/// Characters AWS allows in tag keys and values, besides letters, digits and spaces.
fn aws_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

/// Checks a configured default tag against AWS's rules, and keeps it apart from
/// credential tags and the reserved ones.
pub(crate) fn validate_aws_tag(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err("keys must have 1 to 128 characters".into());
    }
    if value.chars().count() > 256 {
        return Err("values must have at most 256 characters".into());
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err("keys starting with \"aws:\" are reserved by AWS".into());
    }
    if key.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "keys starting with {RESERVED_PREFIX:?} are reserved by nebula-credential"
        ));
    }
    if let Some(c) = key.chars().chain(value.chars()).find(|c| !aws_char(*c)) {
        return Err(format!(
            "{c:?} is not allowed in AWS tags (letters, digits, spaces and _ . : / = + - @ are)"
        ));
    }
    if key.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(format!(
            "{key:?} could be a credential tag key; use a character credential tags cannot hold, e.g. \"myorg:{key}\""
        ));
    }
    Ok(())
}

/// The tag value that stands for `value` on AWS.
pub(crate) fn encode_value(value: &str) -> String {
    if value.chars().all(aws_char) && !value.starts_with("sha256:") {
        value.to_string()
    } else {
        let digest = Sha256::digest(value.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

/// Every tag the secret of a credential with `metadata` must carry.
pub(crate) fn desired_tags(
    metadata: &CredentialMetadata,
    defaults: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags = defaults.clone();
    for (k, v) in &metadata.tags {
        tags.insert(k.clone(), encode_value(v));
    }
    tags.insert(MANAGED_KEY.into(), MANAGED_VALUE.into());
    tags.insert(
        CREATED_KEY.into(),
        metadata.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    tags
}

/// Whether a secret with these AWS tags is managed by this crate.
pub(crate) fn is_managed(tags: &BTreeMap<String, String>) -> bool {
    tags.get(MANAGED_KEY).is_some_and(|v| v == MANAGED_VALUE)
}

/// Whether a secret with these AWS tags passes the metadata conditions of `filter`.
pub(crate) fn matches(filter: &CredentialFilter, tags: &BTreeMap<String, String>) -> bool {
    let created = tags
        .get(CREATED_KEY)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let in_range = |t: Option<Timestamp>| match t {
        Some(t) => filter.created_after.is_none_or(|a| t > a) && filter.created_before.is_none_or(|b| t < b),
        None => filter.created_after.is_none() && filter.created_before.is_none(),
    };
    filter.tags.iter().all(|(k, v)| tags.get(k) == Some(&encode_value(v))) && in_range(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_aws_cannot_hold_become_digests() {
        assert_eq!(encode_value("prod"), "prod");
        assert_eq!(encode_value("Zürich 東京"), "Zürich 東京");
        assert_eq!(encode_value(""), "");
        let odd = encode_value("ship it 🚀");
        assert!(odd.starts_with("sha256:") && odd.len() == 71, "{odd}");
        assert_eq!(odd, encode_value("ship it 🚀"));
        assert!(encode_value("sha256:abc").starts_with("sha256:") && encode_value("sha256:abc") != "sha256:abc");
        let long = "✓".repeat(256);
        assert!(encode_value(&long).len() <= 256);
    }

    #[test]
    fn desired_tags_stay_within_aws_limits() {
        let meta =
            CredentialMetadata::new().with_tags((0..10).map(|i| (format!("key-{i}"), "v".repeat(256))).collect());
        let defaults: BTreeMap<String, String> = (0..38).map(|i| (format!("org:d{i}"), "x".into())).collect();
        let tags = desired_tags(&meta, &defaults);
        assert_eq!(tags.len(), MAX_AWS_TAGS);
        for (k, v) in &tags {
            assert!(k.chars().count() <= 128 && v.chars().count() <= 256, "{k}");
            assert!(k.chars().chain(v.chars()).all(aws_char), "{k}={v}");
        }
        assert!(is_managed(&tags));
    }

    #[test]
    fn default_tag_rules() {
        assert!(validate_aws_tag("myorg:team", "payments").is_ok());
        assert!(validate_aws_tag("cost/center", "42").is_ok());
        assert!(validate_aws_tag("team", "x").unwrap_err().contains("myorg:team"));
        assert!(validate_aws_tag("aws:x", "y").is_err());
        assert!(validate_aws_tag("AWS:x", "y").is_err());
        assert!(validate_aws_tag("nebula-credential:managed", "y").is_err());
        assert!(validate_aws_tag("a:b", "no!").is_err());
        assert!(validate_aws_tag(&"k:".repeat(65), "v").is_err());
    }

    #[test]
    fn filter_matching_on_tags() {
        let meta = CredentialMetadata::new().with_tags([("city".to_string(), "🚀 town".to_string())].into());
        let tags = desired_tags(&meta, &BTreeMap::new());
        assert!(matches(&CredentialFilter::new().tag("city", "🚀 town"), &tags));
        assert!(!matches(&CredentialFilter::new().tag("city", "town"), &tags));
        let t = meta.created_at;
        assert!(matches(
            &CredentialFilter::new().created_after(t - chrono::Duration::milliseconds(1)),
            &tags
        ));
        assert!(!matches(&CredentialFilter::new().created_after(t), &tags));
        assert!(!matches(&CredentialFilter::new().created_before(t), &tags));
    }
}
