//! How the provider writes and recognises secret versions: its stage labels, the version
//! ids it chooses, and what a version id proves on its own.
//!
//! Every version this provider writes gets a `ClientRequestToken` (which AWS keeps as the
//! version id) of 64 hex characters in two halves:
//!
//! - the *authorship* half, a digest of (secret name, value): `retrieve` recomputes it from
//!   the `GetSecretValue` answer alone, so a version whose id matches was written by this
//!   library under this very name with exactly this value. A value another tool puts gets
//!   an id of its own (the SDKs and the CLI generate a UUID), a copy of our record under
//!   another name fails the digest, so neither is taken as ours without `DescribeSecret`
//!   (the marker tag). The digest is not a secret: it tells our writes from other tools'
//!   accidents, not from someone forging a version id on purpose (who could as well add
//!   the marker tag).
//! - the *write* half, a digest of (secret name, version written over, value) whose last
//!   character says whether the write was unconditional (`0`) or conditional (`1`): the
//!   same write retried reuses the id (AWS then ignores the repeat), two different writes
//!   from the same version never share it, and a plain store whose stage move was refused
//!   can tell from the winner's id alone whether counting itself "landed, then
//!   overwritten" is consistent (only when the winner was unconditional too).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// AWS's stage label of the current version.
pub(crate) const CURRENT: &str = "AWSCURRENT";
/// Stage label of a version until it is made current. `PutSecretValue` needs at least one
/// label to not attach `AWSCURRENT` by itself; the label moves on with the next write.
pub(crate) const PENDING: &str = "NEBULA_PENDING";
/// Stage label of a tombstone version (written before a delete with a recovery window).
pub(crate) const TOMBSTONE: &str = "NEBULA_DELETED";
/// The value of a tombstone version: no record, so it reads as "not found".
pub(crate) const TOMBSTONE_VALUE: &str = "{\"nebula_credential\":\"deleted\"}";

/// Hex characters of each half of a version id.
const HALF: usize = 32;

/// How a version is written, recorded in the last character of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// An unconditional store (or a delete's tombstone): last writer wins.
    Plain,
    /// A create, or a store at a revision.
    Conditional,
}

/// The version id of the `write` of `value` to secret `name` over version `expected`
/// (empty for a create). 64 hex characters, within AWS's 32–64 for a `ClientRequestToken`.
pub(crate) fn version_token(name: &str, expected: &str, value: &str, write: Write) -> String {
    let mut token = digest(&["authorship", name, value]);
    let half = digest(&["write", name, expected, value]);
    token.push_str(&half[..HALF - 1]);
    token.push(match write {
        Write::Plain => '0',
        Write::Conditional => '1',
    });
    token
}

/// Whether `version_id` is one this library wrote unconditionally.
pub(crate) fn plain_write(version_id: &str) -> bool {
    version_id.len() == 2 * HALF && version_id.bytes().all(|b| b.is_ascii_hexdigit()) && version_id.ends_with('0')
}

/// Whether `version_id` proves that this library wrote `value` under `name`.
pub(crate) fn authored(name: &str, version_id: &str, value: &str) -> bool {
    version_id.len() == 2 * HALF
        && version_id
            .get(..HALF)
            .is_some_and(|half| half == digest(&["authorship", name, value]))
}

/// The first 16 bytes of SHA-256 over the length-prefixed parts, in hex.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..HALF / 2].iter().map(|b| format!("{b:02x}")).collect()
}

/// The version holding `AWSCURRENT`, and whether it is a tombstone.
pub(crate) fn current_version(stages: Option<&HashMap<String, Vec<String>>>) -> (Option<String>, bool) {
    let current = stages
        .into_iter()
        .flatten()
        .find(|(_, labels)| labels.iter().any(|l| l == CURRENT));
    match current {
        Some((version, labels)) => (Some(version.clone()), labels.iter().any(|l| l == TOMBSTONE)),
        None => (None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_id_proves_name_and_value_only() {
        let token = version_token("app/key", "v1", "{\"record\":1}", Write::Plain);
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(authored("app/key", &token, "{\"record\":1}"));
        // The version written over does not matter for authorship.
        assert!(authored(
            "app/key",
            &version_token("app/key", "", "{\"record\":1}", Write::Conditional),
            "{\"record\":1}"
        ));
        assert!(!authored("app/key", &token, "{\"record\":2}"), "another value");
        assert!(
            !authored("app/other", &token, "{\"record\":1}"),
            "a copy under another name"
        );
        assert!(!authored("app/key", &token[..32], "{\"record\":1}"), "half an id");
        assert!(
            !authored("app/key", "3f6c6d0e-8b1a-4c2e-9f5d-0a1b2c3d4e5f", "x"),
            "an SDK's UUID"
        );
        assert!(!authored("app/key", "é".repeat(32).as_str(), "x"), "not hex");
    }

    #[test]
    fn writes_differ_by_the_version_written_over() {
        let a = version_token("n", "v1", "x", Write::Plain);
        assert_eq!(a, version_token("n", "v1", "x", Write::Plain), "a retry reuses its id");
        assert_ne!(a, version_token("n", "v2", "x", Write::Plain));
        assert_ne!(a, version_token("n", "v1", "y", Write::Plain));
        // Length prefixes keep the parts apart.
        assert_ne!(
            version_token("ab", "c", "x", Write::Plain),
            version_token("a", "bc", "x", Write::Plain)
        );
    }

    #[test]
    fn a_version_id_says_whether_its_write_was_unconditional() {
        let plain = version_token("n", "v1", "x", Write::Plain);
        let conditional = version_token("n", "v1", "x", Write::Conditional);
        assert_ne!(plain, conditional);
        assert_eq!(plain[..63], conditional[..63]);
        assert!(authored("n", &plain, "x") && authored("n", &conditional, "x"));
        assert!(plain_write(&plain));
        assert!(!plain_write(&conditional));
        assert!(!plain_write("3f6c6d0e-8b1a-4c2e-9f5d-0a1b2c3d4e50"), "an SDK's UUID");
    }

    #[test]
    fn the_current_version_and_its_tombstone() {
        let stages: HashMap<String, Vec<String>> = [
            ("old".to_string(), vec!["AWSPREVIOUS".to_string()]),
            ("now".to_string(), vec![CURRENT.to_string(), TOMBSTONE.to_string()]),
        ]
        .into();
        assert_eq!(current_version(Some(&stages)), (Some("now".to_string()), true));
        assert_eq!(current_version(None), (None, false));
    }
}
