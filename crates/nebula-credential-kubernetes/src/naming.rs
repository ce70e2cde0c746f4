//! Credential id ↔ Secret name: lossless, injective, readable where possible.
//!
//! Secret names are lowercase DNS-1123 subdomains (`[a-z0-9]` at both ends, `[-a-z0-9.]`
//! inside, a `.` only between alphanumerics, at most 253 characters); credential ids are
//! case-sensitive `[A-Za-z0-9_-]{1,128}`. The name of `id` is `prefix + body`:
//!
//! - an id that already is lowercase, without `_`, and does not end in `-` keeps itself:
//!   `api-key` → `nebula-cred-api-key`;
//! - any other id is written lowercase with `_` as `-`, then a `0` when that would end
//!   in `-` or be empty, then `.` and a mask: base32 (`a-z2-7`) of one bit "a `0` was
//!   added", then one bit per letter (uppercase?) and per `-`/`_` (underscore?) of the id:
//!   `Api_Key` → `nebula-cred-api-key.jq`, `api_key` → `nebula-cred-api-key.ba`.
//!
//! The prefix never contains `.`, so the first form never collides with the second, and
//! within the second the mask says exactly which characters were folded. The longest
//! name is `prefix + 128 + 1 + 1 + 26` characters.

use nebula_credential_core::{CredentialId, MAX_ID_LEN};

/// Longest Secret name Kubernetes accepts (a DNS-1123 subdomain).
pub const MAX_NAME_LEN: usize = 253;
/// Characters a name may need beyond its prefix: a 128-character id, a pad, `.` and a
/// 26-character mask.
pub(crate) const MAX_BODY_LEN: usize = MAX_ID_LEN + 2 + (MAX_ID_LEN + 1).div_ceil(5);
/// Longest `secret_prefix` that leaves room for every id.
pub const MAX_PREFIX_LEN: usize = MAX_NAME_LEN - MAX_BODY_LEN;

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Checks a `secret_prefix`: 1..=[`MAX_PREFIX_LEN`] characters of `[a-z0-9-]`, starting
/// with a letter or digit. The text completes "`secret_prefix` …".
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err(
            "must not be empty: it keeps this library's Secrets apart from others (e.g. \"nebula-cred-\")".into(),
        );
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(format!(
            "has {} characters; at most {MAX_PREFIX_LEN} leave room for every id within Kubernetes' {MAX_NAME_LEN}",
            prefix.len()
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "contains {c:?}; Secret names allow lowercase letters, digits and '-' here ('.' is reserved for encoded ids)"
        ));
    }
    if !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a lowercase letter or digit (Secret names are DNS-1123 subdomains)".into());
    }
    Ok(())
}

/// The Secret name of `id` under `prefix` (a valid `secret_prefix`); see the crate docs.
///
/// ```
/// use nebula_credential_kubernetes::secret_name;
/// assert_eq!(secret_name("nebula-cred-", &"api-key".parse()?), "nebula-cred-api-key");
/// assert_eq!(secret_name("nebula-cred-", &"Api_Key".parse()?), "nebula-cred-api-key.jq");
/// # Ok::<(), nebula_credential_core::ValidationError>(())
/// ```
pub fn secret_name(prefix: &str, id: &CredentialId) -> String {
    let id = id.as_str();
    let mut name = String::with_capacity(prefix.len() + id.len() + 28);
    name.push_str(prefix);
    if id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.ends_with('-')
    {
        name.push_str(id);
        return name;
    }
    let mut bits = Vec::with_capacity(id.len() + 1);
    let folded: String = id
        .chars()
        .map(|c| match c {
            'A'..='Z' => {
                bits.push(true);
                c.to_ascii_lowercase()
            }
            'a'..='z' => {
                bits.push(false);
                c
            }
            '_' | '-' => {
                bits.push(c == '_');
                '-'
            }
            _ => c,
        })
        .collect();
    let padded = folded.is_empty() || folded.ends_with('-');
    bits.insert(0, padded);
    name.push_str(&folded);
    if padded {
        name.push('0');
    }
    name.push('.');
    for chunk in bits.chunks(5) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0usize, |acc, (i, b)| acc | (usize::from(*b) << (4 - i)));
        name.push(BASE32[v] as char);
    }
    name
}

/// The id whose Secret name under `prefix` is `name`, if `name` is one.
pub(crate) fn credential_id(prefix: &str, name: &str) -> Option<CredentialId> {
    let rest = name.strip_prefix(prefix)?;
    let candidate = match rest.split_once('.') {
        None => rest.to_string(),
        Some((folded, mask)) => {
            let mut bits = mask.bytes().flat_map(|c| {
                let v = BASE32.iter().position(|b| *b == c).unwrap_or(usize::MAX);
                (0..5).map(move |i| v != usize::MAX && (v >> (4 - i)) & 1 == 1)
            });
            let folded = if bits.next()? {
                folded.strip_suffix('0')?
            } else {
                folded
            };
            folded
                .chars()
                .map(|c| match c {
                    'a'..='z' if bits.next()? => Some(c.to_ascii_uppercase()),
                    '-' if bits.next()? => Some('_'),
                    'a'..='z' | '-' => Some(c),
                    _ => Some(c),
                })
                .collect::<Option<String>>()?
        }
    };
    let id = CredentialId::new(candidate).ok()?;
    // Only the canonical name of an id is one: every other spelling is foreign.
    (secret_name(prefix, &id) == name).then_some(id)
}

/// Whether `name` is a DNS-1123 subdomain of at most 253 characters.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::RngExt;

    use super::*;

    const PREFIX: &str = "nebula-cred-";

    fn id(s: &str) -> CredentialId {
        s.parse().unwrap()
    }

    fn check(prefix: &str, id: &CredentialId) -> String {
        let name = secret_name(prefix, id);
        assert!(is_dns_subdomain(&name), "{id} → {name:?} is not a valid Secret name");
        assert_eq!(
            credential_id(prefix, &name).as_ref(),
            Some(id),
            "{name} does not round-trip"
        );
        name
    }

    #[test]
    fn readable_ids_keep_their_spelling_and_others_carry_a_mask() {
        assert_eq!(secret_name(PREFIX, &id("api-key")), "nebula-cred-api-key");
        assert_eq!(secret_name(PREFIX, &id("db2")), "nebula-cred-db2");
        for (a, b) in [("Key", "key"), ("KEY", "Key"), ("api_key", "api-key"), ("a-", "a_")] {
            assert_ne!(check(PREFIX, &id(a)), check(PREFIX, &id(b)), "{a} / {b}");
        }
        assert_eq!(secret_name(PREFIX, &id("Api_Key")), "nebula-cred-api-key.jq");
        assert_eq!(secret_name(PREFIX, &id("api_key")), "nebula-cred-api-key.ba");
        assert!(secret_name(PREFIX, &id("_")).starts_with("nebula-cred--0."));
    }

    /// Every id of up to 4 characters over an alphabet with each class of character:
    /// all valid names, all round-trip, no two alike.
    #[test]
    fn exhaustively_injective_for_short_ids() {
        let alphabet = ['a', 'Z', 'z', '_', '-', '0'];
        let mut seen: HashMap<String, CredentialId> = HashMap::new();
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &frontier {
                for c in alphabet {
                    let s = format!("{s}{c}");
                    let id = id(&s);
                    let name = check(PREFIX, &id);
                    if let Some(other) = seen.insert(name.clone(), id.clone()) {
                        panic!("{other} and {id} both map to {name}");
                    }
                    next.push(s);
                }
            }
            frontier = next;
        }
        assert_eq!(seen.len(), 6 + 36 + 216 + 1296);
    }

    /// Random ids of every length up to 128: valid, within limits, round-trip, distinct.
    #[test]
    fn random_ids_round_trip_within_limits() {
        let chars: Vec<char> = ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .chain(['_', '-'])
            .collect();
        let longest_prefix = "p".repeat(MAX_PREFIX_LEN);
        let mut rng = rand::rng();
        let mut seen = HashMap::new();
        for n in 0..5_000 {
            let len = 1 + n % MAX_ID_LEN;
            let s: String = (0..len).map(|_| chars[rng.random_range(0..chars.len())]).collect();
            let id = id(&s);
            let name = check(&longest_prefix, &id);
            assert!(name.len() <= MAX_NAME_LEN);
            if let Some(other) = seen.insert(check(PREFIX, &id), id.clone()) {
                assert_eq!(other, id);
            }
        }
        let worst = id(&"_".repeat(MAX_ID_LEN));
        assert_eq!(check(&longest_prefix, &worst).len(), MAX_NAME_LEN);
    }

    #[test]
    fn other_names_are_not_ids_of_ours() {
        for name in [
            "other-secret",
            "nebula-cred-",
            "nebula-cred-api-key.",
            "nebula-cred-Api",
            "nebula-cred-api.a",      // a mask that does not fit: non-canonical
            "nebula-cred-api-key.zz", // too many bits
            "nebula-cred-a-",
            "nebula-cred-a.b.c",
        ] {
            assert_eq!(credential_id(PREFIX, name), None, "{name}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("nebula-cred-").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("-x").is_err());
        assert!(check_prefix("My-").unwrap_err().contains("'M'"));
        assert!(check_prefix("a.b-").unwrap_err().contains("'.'"));
        assert!(check_prefix(&"p".repeat(MAX_PREFIX_LEN + 1)).is_err());
    }
}
