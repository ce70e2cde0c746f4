//! [`TagScheme`]: which tags an object of ours carries, whether an object is ours, and
//! which tags an overwrite sets and removes.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::filter::{CredentialFilter, FilterTarget};
use crate::metadata::{CredentialMetadata, Tags, Timestamp};
use crate::{CredentialId, StorageError};

/// How one backend names and limits the tags of its objects.
///
/// ```
/// use nebula_credential_core::{CredentialMetadata, Tags, remote::TagScheme};
/// const SCHEME: TagScheme = TagScheme {
///     max_value_chars: 256,
///     value_char: |c| c.is_alphanumeric() || " _.:/=+-@".contains(c),
///     ..TagScheme::DEFAULT
/// };
/// let meta = CredentialMetadata::new().with_tags(Tags::from([("env".into(), "🚀".into())]));
/// let tags = SCHEME.desired(&meta, &Tags::new());
/// assert!(SCHEME.is_ours(&tags));
/// assert!(tags["env"].starts_with("sha256"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TagScheme {
    /// Key of the managed-by marker.
    pub managed_key: &'static str,
    /// Value of the managed-by marker (default [`MANAGED_VALUE`]).
    pub managed_value: &'static str,
    /// Key holding `created_at` as Unix milliseconds, so `list` filters by time without
    /// reading values.
    pub created_key: &'static str,
    /// Key listing (as short digests) the credential tag keys this library wrote, so an
    /// overwrite removes only those.
    pub owned_key: &'static str,
    /// Prefix of every reserved key; default tags may not use it.
    pub reserved_prefix: &'static str,
    /// Longest tag value the backend holds, in characters.
    pub max_value_chars: usize,
    /// Characters the backend allows in tag values.
    pub value_char: fn(char) -> bool,
    /// Characters the backend allows as the first and last character of a tag value
    /// (Kubernetes label values must start and end alphanumeric); default: any.
    pub value_edge_char: fn(char) -> bool,
    /// Separator of `digest_prefix` and the hex digest (`:` or `-`, as values allow).
    pub digest_separator: char,
}

/// Value of the managed-by marker.
pub const MANAGED_VALUE: &str = "true";
/// Leading text of a digest that stands for a value the backend cannot hold.
pub const DIGEST_PREFIX: &str = "sha256";
/// Hex characters of an owned-key digest.
const OWNED_DIGEST_HEX: usize = 8;

impl TagScheme {
    /// Keys `nebula-credential:…`, values up to 256 characters of letters, digits and
    /// `_.-`, digests as `sha256:<hex>`. Backends override what differs.
    pub const DEFAULT: TagScheme = TagScheme {
        managed_key: "nebula-credential:managed",
        managed_value: MANAGED_VALUE,
        created_key: "nebula-credential:created-at",
        owned_key: "nebula-credential:tag-keys",
        reserved_prefix: "nebula-credential:",
        max_value_chars: 256,
        value_char: |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
        value_edge_char: |_| true,
        digest_separator: ':',
    };

    /// Tags the scheme reserves on every object.
    pub const RESERVED_TAGS: usize = 3;

    /// The tag value that stands for `value`: itself when the backend can hold it,
    /// otherwise a digest (`sha256:<hex>`) that still filters exactly.
    pub fn encode_value(&self, value: &str) -> String {
        let digest_head = format!("{DIGEST_PREFIX}{}", self.digest_separator);
        let edges_fit = value.chars().next().is_none_or(self.value_edge_char)
            && value.chars().next_back().is_none_or(self.value_edge_char);
        let fits = value.chars().count() <= self.max_value_chars && value.chars().all(self.value_char) && edges_fit;
        if fits && !value.starts_with(&digest_head) {
            return value.to_string();
        }
        let hex = hex(&Sha256::digest(value.as_bytes()));
        let room = self.max_value_chars.saturating_sub(digest_head.len()).min(hex.len());
        format!("{digest_head}{}", &hex[..room])
    }

    /// Every tag an object holding a credential with `metadata` carries: `defaults`, the
    /// credential's tags (encoded), the marker, the creation time and the owned keys.
    pub fn desired(&self, metadata: &CredentialMetadata, defaults: &Tags) -> Tags {
        let mut tags = defaults.clone();
        for (k, v) in &metadata.tags {
            tags.insert(k.clone(), self.encode_value(v));
        }
        tags.insert(self.managed_key.into(), self.managed_value.into());
        tags.insert(
            self.created_key.into(),
            metadata.created_at.timestamp_millis().to_string(),
        );
        let owned: Vec<String> = metadata.tags.keys().map(|k| key_digest(k)).collect();
        tags.insert(self.owned_key.into(), owned.join("."));
        tags
    }

    /// Whether an object with these tags carries our managed-by marker.
    pub fn is_ours(&self, tags: &Tags) -> bool {
        tags.get(self.managed_key).is_some_and(|v| v == self.managed_value)
    }

    /// `Ok` when the object `name` holding `id` is ours; otherwise the `Conflict` every
    /// operation reports for a foreign object under our name.
    pub fn ensure_ours(
        &self,
        provider: &'static str,
        id: &CredentialId,
        name: &str,
        tags: &Tags,
    ) -> Result<(), StorageError> {
        if self.is_ours(tags) {
            return Ok(());
        }
        Err(self.foreign(provider, id, name))
    }

    /// The `Conflict` for a foreign object `name` found where `id` would live.
    pub fn foreign(&self, provider: &'static str, id: &CredentialId, name: &str) -> StorageError {
        StorageError::conflict(
            provider,
            id,
            format!(
                "{name:?} exists but lacks the managed-by marker `{}={}`, so nebula-credential \
                 neither reads, overwrites nor deletes it; choose another prefix or move that object away",
                self.managed_key, self.managed_value
            ),
        )
    }

    /// `Ok` when an object `name` of ours records that it holds `id`: `held` is the id it
    /// records under `id_key` (a tag, a label or an annotation, as the backend keeps it).
    /// Otherwise the `Conflict` every operation reports for an object of ours holding
    /// another credential (or none): a copy, or another provider whose `secret_prefix`
    /// overlaps this one's. A backend whose older objects predate `id_key` passes only
    /// the `held` it has.
    pub fn ensure_holds(
        &self,
        provider: &'static str,
        id: &CredentialId,
        name: &str,
        id_key: &str,
        held: Option<&str>,
    ) -> Result<(), StorageError> {
        if held == Some(id.as_str()) {
            return Ok(());
        }
        let held = held.map_or_else(|| "none".to_string(), |h| format!("{h:?}"));
        Err(StorageError::conflict(
            provider,
            id,
            format!(
                "{name:?} carries the managed-by marker but holds credential {held} (its `{id_key}`), not this \
                 one: it is a copy, or another provider's secret_prefix overlaps this one's; give each provider \
                 a prefix that is not the start of another's, or move that object away"
            ),
        ))
    }

    /// What an overwrite changes on an object now tagged `current` so it carries
    /// `desired`: tags to set, and keys to remove. Only keys this library wrote (reserved
    /// ones and credential tags listed in the current owned-keys tag) are ever removed;
    /// tags other tools added stay.
    pub fn update(&self, current: &Tags, desired: &Tags) -> TagUpdate {
        let owned: BTreeSet<&str> = current
            .get(self.owned_key)
            .map(|v| v.split('.').filter(|d| !d.is_empty()).collect())
            .unwrap_or_default();
        let set = desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let remove = current
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .filter(|k| k.starts_with(self.reserved_prefix) || owned.contains(key_digest(k).as_str()))
            .cloned()
            .collect();
        TagUpdate { set, remove }
    }

    /// `tags` without the keys this library did not write as credential tags: the
    /// reserved keys (the managed-by marker too, wherever its key lies), and the
    /// credential tag keys the owned-keys list names. A backend
    /// whose tag writes merge (rather than replace) filters on this view, so a key left
    /// by another tool or by an older write, absent from the owned list written together
    /// with the rest, never makes an object pass a filter.
    pub fn owned_view(&self, tags: &Tags) -> Tags {
        let owned: BTreeSet<&str> = tags
            .get(self.owned_key)
            .map(|v| v.split('.').filter(|d| !d.is_empty()).collect())
            .unwrap_or_default();
        tags.iter()
            .filter(|(k, _)| {
                k.starts_with(self.reserved_prefix)
                    || k.as_str() == self.managed_key
                    || owned.contains(key_digest(k).as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `created_at` as recorded in the object's tags.
    pub fn created_at(&self, tags: &Tags) -> Option<Timestamp> {
        let millis = tags.get(self.created_key)?.parse().ok()?;
        Timestamp::from_timestamp_millis(millis)
    }

    /// Whether a listed object of ours holding `id`, tagged `tags`, passes `filter`
    /// (backends call this to re-check a coarser server-side filter exactly).
    pub fn matches(&self, filter: &CredentialFilter, id: &CredentialId, tags: &Tags) -> bool {
        self.is_ours(tags) && filter.matches_in(id, &Tagged { scheme: self, tags })
    }

    /// Checks a configured default tag: not reserved, and not a key a credential tag
    /// could have (so credential tag filters stay exact). The text completes "key …".
    pub fn check_default_key(&self, key: &str) -> Result<(), String> {
        if key.starts_with(self.reserved_prefix) {
            return Err(format!(
                "keys starting with {:?} are reserved by nebula-credential",
                self.reserved_prefix
            ));
        }
        if crate::metadata::validate_tag_key(key).is_ok() {
            return Err(format!(
                "{key:?} could be a credential tag key; use a character credential tags cannot hold, e.g. \"myorg:{key}\" or \"myorg/{key}\""
            ));
        }
        Ok(())
    }
}

/// The tag changes of one overwrite; see [`TagScheme::update`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagUpdate {
    /// Tags to add or change.
    pub set: Tags,
    /// Keys to remove.
    pub remove: Vec<String>,
}

impl TagUpdate {
    /// `true` when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// An object's tags seen by a [`CredentialFilter`] through a scheme's encoding.
struct Tagged<'a> {
    scheme: &'a TagScheme,
    tags: &'a Tags,
}

impl FilterTarget for Tagged<'_> {
    fn has_tag(&self, key: &str, value: &str) -> bool {
        self.tags.get(key) == Some(&self.scheme.encode_value(value))
    }

    fn created_at(&self) -> Option<Timestamp> {
        self.scheme.created_at(self.tags)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_digest(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))[..OWNED_DIGEST_HEX].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::now;

    const AWS_LIKE: TagScheme = TagScheme {
        value_char: |c| c.is_alphanumeric() || " _.:/=+-@".contains(c),
        ..TagScheme::DEFAULT
    };
    const SHORT: TagScheme = TagScheme {
        max_value_chars: 63,
        digest_separator: '-',
        ..TagScheme::DEFAULT
    };

    fn meta(pairs: &[(&str, &str)]) -> CredentialMetadata {
        CredentialMetadata::new().with_tags(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn the_owned_view_keeps_reserved_keys_and_the_credential_tags_the_owned_list_names() {
        let mut tags = AWS_LIKE.desired(&meta(&[("env", "prod")]), &Tags::new());
        tags.insert("owner".into(), "ops".into());
        tags.insert("team".into(), "a".into());
        let view = AWS_LIKE.owned_view(&tags);
        assert_eq!(view.get("env").map(String::as_str), Some("prod"));
        assert!(AWS_LIKE.is_ours(&view) && view.contains_key(AWS_LIKE.owned_key));
        assert!(!view.contains_key("owner") && !view.contains_key("team"), "{view:?}");
        let bare = AWS_LIKE.desired(&meta(&[]), &Tags::new());
        assert_eq!(AWS_LIKE.owned_view(&bare), bare);
    }

    #[test]
    fn values_the_backend_cannot_hold_become_digests_within_its_limits() {
        assert_eq!(AWS_LIKE.encode_value("Zürich 東京"), "Zürich 東京");
        assert_eq!(AWS_LIKE.encode_value(""), "");
        let odd = AWS_LIKE.encode_value("ship it 🚀");
        assert!(odd.starts_with("sha256:") && odd.len() == 71, "{odd}");
        assert_ne!(
            AWS_LIKE.encode_value("sha256:abc"),
            "sha256:abc",
            "a value that looks like a digest is hashed"
        );
        let short = SHORT.encode_value(&"x".repeat(64));
        assert!(short.starts_with("sha256-") && short.chars().count() == 63, "{short}");
        assert!(short.chars().all(SHORT.value_char) || short.contains('-'));
        assert_eq!(SHORT.encode_value("a:b"), SHORT.encode_value("a:b"));
    }

    #[test]
    fn filters_match_exactly_through_the_encoding() {
        let id: CredentialId = "k".parse().unwrap();
        let m = meta(&[("city", "🚀 town"), ("env", "prod")]);
        let tags = AWS_LIKE.desired(&m, &Tags::new());
        assert!(AWS_LIKE.matches(&CredentialFilter::new().tag("city", "🚀 town"), &id, &tags));
        assert!(!AWS_LIKE.matches(&CredentialFilter::new().tag("city", "town"), &id, &tags));
        let t = m.created_at;
        let ms = chrono::Duration::milliseconds(1);
        assert!(AWS_LIKE.matches(&CredentialFilter::new().created_after(t - ms), &id, &tags));
        assert!(!AWS_LIKE.matches(&CredentialFilter::new().created_after(t), &id, &tags));
        assert!(!AWS_LIKE.matches(&CredentialFilter::new().created_before(t), &id, &tags));
        let mut foreign = tags.clone();
        foreign.remove(AWS_LIKE.managed_key);
        assert!(!AWS_LIKE.matches(&CredentialFilter::new(), &id, &foreign));
    }

    #[test]
    fn an_overwrite_removes_only_keys_this_library_wrote() {
        let defaults = Tags::from([("org:team".to_string(), "pay".to_string())]);
        let first = AWS_LIKE.desired(&meta(&[("env", "prod"), ("tier", "1")]), &defaults);
        let mut current = first.clone();
        current.insert("CostCenter".into(), "42".into());
        current.insert("aws:cloudformation:stack".into(), "x".into());
        let second = AWS_LIKE.desired(&meta(&[("env", "staging")]), &defaults);
        let u = AWS_LIKE.update(&current, &second);
        assert_eq!(u.remove, vec!["tier".to_string()]);
        assert_eq!(u.set["env"], "staging");
        assert!(
            !u.set.contains_key(AWS_LIKE.managed_key),
            "unchanged tags are not re-sent"
        );
        assert!(AWS_LIKE.update(&second, &second).is_empty());
    }

    #[test]
    fn foreign_objects_are_refused_by_name_and_marker() {
        let id: CredentialId = "api".parse().unwrap();
        let e = AWS_LIKE
            .ensure_ours("aws", &id, "prefix/api", &Tags::new())
            .unwrap_err();
        assert!(e.is_conflict());
        let m = e.to_string();
        assert!(
            m.contains("prefix/api") && m.contains("nebula-credential:managed=true"),
            "{m}"
        );
        assert!(
            AWS_LIKE
                .ensure_ours("aws", &id, "x", &AWS_LIKE.desired(&meta(&[]), &Tags::new()))
                .is_ok()
        );
    }

    #[test]
    fn default_keys_must_not_be_reserved_or_look_like_credential_tags() {
        assert!(AWS_LIKE.check_default_key("myorg:team").is_ok());
        assert!(AWS_LIKE.check_default_key("team").unwrap_err().contains("myorg:team"));
        assert!(AWS_LIKE.check_default_key("nebula-credential:x").is_err());
    }

    #[test]
    fn edge_characters_and_the_marker_value_are_parameters() {
        const LABEL_LIKE: TagScheme = TagScheme {
            managed_key: "example.io/managed-by",
            managed_value: "me",
            max_value_chars: 63,
            value_edge_char: |c| c.is_ascii_alphanumeric(),
            digest_separator: '-',
            ..TagScheme::DEFAULT
        };
        assert_eq!(LABEL_LIKE.encode_value("a-b.c"), "a-b.c");
        assert_eq!(LABEL_LIKE.encode_value(""), "");
        for odd in ["-a", "a.", "_", "."] {
            assert!(LABEL_LIKE.encode_value(odd).starts_with("sha256-"), "{odd}");
        }
        let tags = LABEL_LIKE.desired(&meta(&[]), &Tags::new());
        assert_eq!(tags["example.io/managed-by"], "me");
        assert!(LABEL_LIKE.is_ours(&tags));
        let mut other = tags.clone();
        other.insert("example.io/managed-by".into(), "true".into());
        assert!(!LABEL_LIKE.is_ours(&other));
        let id: CredentialId = "k".parse().unwrap();
        let m = LABEL_LIKE.ensure_ours("k8s", &id, "x", &other).unwrap_err().to_string();
        assert!(m.contains("example.io/managed-by=me"), "{m}");
    }

    #[test]
    fn created_at_round_trips_in_milliseconds() {
        let m = CredentialMetadata::new();
        let tags = SHORT.desired(&m, &Tags::new());
        assert_eq!(SHORT.created_at(&tags), Some(m.created_at));
        assert!(tags.values().all(|v| v.chars().count() <= 63));
        let _ = now();
    }
    #[test]
    fn an_object_of_ours_must_hold_the_id_it_is_read_as() {
        let id: CredentialId = "api".parse().unwrap();
        assert!(
            AWS_LIKE
                .ensure_holds("vault", &id, "p/api", "nebula-credential:id", Some("api"))
                .is_ok()
        );
        for held in [Some("other"), None] {
            let e = AWS_LIKE
                .ensure_holds("vault", &id, "p/api", "nebula-credential:id", held)
                .unwrap_err();
            assert!(e.is_conflict());
            let m = e.to_string();
            assert!(
                m.contains("p/api") && m.contains("nebula-credential:id") && m.contains("prefix"),
                "{m}"
            );
            assert!(m.contains(if held.is_some() { "\"other\"" } else { "none" }), "{m}");
        }
    }
}
