//! Credential id ↔ file name, lossless and safe on case-insensitive file systems.
//!
//! A name is the id in lowercase, then — only when the id has uppercase letters — a dot
//! and a hex mask of which characters were uppercase, then the extension:
//!
//! | id | file name |
//! |---|---|
//! | `api_key` | `api_key.enc.json` |
//! | `Api_Key` | `api_key.88.enc.json` |
//! | `API_KEY` | `api_key.ee.enc.json` |
//!
//! Distinct ids give names that differ even case-insensitively (same lowercase → different
//! masks), every name stays within 128 + 1 + 32 characters plus the extension, and
//! `list` recovers the original id from the name alone. Ids never contain a dot and never
//! start with one, so temporary and lock files (which start with a dot) are never taken
//! for credentials.

use nebula_credential_core::CredentialId;

/// The file name of `id` with extension `ext` (without its leading dot).
pub(crate) fn file_name(id: &CredentialId, ext: &str) -> String {
    let id = id.as_str();
    let lower = id.to_ascii_lowercase();
    if lower == id {
        return format!("{lower}.{ext}");
    }
    let mask: String = id
        .as_bytes()
        .chunks(4)
        .map(|chunk| {
            let nibble = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0u32, |acc, (i, _)| acc | (8 >> i));
            char::from_digit(nibble, 16).expect("nibble")
        })
        .collect();
    format!("{lower}.{mask}.{ext}")
}

/// The id a file name stands for, or `None` when the name is not a credential file
/// written by [`file_name`] with extension `ext` (temp files, lock files, strangers).
pub(crate) fn parse_file_name(name: &str, ext: &str) -> Option<CredentialId> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    let (lower, mask) = match stem.split_once('.') {
        Some((lower, mask)) => (lower, Some(mask)),
        None => (stem, None),
    };
    if lower.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let id = match mask {
        None => lower.to_string(),
        Some(mask) => {
            if mask.len() != lower.len().div_ceil(4) || mask.bytes().any(|b| b.is_ascii_uppercase()) {
                return None;
            }
            let nibbles: Vec<u32> = mask.chars().map(|c| c.to_digit(16)).collect::<Option<_>>()?;
            let mut any_upper = false;
            let id: String = lower
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    let upper = nibbles[i / 4] & (8 >> (i % 4)) != 0;
                    any_upper |= upper;
                    if upper { c.to_ascii_uppercase() } else { c }
                })
                .collect();
            // Canonical names only: the mask must mark letters, and at least one.
            if !any_upper || file_name(&CredentialId::new(id.clone()).ok()?, ext) != name {
                return None;
            }
            id
        }
    };
    CredentialId::new(id).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn id(s: &str) -> CredentialId {
        s.parse().unwrap()
    }

    #[test]
    fn examples() {
        assert_eq!(file_name(&id("api_key"), "enc.json"), "api_key.enc.json");
        assert_eq!(file_name(&id("Api_Key"), "enc.json"), "api_key.88.enc.json");
        assert_eq!(file_name(&id("API_KEY"), "enc.json"), "api_key.ee.enc.json");
        assert_eq!(file_name(&id("a-B"), "json"), "a-b.2.json");
    }

    #[test]
    fn round_trip_and_no_case_insensitive_collisions() {
        let mut seen = HashSet::new();
        let long: String = "Ab_9-zY".chars().cycle().take(128).collect();
        let upper = "X".repeat(128);
        let samples = [
            "a",
            "A",
            "ab",
            "aB",
            "Ab",
            "AB",
            "api_key",
            "Api_Key",
            "API_KEY",
            "api_KEY",
            "_",
            "-",
            "0",
            "a0_B-c",
            long.as_str(),
            upper.as_str(),
        ];
        for s in samples {
            let name = file_name(&id(s), "enc.json");
            assert!(name.len() <= 128 + 1 + 32 + 9, "{name}");
            assert!(!name.starts_with('.'));
            assert_eq!(parse_file_name(&name, "enc.json"), Some(id(s)), "{name}");
            assert!(seen.insert(name.to_lowercase()), "case-insensitive collision for {s}");
        }
    }

    #[test]
    fn strangers_are_not_credentials() {
        for name in [
            ".api_key.enc.json.x1y2.tmp",
            ".api_key.enc.json.lock",
            "api_key.json",
            "API_KEY.enc.json",
            "api_key.FE.enc.json",
            "api_key.00.enc.json",
            "api_key.f.enc.json",
            "api_key.zz.enc.json",
            "a.8.b.enc.json",
            "_.8.enc.json",
            "enc.json",
            ".enc.json",
            "a b.enc.json",
        ] {
            assert_eq!(parse_file_name(name, "enc.json"), None, "{name}");
        }
    }
}
