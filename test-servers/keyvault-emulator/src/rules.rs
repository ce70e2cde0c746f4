//! The service's documented limits on names, values, tags and content types.
//!
//! Sizes follow Microsoft's docs ("About Azure Key Vault secrets", service limits):
//! a value is at most 25 KB, counted here as 25,600 UTF-8 bytes (the figure clients and the
//! CLI quote); at most 15 tags, tag names and values at most 512 characters each (the current
//! docs; older pages said 256); `contentType` at most 255 characters.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// Longest secret name.
pub const MAX_NAME_LEN: usize = 127;
/// Largest secret value, in UTF-8 bytes (25 KB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
/// Most tags on one secret.
pub const MAX_TAGS: usize = 15;
/// Longest tag name, in characters.
pub const MAX_TAG_NAME_CHARS: usize = 512;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_CHARS: usize = 512;
/// Longest `contentType`, in characters.
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;

/// Checks a secret name against `^[0-9a-zA-Z-]{1,127}$`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let valid =
        !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_parameter(format!(
            "The request URI contains an invalid name: {name}"
        )))
    }
}

/// The key a name is stored under: names are case-insensitive.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Checks a value's size.
pub fn check_value(value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::bad_parameter(format!(
            "Secret value is {} bytes, beyond the maximum permitted size of {MAX_VALUE_BYTES} bytes.",
            value.len()
        )));
    }
    Ok(())
}

/// Checks a `contentType`.
pub fn check_content_type(content_type: &str) -> Result<(), ApiError> {
    if content_type.chars().count() > MAX_CONTENT_TYPE_CHARS {
        return Err(ApiError::bad_parameter(format!(
            "Property contentType exceeds the maximum length of {MAX_CONTENT_TYPE_CHARS} characters."
        )));
    }
    Ok(())
}

/// Checks the number of tags and each tag's name and value length.
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_parameter(format!(
            "The number of tags ({}) exceeds the maximum of {MAX_TAGS}.",
            tags.len()
        )));
    }
    for (name, value) in tags {
        if name.is_empty() || name.chars().count() > MAX_TAG_NAME_CHARS {
            return Err(ApiError::bad_parameter(format!(
                "Tag names must be 1 to {MAX_TAG_NAME_CHARS} characters long."
            )));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(ApiError::bad_parameter(format!(
                "Tag values must be at most {MAX_TAG_VALUE_CHARS} characters long."
            )));
        }
    }
    Ok(())
}

/// Checks a vault name taken from a host name: 3–24 characters of `[0-9a-zA-Z-]`.
pub fn is_vault_name(name: &str) -> bool {
    (3..=24).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        for good in ["a", "A-1", "my-secret", &"x".repeat(127), "0", "-"] {
            assert!(check_name(good).is_ok(), "{good} should be valid");
        }
        for bad in ["", "a_b", "a.b", "a b", "é", "a/b", &"x".repeat(128)] {
            let error = check_name(bad).unwrap_err();
            assert_eq!((error.status, error.code.as_ref()), (400, "BadParameter"), "{bad}");
        }
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(name_key("My-Key"), name_key("my-KEY"));
    }

    #[test]
    fn value_limit_counts_utf8_bytes() {
        assert!(check_value(&"a".repeat(MAX_VALUE_BYTES)).is_ok());
        assert!(check_value(&"a".repeat(MAX_VALUE_BYTES + 1)).is_err());
        // 12,801 two-byte characters are 25,602 bytes.
        assert!(check_value(&"é".repeat(12_801)).is_err());
        assert!(check_value("").is_ok());
    }

    #[test]
    fn tag_limits() {
        let tags: BTreeMap<_, _> = (0..15).map(|i| (format!("t{i}"), String::new())).collect();
        assert!(check_tags(&tags).is_ok());
        let mut too_many = tags.clone();
        too_many.insert("t15".into(), "v".into());
        assert!(check_tags(&too_many).is_err());
        let long_name = BTreeMap::from([("n".repeat(513), "v".to_string())]);
        assert!(check_tags(&long_name).is_err());
        let long_value = BTreeMap::from([("n".to_string(), "v".repeat(513))]);
        assert!(check_tags(&long_value).is_err());
    }

    #[test]
    fn content_type_limit() {
        assert!(check_content_type(&"c".repeat(255)).is_ok());
        assert!(check_content_type(&"c".repeat(256)).is_err());
    }

    #[test]
    fn vault_names() {
        assert!(is_vault_name("nebula"));
        assert!(!is_vault_name("ab"));
        assert!(!is_vault_name("a.b.c"));
    }
}
