//! [`CredentialMetadata`] and the tag rules every backend can honour.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{ValidationError, shown};

/// A point in time, UTC.
pub type Timestamp = DateTime<Utc>;

/// Tags of a credential: key → value, sorted by key.
pub type Tags = BTreeMap<String, String>;

/// Most tags a credential may carry (the lowest common denominator of the backends).
pub const MAX_TAGS: usize = 10;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY_LEN: usize = 63;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_LEN: usize = 256;

/// The current time, truncated to milliseconds (the precision every backend keeps).
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

/// What is known about a credential besides its value.
///
/// [`CredentialStore`](crate::CredentialStore) manages `created_at`, `updated_at` and
/// `version`; providers persist the whole struct verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialMetadata {
    /// When the credential was first stored (UTC, millisecond precision).
    pub created_at: Timestamp,
    /// When it was last stored (UTC, millisecond precision).
    pub updated_at: Timestamp,
    /// 1 on first store, +1 on each overwrite.
    pub version: u64,
    /// Free-form tags, validated by [`validate_tags`].
    #[serde(default)]
    pub tags: Tags,
    /// When the credential stops being valid, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl CredentialMetadata {
    /// Metadata for a credential created now: version 1, no tags, no expiry.
    pub fn new() -> Self {
        let now = now();
        CredentialMetadata {
            created_at: now,
            updated_at: now,
            version: 1,
            tags: Tags::new(),
            expires_at: None,
        }
    }

    /// Replaces the tags (validated later, by [`validate`](Self::validate)).
    pub fn with_tags(mut self, tags: Tags) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the expiry time, truncated to milliseconds.
    pub fn with_expiry(mut self, expires_at: Timestamp) -> Self {
        self.expires_at = Some(expires_at.trunc_subsecs(3));
        self
    }

    /// `true` when `expires_at` is set and not after `at`.
    pub fn is_expired_at(&self, at: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= at)
    }

    /// Checks the tag rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_tags(&self.tags)
    }
}

impl Default for CredentialMetadata {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks the tag rules: at most [`MAX_TAGS`] tags; each key 1..=63 characters of
/// `[A-Za-z0-9._-]`, starting and ending alphanumeric; each value 0..=256 characters
/// of any Unicode except control characters.
pub fn validate_tags(tags: &Tags) -> Result<(), ValidationError> {
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::TooManyTags {
            count: tags.len(),
            max: MAX_TAGS,
        });
    }
    for (key, value) in tags {
        validate_tag(key, value)?;
    }
    Ok(())
}

fn validate_tag(key: &str, value: &str) -> Result<(), ValidationError> {
    validate_tag_key(key)?;
    let value_len = value.chars().count();
    if value_len > MAX_TAG_VALUE_LEN {
        return Err(invalid_tag(
            key,
            format!("the value has {value_len} characters, more than {MAX_TAG_VALUE_LEN}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid_tag(key, "the value contains a control character".into()));
    }
    Ok(())
}

fn invalid_tag(key: &str, reason: String) -> ValidationError {
    ValidationError::InvalidTag {
        key: shown(key),
        reason,
    }
}

/// Checks a tag key: 1..=63 characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
pub(crate) fn validate_tag_key(key: &str) -> Result<(), ValidationError> {
    let fail = |reason: String| Err(invalid_tag(key, reason));
    let key_len = key.chars().count();
    if key_len == 0 || key_len > MAX_TAG_KEY_LEN {
        return fail(format!("the key has {key_len} characters; use 1 to {MAX_TAG_KEY_LEN}"));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return fail(format!(
            "the key contains {c:?}; use only A-Z, a-z, 0-9, '.', '_' and '-'"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(key.chars().next()) || !alnum(key.chars().last()) {
        return fail("the key must start and end with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn tag_rules() {
        let long_key = "k".repeat(63);
        let long_value = "é".repeat(256);
        let ok = [
            tags(&[("env", "prod")]),
            tags(&[("a", "")]),
            tags(&[("app.kubernetes.io-name_x", "Ünïcødé ✓ 日本")]),
            tags(&[(long_key.as_str(), long_value.as_str())]),
            (0..10).map(|i| (format!("k{i}"), format!("v{i}"))).collect(),
        ];
        for t in &ok {
            validate_tags(t).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        }
        let too_long_key = "k".repeat(64);
        let too_long_value = "v".repeat(257);
        let bad = [
            (tags(&[("", "x")]), "1 to 63"),
            (tags(&[(too_long_key.as_str(), "x")]), "1 to 63"),
            (tags(&[("-env", "x")]), "start and end"),
            (tags(&[("env.", "x")]), "start and end"),
            (tags(&[("en v", "x")]), "' '"),
            (tags(&[("env/x", "x")]), "'/'"),
            (tags(&[("env", too_long_value.as_str())]), "more than 256"),
            (tags(&[("env", "a\nb")]), "control"),
        ];
        for (t, why) in &bad {
            let e = validate_tags(t).expect_err(why).to_string();
            assert!(e.contains(why), "{t:?}: {e}");
        }
        let eleven: Tags = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(matches!(
            validate_tags(&eleven),
            Err(ValidationError::TooManyTags { count: 11, max: 10 })
        ));
    }

    #[test]
    fn timestamps_have_millisecond_precision() {
        let m = CredentialMetadata::new();
        assert_eq!(m.created_at.timestamp_subsec_nanos() % 1_000_000, 0);
        assert_eq!(m.version, 1);
        let json = serde_json::to_string(&m).unwrap();
        let back: CredentialMetadata = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn expiry() {
        let m = CredentialMetadata::new().with_expiry(now());
        assert!(m.is_expired_at(now() + chrono::Duration::seconds(1)));
        assert!(!CredentialMetadata::new().is_expired_at(now()));
    }
}
