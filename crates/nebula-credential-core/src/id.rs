//! [`CredentialId`]: the validated name of a credential, and [`ValidationError`], the error
//! of input that breaks the core's rules (ids, tags, filters).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest id accepted, in characters (every backend can carry it).
pub const MAX_ID_LEN: usize = 128;

/// The name of a credential: 1 to 128 ASCII characters from `[A-Za-z0-9_-]`.
///
/// Case-sensitive on every backend: `Api_Key` and `api_key` are two credentials.
/// Anything else (empty, too long, `.`, `/`, `\`, whitespace, non-ASCII) is rejected,
/// so an id can never escape a directory or a prefix.
///
/// ```
/// use nebula_credential_core::CredentialId;
/// let id: CredentialId = "github_token".parse()?;
/// assert_eq!(id.as_str(), "github_token");
/// assert!("../etc/passwd".parse::<CredentialId>().is_err());
/// # Ok::<(), nebula_credential_core::ValidationError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId(String);

impl CredentialId {
    /// Validates `value` and wraps it.
    pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        validate(&value)?;
        Ok(CredentialId(value))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the id, returning the string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Quotes `value` for an error message, shortened so a huge input stays readable.
pub(crate) fn shown(value: &str) -> String {
    const KEEP: usize = 40;
    if value.chars().count() <= KEEP {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(KEEP).collect();
        format!("{head:?}… ({} characters)", value.chars().count())
    }
}

fn validate(value: &str) -> Result<(), ValidationError> {
    let fail = |reason: String| {
        Err(ValidationError::InvalidId {
            shown: shown(value),
            reason,
        })
    };
    if value.is_empty() {
        return fail("it is empty".into());
    }
    let len = value.chars().count();
    if len > MAX_ID_LEN {
        return fail(format!("it has {len} characters, more than {MAX_ID_LEN}"));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        let what = match bad {
            '/' | '\\' => "a path separator".to_string(),
            '.' => "a dot".to_string(),
            c if c.is_whitespace() => "whitespace".to_string(),
            c if !c.is_ascii() => format!("the non-ASCII character {c:?}"),
            c => format!("the character {c:?}"),
        };
        return fail(format!("it contains {what}"));
    }
    Ok(())
}

impl FromStr for CredentialId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CredentialId::new(s)
    }
}

impl TryFrom<String> for CredentialId {
    type Error = ValidationError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        CredentialId::new(value)
    }
}

impl TryFrom<&str> for CredentialId {
    type Error = ValidationError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        CredentialId::new(value)
    }
}

impl AsRef<str> for CredentialId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({:?})", self.0)
    }
}

impl Serialize for CredentialId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CredentialId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        CredentialId::new(s).map_err(serde::de::Error::custom)
    }
}

/// Input that breaks the core's rules: credential ids, tags, filters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A credential id breaks the id rules.
    #[error("invalid credential id {shown}: {reason}; use 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")]
    InvalidId {
        /// The id as given, quoted and shortened for display.
        shown: String,
        /// The rule broken.
        reason: String,
    },
    /// A tag key or value breaks the tag rules.
    #[error("invalid tag {key}: {reason}")]
    InvalidTag {
        /// The tag key, quoted and shortened for display.
        key: String,
        /// The rule broken.
        reason: String,
    },
    /// More tags than every backend can hold.
    #[error("{count} tags given, but at most {max} are allowed; merge or drop some tags")]
    TooManyTags {
        /// Tags given.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// A filter or other argument is inconsistent.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// What was invalid.
        what: &'static str,
        /// The rule broken.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let max = "a".repeat(128);
        let valid = [
            "a",
            "A",
            "0",
            "_",
            "-",
            "api_key",
            "API-KEY-2",
            "Mixed_Case-123",
            max.as_str(),
        ];
        for v in valid {
            assert!(CredentialId::new(v).is_ok(), "{v:?} should be valid");
        }
        let too_long = "a".repeat(129);
        let invalid: [(&str, &str); 12] = [
            ("", "empty"),
            ("../x", "a dot"),
            ("..", "a dot"),
            ("a/b", "path separator"),
            ("a\\b", "path separator"),
            ("a.b", "a dot"),
            (" ", "whitespace"),
            ("a b", "whitespace"),
            ("tab\t", "whitespace"),
            ("é", "non-ASCII"),
            (too_long.as_str(), "129 characters"),
            ("a:b", "':'"),
        ];
        for (v, why) in invalid {
            let err = CredentialId::new(v).expect_err(v);
            let msg = err.to_string();
            assert!(msg.contains(why), "{v:?}: {msg}");
            assert!(msg.contains("1 to 128 characters"), "{msg}");
        }
    }

    #[test]
    fn case_sensitive_and_ordered() {
        let a: CredentialId = "Api_Key".parse().unwrap();
        let b: CredentialId = "api_key".parse().unwrap();
        assert_ne!(a, b);
        assert!(a < b);
    }

    #[test]
    fn serde_as_string_and_validated() {
        let id: CredentialId = "db-password".parse().unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"db-password\"");
        let back: CredentialId = serde_json::from_str("\"db-password\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<CredentialId>("\"../x\"").is_err());
        assert_eq!(CredentialId::try_from("x".to_string()).unwrap().to_string(), "x");
    }

    #[test]
    fn long_input_is_shortened_in_errors() {
        let err = CredentialId::new("x".repeat(5000)).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
        assert!(err.contains("5000 characters"));
    }
}
