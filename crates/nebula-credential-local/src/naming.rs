//! Credential id ↔ file name, lossless and safe on case-insensitive file systems and
//! on Windows.
//!
//! A name is the id in lowercase, then — only when the id has uppercase letters — a dot
//! and a hex mask of which characters were uppercase, then the extension. Ids that
//! Windows reserves as device names (`con`, `prn`, `aux`, `nul`, `com1`–`com9`,
//! `lpt1`–`lpt9`, in any case) get an `@` in front, which no id contains:
//!
//! | id | file name |
//! |---|---|
//! | `api_key` | `api_key.enc.json` |
//! | `Api_Key` | `api_key.88.enc.json` |
//! | `API_KEY` | `api_key.ee.enc.json` |
//! | `nul` | `@nul.enc.json` |
//! | `Com1` | `@com1.8.enc.json` |
//!
//! Distinct ids give names that differ even case-insensitively (same lowercase → different
//! masks), every name stays within 1 + 128 + 1 + 32 characters plus the extension, and
//! `list` recovers the original id from the name alone: only the name [`file_name`]
//! gives for an id parses back to it. Ids never contain a dot and never start with one,
//! so temporary and lock files (which start with a dot) are never taken for credentials.

use nebula_credential_core::CredentialId;

/// Device names Windows resolves in every directory, whatever follows the first dot.
const WINDOWS_DEVICES: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9", "lpt1", "lpt2",
    "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Put before the name of an id that is a Windows device name; not an id character.
const DEVICE_MARK: &str = "@";

/// The file name of `id` with extension `ext` (without its leading dot).
pub(crate) fn file_name(id: &CredentialId, ext: &str) -> String {
    let id = id.as_str();
    let lower = id.to_ascii_lowercase();
    let mark = if WINDOWS_DEVICES.contains(&lower.as_str()) {
        DEVICE_MARK
    } else {
        ""
    };
    if lower == id {
        return format!("{mark}{lower}.{ext}");
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
    format!("{mark}{lower}.{mask}.{ext}")
}

/// The id a file name stands for, or `None` when the name is not a credential file
/// written by [`file_name`] with extension `ext` (temp files, lock files, strangers).
pub(crate) fn parse_file_name(name: &str, ext: &str) -> Option<CredentialId> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    let (marked, stem) = match stem.strip_prefix(DEVICE_MARK) {
        Some(stem) => (true, stem),
        None => (false, stem),
    };
    let (lower, mask) = match stem.split_once('.') {
        Some((lower, mask)) => (lower, Some(mask)),
        None => (stem, None),
    };
    if lower.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let id: String = match mask {
        // The common case, without building the name again: an all-lowercase id is
        // canonical exactly when it carries the device mark if and only if it needs one.
        None => {
            let id = CredentialId::new(lower).ok()?;
            return (marked == WINDOWS_DEVICES.contains(&lower)).then_some(id);
        }
        Some(mask) => {
            if mask.len() != lower.len().div_ceil(4) {
                return None;
            }
            let nibbles: Vec<u32> = mask.chars().map(|c| c.to_digit(16)).collect::<Option<_>>()?;
            lower
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if nibbles[i / 4] & (8 >> (i % 4)) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        }
    };
    // Canonical names only (a mask marking letters, and at least one; the device mark
    // exactly where it belongs), so two names never stand for one id.
    let id = CredentialId::new(id).ok()?;
    (file_name(&id, ext) == name).then_some(id)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    use nebula_credential_core::conformance::id;

    #[test]
    fn examples() {
        assert_eq!(file_name(&id("api_key"), "enc.json"), "api_key.enc.json");
        assert_eq!(file_name(&id("Api_Key"), "enc.json"), "api_key.88.enc.json");
        assert_eq!(file_name(&id("API_KEY"), "enc.json"), "api_key.ee.enc.json");
        assert_eq!(file_name(&id("a-B"), "json"), "a-b.2.json");
        assert_eq!(file_name(&id("nul"), "enc.json"), "@nul.enc.json");
        assert_eq!(file_name(&id("Com1"), "enc.json"), "@com1.8.enc.json");
        assert_eq!(file_name(&id("con_1"), "enc.json"), "con_1.enc.json");
        assert_eq!(file_name(&id("com10"), "enc.json"), "com10.enc.json");
    }

    /// Windows opens the device for `NUL`, `nul.txt` or `nul.enc.json`: what counts is
    /// the part before the first dot, in any case.
    fn is_windows_device(file: &str) -> bool {
        let base = file.split('.').next().unwrap_or_default().to_ascii_lowercase();
        WINDOWS_DEVICES.contains(&base.as_str())
    }

    #[test]
    fn windows_device_names_map_to_safe_names_and_round_trip() {
        let mut seen = HashSet::new();
        let devices = ["con", "prn", "aux", "nul"]
            .into_iter()
            .map(String::from)
            .chain((1..=9).flat_map(|n| [format!("com{n}"), format!("lpt{n}")]));
        for device in devices {
            let upper = device.to_ascii_uppercase();
            let mut title = upper[..1].to_string();
            title.push_str(&device[1..]);
            for s in [device.clone(), upper, title] {
                for ext in ["enc.json", "json", "txt"] {
                    let name = file_name(&id(&s), ext);
                    assert!(!is_windows_device(&name), "{s} -> {name}");
                    assert_eq!(parse_file_name(&name, ext), Some(id(&s)), "{name}");
                    assert!(seen.insert(name.to_lowercase()), "case-insensitive collision for {s}");
                }
                // The unmarked name is not canonical, so no two names stand for one id.
                let bare = format!("{}.enc.json", s.to_ascii_lowercase());
                assert_eq!(parse_file_name(&bare, "enc.json"), None, "{bare}");
            }
        }
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
            "@api_key.enc.json",
            "@@nul.enc.json",
            "@.enc.json",
            "nul.enc.json",
            "@nul.0.enc.json",
        ] {
            assert_eq!(parse_file_name(name, "enc.json"), None, "{name}");
        }
    }
}
