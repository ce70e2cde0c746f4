//! [`CredentialFilter`]: which credentials `list` returns.

use serde::{Deserialize, Serialize};

use crate::id::{CredentialId, MAX_ID_LEN, ValidationError, shown};
use crate::metadata::{CredentialMetadata, Tags, Timestamp, validate_tags};

/// Selects credentials for [`StorageProvider::list`](crate::StorageProvider::list).
/// Every condition set must hold (AND); the default filter matches everything.
///
/// ```
/// use nebula_credential_core::CredentialFilter;
/// let f = CredentialFilter::new().tag("env", "prod").id_prefix("db_");
/// assert!(f.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialFilter {
    /// Tags that must all be present with exactly these values.
    #[serde(default)]
    pub tags: Tags,
    /// Ids must start with this (case-sensitive).
    #[serde(default)]
    pub id_prefix: Option<String>,
    /// Only credentials created strictly after this instant.
    #[serde(default)]
    pub created_after: Option<Timestamp>,
    /// Only credentials created strictly before this instant.
    #[serde(default)]
    pub created_before: Option<Timestamp>,
}

impl CredentialFilter {
    /// A filter that matches every credential.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also requires tag `key` with value `value`.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Also requires ids to start with `prefix`.
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_prefix = Some(prefix.into());
        self
    }

    /// Also requires `created_at > at`.
    pub fn created_after(mut self, at: Timestamp) -> Self {
        self.created_after = Some(at);
        self
    }

    /// Also requires `created_at < at`.
    pub fn created_before(mut self, at: Timestamp) -> Self {
        self.created_before = Some(at);
        self
    }

    /// `true` when the filter has only conditions on the id (no metadata needed).
    pub fn needs_metadata(&self) -> bool {
        !self.tags.is_empty() || self.created_after.is_some() || self.created_before.is_some()
    }

    /// `true` when `id` passes the id condition.
    pub fn matches_id(&self, id: &CredentialId) -> bool {
        self.id_prefix.as_deref().is_none_or(|p| id.as_str().starts_with(p))
    }

    /// `true` when the credential passes every condition. Providers that filter
    /// client-side (or re-check a coarser server-side filter) call this.
    pub fn matches(&self, id: &CredentialId, metadata: &CredentialMetadata) -> bool {
        self.matches_in(id, metadata)
    }

    /// `true` when a credential whose metadata is seen through `target` (a record's
    /// metadata, a remote object's tags) passes every condition. The one place that
    /// reads the filter's fields: a new condition is handled here for every backend.
    pub fn matches_in(&self, id: &CredentialId, target: &impl FilterTarget) -> bool {
        let CredentialFilter {
            tags,
            id_prefix: _,
            created_after,
            created_before,
        } = self;
        let created = target.created_at();
        let in_range = |bound: &Option<Timestamp>, holds: fn(Timestamp, Timestamp) -> bool| {
            bound.is_none_or(|b| created.is_some_and(|c| holds(c, b)))
        };
        self.matches_id(id)
            && tags.iter().all(|(k, v)| target.has_tag(k, v))
            && in_range(created_after, |c, b| c > b)
            && in_range(created_before, |c, b| c < b)
    }

    /// Checks the filter: tags follow the tag rules, the prefix uses only id
    /// characters, and the time range is not empty.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_tags(&self.tags)?;
        if let Some(p) = &self.id_prefix {
            let ok = p.len() <= MAX_ID_LEN && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(ValidationError::InvalidArgument {
                    what: "id_prefix",
                    reason: format!(
                        "{} can never match an id; use at most {MAX_ID_LEN} characters from A-Z, a-z, 0-9, '_' and '-'",
                        shown(p)
                    ),
                });
            }
        }
        if let (Some(after), Some(before)) = (self.created_after, self.created_before)
            && after >= before
        {
            return Err(ValidationError::InvalidArgument {
                what: "created range",
                reason: format!("created_after ({after}) must be earlier than created_before ({before})"),
            });
        }
        Ok(())
    }
}

/// What a [`CredentialFilter`] inspects of a credential besides its id.
pub trait FilterTarget {
    /// Whether tag `key` is present with exactly `value`.
    fn has_tag(&self, key: &str, value: &str) -> bool;
    /// When the credential was created, if known (unknown never passes a time bound).
    fn created_at(&self) -> Option<Timestamp>;
}

impl FilterTarget for CredentialMetadata {
    fn has_tag(&self, key: &str, value: &str) -> bool {
        self.tags.get(key).is_some_and(|v| v == value)
    }

    fn created_at(&self) -> Option<Timestamp> {
        Some(self.created_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::now;

    #[test]
    fn matching() {
        let id: CredentialId = "db_main".parse().unwrap();
        let mut m = CredentialMetadata::new();
        m.tags.insert("env".into(), "prod".into());
        m.tags.insert("team".into(), "core".into());
        assert!(CredentialFilter::new().matches(&id, &m));
        assert!(CredentialFilter::new().tag("env", "prod").matches(&id, &m));
        assert!(
            CredentialFilter::new()
                .tag("env", "prod")
                .tag("team", "core")
                .matches(&id, &m)
        );
        assert!(
            !CredentialFilter::new()
                .tag("env", "prod")
                .tag("team", "x")
                .matches(&id, &m)
        );
        assert!(!CredentialFilter::new().tag("env", "Prod").matches(&id, &m));
        assert!(CredentialFilter::new().id_prefix("db_").matches(&id, &m));
        assert!(!CredentialFilter::new().id_prefix("DB_").matches(&id, &m));
        let t = m.created_at;
        assert!(!CredentialFilter::new().created_after(t).matches(&id, &m));
        assert!(
            CredentialFilter::new()
                .created_after(t - chrono::Duration::milliseconds(1))
                .created_before(t + chrono::Duration::milliseconds(1))
                .matches(&id, &m)
        );
    }

    #[test]
    fn validation() {
        assert!(CredentialFilter::new().id_prefix("a/").validate().is_err());
        let t = now();
        let e = CredentialFilter::new()
            .created_after(t)
            .created_before(t)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("must be earlier"));
        assert!(CredentialFilter::new().tag("-bad", "x").validate().is_err());
        assert!(CredentialFilter::new().id_prefix("").validate().is_ok());
    }
}
