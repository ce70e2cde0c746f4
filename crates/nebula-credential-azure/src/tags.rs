//! Key Vault's parameters for the shared [`TagScheme`], the id tag, and the tag budget.
//!
//! Key Vault allows 15 tags per secret version, with names and values of up to 256
//! characters (the limit older docs give; current docs say 512). Values may hold any text,
//! so credential tags are stored as they are. Besides the scheme's reserved tags (marker,
//! creation time, owned keys) every secret carries the original credential id, which its
//! case-insensitive name cannot always hold: 4 reserved + 10 credential tags leave room
//! for 1 default tag.

use nebula_credential_core::remote::TagScheme;
use nebula_credential_core::{CredentialId, CredentialMetadata, MAX_TAGS, Tags};

/// The tag scheme of Key Vault secrets.
pub(crate) const SCHEME: TagScheme = TagScheme {
    max_value_chars: MAX_TAG_CHARS,
    value_char: |c| !c.is_control(),
    ..TagScheme::DEFAULT
};

/// Key of the tag holding the original credential id.
pub const ID_TAG: &str = "nebula-credential:id";

/// Most tags Key Vault allows on a secret.
pub const MAX_AZURE_TAGS: usize = 15;

/// Longest tag name and value this backend writes (Key Vault's documented 256).
pub(crate) const MAX_TAG_CHARS: usize = 256;

/// Tags this backend reserves on every secret: the scheme's three and the id.
pub const RESERVED_TAGS: usize = TagScheme::RESERVED_TAGS + 1;

/// Most `default_tags`: what 15 leaves after the reserved tags and 10 credential tags.
pub const MAX_DEFAULT_TAGS: usize = MAX_AZURE_TAGS - RESERVED_TAGS - MAX_TAGS;

/// Every tag a secret holding `id` with `metadata` carries. The owned-keys tag lists the
/// default-tag keys too, so a default tag removed or renamed in the configuration is
/// removed from the secret by its next store, like a credential tag.
pub(crate) fn desired(id: &CredentialId, metadata: &CredentialMetadata, defaults: &Tags) -> Tags {
    let mut tags = SCHEME.desired(metadata, defaults);
    tags.insert(ID_TAG.into(), id.to_string());
    let owned = tags.entry(SCHEME.owned_key.to_string()).or_default();
    for key in defaults.keys() {
        if !owned.is_empty() {
            owned.push('.');
        }
        owned.push_str(&key_digest(key));
    }
    tags
}

/// The tags of a tombstone version for `id`: the marker and the id only (an overwrite
/// with them removes every other tag this library wrote, and keeps other tools').
pub(crate) fn tombstone(id: &CredentialId) -> Tags {
    Tags::from([
        (SCHEME.managed_key.to_string(), SCHEME.managed_value.to_string()),
        (ID_TAG.to_string(), id.to_string()),
    ])
}

/// The digest under which the owned-keys tag lists `key`: the first 8 hex digits of its
/// SHA-256, as [`TagScheme::update`] reads them.
fn key_digest(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tags a secret now tagged `current` gets when we write `desired`: ours replaced,
/// other tools' kept. Key Vault tags belong to a version, so a write sends them all.
pub(crate) fn merged(current: &Tags, desired: &Tags) -> Tags {
    let update = SCHEME.update(current, desired);
    let mut tags = current.clone();
    for k in &update.remove {
        tags.remove(k);
    }
    tags.extend(update.set);
    tags
}

/// Checks a configured default tag. The text completes "default_tags.KEY …".
pub(crate) fn validate_default_tag(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > MAX_TAG_CHARS {
        return Err(format!("keys must have 1 to {MAX_TAG_CHARS} characters"));
    }
    if value.chars().count() > MAX_TAG_CHARS {
        return Err(format!("values must have at most {MAX_TAG_CHARS} characters"));
    }
    if key.chars().chain(value.chars()).any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    SCHEME.check_default_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worst case the core allows (10 credential tags with 256-character values)
    /// plus the one default tag stays within Key Vault's 15 tags and 256 characters.
    #[test]
    fn the_worst_case_fits_in_fifteen_tags() {
        let meta = CredentialMetadata::new().with_tags(
            (0..MAX_TAGS)
                .map(|i| (format!("k{i}-{}", "x".repeat(60)), "✓".repeat(256)))
                .collect(),
        );
        let id: CredentialId = "A_".repeat(64).parse().unwrap();
        let defaults = Tags::from([("org:team".to_string(), "p".repeat(256))]);
        assert_eq!(defaults.len(), MAX_DEFAULT_TAGS);
        let tags = desired(&id, &meta, &defaults);
        assert_eq!(tags.len(), MAX_AZURE_TAGS);
        for (k, v) in &tags {
            assert!(
                k.chars().count() <= MAX_TAG_CHARS && v.chars().count() <= MAX_TAG_CHARS,
                "{k}"
            );
        }
        assert!(SCHEME.is_ours(&tags));
        assert_eq!(tags[ID_TAG], id.as_str());
        for (k, v) in &meta.tags {
            assert_eq!(&tags[k], v, "credential tag values are stored as they are");
        }
    }

    #[test]
    fn other_tools_tags_survive_and_ours_are_replaced() {
        let id: CredentialId = "x".parse().unwrap();
        let first = desired(
            &id,
            &CredentialMetadata::new().with_tags(Tags::from([("env".into(), "prod".into())])),
            &Tags::new(),
        );
        let mut current = first.clone();
        current.insert("CostCenter".into(), "42".into());
        let second = desired(
            &id,
            &CredentialMetadata::new().with_tags(Tags::from([("tier".into(), "1".into())])),
            &Tags::new(),
        );
        let tags = merged(&current, &second);
        assert_eq!(tags.get("CostCenter").map(String::as_str), Some("42"));
        assert!(!tags.contains_key("env"));
        assert_eq!(tags["tier"], "1");
    }

    /// A default tag dropped from the configuration is removed by the next store; one
    /// another tool added is kept.
    #[test]
    fn default_tag_keys_are_owned() {
        let id: CredentialId = "x".parse().unwrap();
        let meta = CredentialMetadata::new();
        let team = Tags::from([("org:team".to_string(), "pay".to_string())]);
        let mut current = desired(&id, &meta, &team);
        current.insert("other:cost".into(), "42".into());
        let squad = Tags::from([("org:squad".to_string(), "pay".to_string())]);
        let tags = merged(&current, &desired(&id, &meta, &squad));
        assert!(!tags.contains_key("org:team"), "{tags:?}");
        assert_eq!(tags["org:squad"], "pay");
        assert_eq!(tags["other:cost"], "42");
        let tags = merged(&tags, &desired(&id, &meta, &Tags::new()));
        assert!(!tags.contains_key("org:squad"), "{tags:?}");
    }

    #[test]
    fn default_tag_rules() {
        assert!(validate_default_tag("org:team", "pay").is_ok());
        assert!(validate_default_tag("team", "x").unwrap_err().contains("myorg:team"));
        assert!(validate_default_tag("nebula-credential:x", "y").is_err());
        assert!(validate_default_tag("", "y").is_err());
        assert!(validate_default_tag("a:b", &"v".repeat(257)).is_err());
        assert!(validate_default_tag("a:b", "line\nbreak").is_err());
    }
}
