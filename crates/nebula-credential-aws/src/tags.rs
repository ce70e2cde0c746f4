//! AWS's parameters for the shared [`TagScheme`], and AWS's own rules for default tags.
//!
//! The scheme (marker, creation time, owned keys, digests of values AWS cannot hold,
//! filter re-checks) lives in the core; what is AWS's is the value alphabet (letters,
//! digits, spaces and `_ . : / = + - @`), the 256-character value limit, 50 tags per
//! secret, 128-character keys and the reserved `aws:` prefix.

use nebula_credential_core::remote::TagScheme;

/// The tag scheme of AWS secrets.
pub(crate) const SCHEME: TagScheme = TagScheme {
    max_value_chars: 256,
    value_char: aws_char,
    ..TagScheme::DEFAULT
};

/// Most tags AWS allows on a secret.
pub(crate) const MAX_AWS_TAGS: usize = 50;

/// Characters AWS allows in tag keys and values, besides letters, digits and spaces.
fn aws_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

/// Checks a configured default tag against AWS's rules and the scheme's reserved and
/// credential-like keys. The text completes "default_tags.KEY …".
pub(crate) fn validate_default_tag(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err("keys must have 1 to 128 characters".into());
    }
    if value.chars().count() > 256 {
        return Err("values must have at most 256 characters".into());
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err("keys starting with \"aws:\" are reserved by AWS".into());
    }
    if let Some(c) = key.chars().chain(value.chars()).find(|c| !aws_char(*c)) {
        return Err(format!(
            "{c:?} is not allowed in AWS tags (letters, digits, spaces and _ . : / = + - @ are)"
        ));
    }
    SCHEME.check_default_key(key)
}

#[cfg(test)]
mod tests {
    use nebula_credential_core::{CredentialMetadata, Tags};

    use super::*;

    #[test]
    fn desired_tags_stay_within_aws_limits() {
        let meta =
            CredentialMetadata::new().with_tags((0..10).map(|i| (format!("key-{i}"), "✓".repeat(256))).collect());
        let defaults: Tags = (0..37).map(|i| (format!("org:d{i}"), "x".into())).collect();
        let tags = SCHEME.desired(&meta, &defaults);
        assert_eq!(tags.len(), MAX_AWS_TAGS);
        for (k, v) in &tags {
            assert!(k.chars().count() <= 128 && v.chars().count() <= 256, "{k}");
            assert!(k.chars().chain(v.chars()).all(aws_char), "{k}={v}");
        }
        assert!(SCHEME.is_ours(&tags));
        assert_eq!(SCHEME.encode_value("Zürich 東京"), "Zürich 東京");
        assert!(SCHEME.encode_value("ship it 🚀").starts_with("sha256:"));
    }

    #[test]
    fn default_tag_rules() {
        assert!(validate_default_tag("myorg:team", "payments").is_ok());
        assert!(validate_default_tag("cost/center", "42").is_ok());
        assert!(validate_default_tag("team", "x").unwrap_err().contains("myorg:team"));
        assert!(validate_default_tag("aws:x", "y").is_err());
        assert!(validate_default_tag("AWS:x", "y").is_err());
        assert!(validate_default_tag("nebula-credential:managed", "y").is_err());
        assert!(validate_default_tag("a:b", "no!").is_err());
        assert!(validate_default_tag(&"k:".repeat(65), "v").is_err());
    }
}
