//! Our `custom_metadata`: the shared tag scheme, the credential id, the revision the tags
//! describe, and the encoding of empty values.

use std::collections::HashMap;

use nebula_credential_core::remote::TagScheme;
use nebula_credential_core::{CredentialId, CredentialMetadata, Revision, StorageError, Tags};

use crate::PROVIDER;

/// The tag scheme of KV v2 `custom_metadata`: values up to 512 bytes (128 characters of
/// any Unicode fit), any character but controls and [`EMPTY`].
pub(crate) const SCHEME: TagScheme = TagScheme {
    max_value_chars: 128,
    value_char: |c| !c.is_control() && c != EMPTY_CHAR,
    ..TagScheme::DEFAULT
};

/// `custom_metadata` key holding the credential id, so an entry copied (value and
/// metadata) to another key is not taken for the credential that key names.
pub(crate) const ID_KEY: &str = "nebula-credential:id";

/// `custom_metadata` key holding the revision (`version@created_time`) of the KV version the tags describe.
/// Tags land in a second request after the value: tags whose revision is not the entry's
/// current one may describe an older version (that request was lost, or a concurrent
/// writer's landed later), so `list` reads the record instead and repairs them.
pub(crate) const REVISION_KEY: &str = "nebula-credential:revision";

/// Our `custom_metadata` for `id` holding a credential with `metadata`, written for the
/// version `revision`.
pub(crate) fn desired(id: &CredentialId, metadata: &CredentialMetadata, revision: &Revision) -> Tags {
    let mut tags = SCHEME.desired(metadata, &Tags::new());
    tags.insert(ID_KEY.into(), id.to_string());
    tags.insert(REVISION_KEY.into(), revision.as_str().to_string());
    tags
}

/// The marker alone, written on a new entry before its first version so the value never
/// exists without it. It carries no credential tags: a create that loses the race must
/// not leave its tags on the winner.
pub(crate) fn marker(id: &CredentialId) -> Tags {
    Tags::from([
        (SCHEME.managed_key.to_string(), SCHEME.managed_value.to_string()),
        (ID_KEY.to_string(), id.to_string()),
    ])
}

/// `current` changed so it carries `desired`, keeping the keys other tools added.
pub(crate) fn merged(current: &Tags, desired: &Tags) -> Tags {
    let update = SCHEME.update(current, desired);
    let mut next = current.clone();
    for k in &update.remove {
        next.remove(k);
    }
    next.extend(update.set);
    next
}

/// `Ok` when the entry at `location`, tagged `tags`, is ours and holds `id` (entries
/// written before [`ID_KEY`] existed lack it and pass); `Conflict` otherwise.
pub(crate) fn ensure_holds(id: &CredentialId, location: &str, tags: &Tags) -> Result<(), StorageError> {
    SCHEME.ensure_ours(PROVIDER, id, location, tags)?;
    match tags.get(ID_KEY) {
        Some(held) => SCHEME.ensure_holds(PROVIDER, id, location, ID_KEY, Some(held)),
        None => Ok(()),
    }
}

/// Vault refuses empty `custom_metadata` values: an empty tag value is stored as `∅`,
/// which the scheme never produces for a non-empty value (it holds `∅` as a digest).
pub(crate) const EMPTY_CHAR: char = '\u{2205}';
pub(crate) const EMPTY: &str = "\u{2205}";

/// Tags as written to `custom_metadata`.
pub(crate) fn to_vault(tags: &Tags) -> HashMap<String, String> {
    tags.iter()
        .map(|(k, v)| (k.clone(), if v.is_empty() { EMPTY.to_string() } else { v.clone() }))
        .collect()
}

/// Tags as read from `custom_metadata`.
pub(crate) fn from_vault(custom: Option<HashMap<String, String>>) -> Tags {
    custom
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| if v == EMPTY { (k, String::new()) } else { (k, v) })
        .collect()
}
