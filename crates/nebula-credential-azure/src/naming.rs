//! Credential ids ↔ Key Vault secret names.
//!
//! Key Vault names are 1–127 characters of `[0-9A-Za-z-]` and case-insensitive; credential
//! ids are 1–128 characters of `[0-9A-Za-z_-]` and case-sensitive. The name of `id` is
//! `secret_prefix` followed by an escaped form of `id` that uses lowercase letters,
//! digits and `-` only, so names of distinct ids differ even when compared
//! case-insensitively:
//!
//! | id character | in the name |
//! |---|---|
//! | `a`–`z`, `0`–`9` | itself |
//! | `A`–`Z` | `-` + the lowercase letter (`K` → `-k`) |
//! | `_` | `--` |
//! | `-` | `-0` |
//!
//! `github_token` → `github--token`, `Api-Key` → `-api-0-key`. Every `-` starts a
//! two-character escape, so the escaped form decodes unambiguously (a prefix-free code):
//! distinct ids give distinct names.
//!
//! When the escaped form does not fit in the room the prefix leaves, the name is the
//! longest escape-aligned start of it, then `-2` (an escape the exact form never uses) and
//! 40 hex digits of the SHA-256 of the id: names of such ids differ from every exact name,
//! and from each other unless SHA-256 collides in 160 bits. The original id is always also
//! kept in a tag, which every read checks, so even a collision could never return another
//! credential's record.

use sha2::{Digest, Sha256};

/// Longest Key Vault secret name.
pub const MAX_NAME_LEN: usize = 127;
/// Hex digits of the id digest in a shortened name.
const DIGEST_HEX: usize = 40;
/// Length of the marker and digest that end a shortened name (`-2` + 40 hex digits).
pub(crate) const DIGEST_SUFFIX_LEN: usize = 2 + DIGEST_HEX;
/// Longest `secret_prefix`: leaves room for the digest suffix and at least 21 readable
/// characters of the id.
pub const MAX_PREFIX_LEN: usize = 64;

/// The escaped form of one id character.
fn escape(c: char, out: &mut String) {
    match c {
        'a'..='z' | '0'..='9' => out.push(c),
        'A'..='Z' => {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        }
        '_' => out.push_str("--"),
        '-' => out.push_str("-0"),
        // CredentialId admits nothing else.
        other => unreachable!("credential ids never contain {other:?}"),
    }
}

/// The name part of `id` within `room` characters (the prefix takes the rest).
pub(crate) fn encode(id: &str, room: usize) -> String {
    let mut exact = String::with_capacity(id.len() * 2);
    for c in id.chars() {
        escape(c, &mut exact);
    }
    if exact.len() <= room {
        return exact;
    }
    let keep = room.saturating_sub(DIGEST_SUFFIX_LEN);
    let mut short = String::with_capacity(room);
    let mut piece = String::with_capacity(2);
    for c in id.chars() {
        piece.clear();
        escape(c, &mut piece);
        if short.len() + piece.len() > keep {
            break;
        }
        short.push_str(&piece);
    }
    let digest = Sha256::digest(id.as_bytes());
    short.push_str("-2");
    for b in digest.iter().take(DIGEST_HEX / 2) {
        short.push_str(&format!("{b:02x}"));
    }
    short
}

/// The id an exact name part stands for; `None` for a shortened (digest) name or
/// anything this module does not write.
#[cfg(test)]
pub(crate) fn decode(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            '-' => match chars.next()? {
                '-' => out.push('_'),
                '0' => out.push('-'),
                l @ 'a'..='z' => out.push(l.to_ascii_uppercase()),
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::RngExt as _;

    use super::*;

    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

    fn random_id(rng: &mut impl rand::Rng, max: usize) -> String {
        let len = rng.random_range(1..=max);
        (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    #[test]
    fn readable_examples() {
        assert_eq!(encode("github_token", 120), "github--token");
        assert_eq!(encode("Api-Key", 120), "-api-0-key");
        assert_eq!(encode("db2", 120), "db2");
        for id in ["github_token", "Api-Key", "API_KEY", "a", "_", "-", "Z9_-x"] {
            assert_eq!(decode(&encode(id, 120)).as_deref(), Some(id));
        }
    }

    #[test]
    fn case_variants_get_names_that_differ_case_insensitively() {
        let names: Vec<String> = ["Key", "key", "KEY", "kEy"].iter().map(|i| encode(i, 120)).collect();
        for (i, a) in names.iter().enumerate() {
            assert!(
                a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            for b in &names[i + 1..] {
                assert!(!a.eq_ignore_ascii_case(b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn the_longest_ids_fit_with_the_longest_prefix() {
        let room = MAX_NAME_LEN - MAX_PREFIX_LEN;
        let worst: String = "A_".repeat(64);
        let name = encode(&worst, room);
        assert!(name.len() <= room, "{}", name.len());
        assert!(name.len() >= 42 + 20, "keeps a readable start: {name}");
        assert_eq!(decode(&name), None, "a shortened name does not decode");
        let nearly: String = "a".repeat(127) + "B";
        assert_ne!(encode(&nearly, room), encode(&("a".repeat(127) + "b"), room));
    }

    /// Property test: over many random ids (and their case variants) every name is
    /// within the room, uses only `[0-9a-z-]`, round-trips when exact, and no two
    /// distinct ids share a name, compared case-insensitively.
    #[test]
    fn encoding_is_injective_bounded_and_case_insensitive_safe() {
        let mut rng = rand::rng();
        for room in [MAX_NAME_LEN - MAX_PREFIX_LEN, MAX_NAME_LEN - 7, 80] {
            let mut seen: HashMap<String, String> = HashMap::new();
            for n in 0..20_000 {
                let id = random_id(&mut rng, if n % 2 == 0 { 128 } else { 12 });
                let variants = [id.clone(), id.to_ascii_lowercase(), id.to_ascii_uppercase()];
                for id in variants {
                    let name = encode(&id, room);
                    assert!(name.len() <= room && !name.is_empty(), "{id} → {name}");
                    assert!(
                        name.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                        "{name}"
                    );
                    if let Some(back) = decode(&name) {
                        assert_eq!(back, id);
                    } else {
                        assert!(name.contains("-2") && name.len() > room - 2 - DIGEST_SUFFIX_LEN);
                    }
                    let key = name.to_ascii_lowercase();
                    if let Some(other) = seen.insert(key, id.clone()) {
                        assert_eq!(other, id, "two ids share the name {name}");
                    }
                }
            }
        }
    }
}
