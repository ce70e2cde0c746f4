//! One vault's secrets and the soft-delete state machine, free of HTTP.
//!
//! A name moves through `Active → Deleting → Deleted → (purged | Recovering → Active)`.
//! `Deleting` and `Recovering` last the configured delays: the real service shows a deleted
//! secret under `deletedsecrets` only seconds after the DELETE, and answers 409
//! `ObjectIsBeingDeleted` / `ObjectIsBeingRecovered` to conflicting calls meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::rules::name_key;

/// A moment on both clocks: monotonic for delays, Unix seconds for timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time, for the soft-delete delays.
    pub at: Instant,
    /// Unix seconds, for `created`, `updated`, `deletedDate`.
    pub unix: i64,
}

impl Now {
    /// The current moment.
    pub fn current() -> Self {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Self {
            at: Instant::now(),
            unix,
        }
    }

    /// This moment shifted forward (for tests).
    pub fn after(self, by: Duration) -> Self {
        Self {
            at: self.at + by,
            unix: self.unix + i64::try_from(by.as_secs()).unwrap_or(0),
        }
    }
}

/// Soft-delete behaviour of a vault.
#[derive(Debug, Clone, Copy)]
pub struct SoftDelete {
    /// How long a deleted secret stays invisible under `deletedsecrets`.
    pub delete_delay: Duration,
    /// How long a recovered secret stays invisible under `secrets`.
    pub recover_delay: Duration,
    /// Retention in days (7..=90); decides `recoveryLevel` and `scheduledPurgeDate`.
    pub recoverable_days: u32,
    /// Purge protection: purge answers 403 and `recoveryLevel` loses `+Purgeable`.
    pub purge_protection: bool,
}

impl SoftDelete {
    /// Soft delete whose transitions take no time.
    pub fn without_delays(recoverable_days: u32) -> Self {
        Self {
            delete_delay: Duration::ZERO,
            recover_delay: Duration::ZERO,
            recoverable_days,
            purge_protection: false,
        }
    }

    /// `recoveryLevel` as the service reports it for this retention and purge protection
    /// (the `DeletionRecoveryLevel` values of the REST spec).
    pub fn recovery_level(&self) -> &'static str {
        match (self.recoverable_days >= 90, self.purge_protection) {
            (true, false) => "Recoverable+Purgeable",
            (false, false) => "CustomizedRecoverable+Purgeable",
            (true, true) => "Recoverable",
            (false, true) => "CustomizedRecoverable",
        }
    }
}

/// Settable attributes and metadata of a new version.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    /// The secret value.
    pub value: String,
    /// `contentType`.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `attributes.enabled` (default true).
    pub enabled: Option<bool>,
    /// `attributes.nbf`.
    pub nbf: Option<i64>,
    /// `attributes.exp`.
    pub exp: Option<i64>,
}

/// A PATCH: every field present replaces the stored one.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// New `contentType`.
    pub content_type: Option<String>,
    /// New tags (replacing all).
    pub tags: Option<BTreeMap<String, String>>,
    /// New `enabled`.
    pub enabled: Option<bool>,
    /// New `nbf`.
    pub nbf: Option<i64>,
    /// New `exp`.
    pub exp: Option<i64>,
}

/// One stored version.
#[derive(Debug, Clone)]
pub struct Version {
    /// 32 lowercase hex digits.
    pub id: String,
    /// Creation order within the vault (paging key).
    pub seq: u64,
    /// The value.
    pub value: String,
    /// `contentType`.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `enabled`.
    pub enabled: bool,
    /// `nbf`.
    pub nbf: Option<i64>,
    /// `exp`.
    pub exp: Option<i64>,
    /// `created`.
    pub created: i64,
    /// `updated`.
    pub updated: i64,
}

/// A secret version as an answer needs it: its name as first stored, plus the version.
#[derive(Debug, Clone)]
pub struct View {
    /// The name, with the casing it was created with.
    pub name: String,
    /// The version shown.
    pub version: Version,
    /// Whether the secret backs a certificate (`managed: true`, with a `kid`).
    pub managed: bool,
}

/// A deleted secret as an answer needs it.
#[derive(Debug, Clone)]
pub struct DeletedView {
    /// The latest version at deletion.
    pub view: View,
    /// `deletedDate`.
    pub deleted_date: i64,
    /// `scheduledPurgeDate`.
    pub scheduled_purge_date: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Deleting { until: Instant, deleted_date: i64 },
    Deleted { deleted_date: i64 },
    Recovering { until: Instant },
}

#[derive(Debug)]
struct Entry {
    name: String,
    versions: Vec<Version>,
    state: State,
    managed: bool,
}

impl Entry {
    fn latest(&self) -> &Version {
        self.versions.last().expect("an entry always has a version")
    }

    fn view(&self, version: &Version) -> View {
        View {
            name: self.name.clone(),
            version: version.clone(),
            managed: self.managed,
        }
    }

    fn settle(&mut self, now: Now) {
        self.state = match self.state {
            State::Deleting { until, deleted_date } if until <= now.at => State::Deleted { deleted_date },
            State::Recovering { until } if until <= now.at => State::Active,
            other => other,
        };
    }
}

fn deleted_view(sd: SoftDelete, entry: &Entry, deleted_date: i64) -> DeletedView {
    DeletedView {
        view: entry.view(entry.latest()),
        deleted_date,
        scheduled_purge_date: deleted_date + i64::from(sd.recoverable_days) * 86_400,
    }
}

/// One vault: its secrets keyed by lowercased name.
#[derive(Debug)]
pub struct Vault {
    name: String,
    soft_delete: SoftDelete,
    entries: BTreeMap<String, Entry>,
    next_seq: u64,
}

impl Vault {
    /// An empty vault (named `vault` in messages).
    pub fn new(soft_delete: SoftDelete) -> Self {
        Self::named("vault", soft_delete)
    }

    /// An empty vault with the name its messages use.
    pub fn named(name: &str, soft_delete: SoftDelete) -> Self {
        Self {
            name: name.to_owned(),
            soft_delete,
            entries: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// The vault's soft-delete settings.
    pub fn soft_delete(&self) -> SoftDelete {
        self.soft_delete
    }

    /// Replaces the vault's soft-delete settings (for entries already deleted too).
    pub fn set_soft_delete(&mut self, soft_delete: SoftDelete) {
        self.soft_delete = soft_delete;
    }

    fn entry(&mut self, name: &str, now: Now) -> Option<&mut Entry> {
        let entry = self.entries.get_mut(&name_key(name))?;
        entry.settle(now);
        Some(entry)
    }

    fn active(&mut self, name: &str, now: Now) -> Result<&mut Entry, ApiError> {
        match self.entry(name, now) {
            Some(entry) if entry.state == State::Active => Ok(entry),
            _ => Err(ApiError::secret_not_found(name)),
        }
    }

    /// PUT: a new version (creating the secret if needed). A certificate-backed secret refuses.
    pub fn set(&mut self, name: &str, new: NewVersion, version_id: String, now: Now) -> Result<View, ApiError> {
        if self.entry(name, now).is_some_and(|e| e.managed) {
            return Err(ApiError::managed_by_key_vault("set"));
        }
        self.store(name, new, version_id, now, false)
    }

    /// A new version of a certificate-backed secret (`managed: true`), as issuing or renewing
    /// a certificate makes; 409 if an ordinary secret holds the name.
    pub fn set_managed(&mut self, name: &str, new: NewVersion, version_id: String, now: Now) -> Result<View, ApiError> {
        if self.entry(name, now).is_some_and(|e| !e.managed) {
            return Err(ApiError::injected(
                409,
                None,
                Some("Conflict"),
                None,
                Some(&format!(
                    "A secret named {name} exists and is not backed by a certificate; pick another name."
                )),
            ));
        }
        self.store(name, new, version_id, now, true)
    }

    fn store(
        &mut self,
        name: &str,
        new: NewVersion,
        version_id: String,
        now: Now,
        managed: bool,
    ) -> Result<View, ApiError> {
        let seq = self.next_seq;
        let version = Version {
            id: version_id,
            seq,
            value: new.value,
            content_type: new.content_type,
            tags: new.tags,
            enabled: new.enabled.unwrap_or(true),
            nbf: new.nbf,
            exp: new.exp,
            created: now.unix,
            updated: now.unix,
        };
        match self.entry(name, now) {
            Some(entry) => match entry.state {
                State::Active => entry.versions.push(version),
                State::Deleting { .. } => return Err(ApiError::being_deleted(name)),
                State::Deleted { .. } => return Err(ApiError::deleted_but_recoverable(name)),
                State::Recovering { .. } => return Err(ApiError::being_recovered(name)),
            },
            None => {
                let entry = Entry {
                    name: name.to_owned(),
                    versions: vec![version],
                    state: State::Active,
                    managed,
                };
                self.entries.insert(name_key(name), entry);
            }
        }
        self.next_seq += 1;
        let entry = self.entries.get(&name_key(name)).expect("just stored");
        Ok(entry.view(entry.latest()))
    }

    /// GET: the latest version or a given one; a disabled version is refused.
    pub fn get(&mut self, name: &str, version: Option<&str>, now: Now) -> Result<View, ApiError> {
        let view = self.find(name, version, now)?;
        if !view.version.enabled {
            return Err(ApiError::secret_disabled());
        }
        Ok(view)
    }

    fn find(&mut self, name: &str, version: Option<&str>, now: Now) -> Result<View, ApiError> {
        let entry = self.active(name, now)?;
        let found = match version {
            None => Some(entry.latest()),
            Some(id) => entry.versions.iter().find(|v| v.id == id),
        };
        match found {
            Some(v) => Ok(entry.view(v)),
            None => Err(ApiError::secret_not_found(&format!("{name}/{}", version.unwrap_or("")))),
        }
    }

    /// PATCH: changes attributes, tags or content type of one version (the latest by default).
    pub fn update(&mut self, name: &str, version: Option<&str>, update: Update, now: Now) -> Result<View, ApiError> {
        let id = self.find(name, version, now)?.version.id;
        let entry = self.active(name, now)?;
        let stored = entry.versions.iter_mut().find(|v| v.id == id).expect("found above");
        if let Some(content_type) = update.content_type {
            stored.content_type = Some(content_type);
        }
        if let Some(tags) = update.tags {
            stored.tags = tags;
        }
        if let Some(enabled) = update.enabled {
            stored.enabled = enabled;
        }
        if update.nbf.is_some() {
            stored.nbf = update.nbf;
        }
        if update.exp.is_some() {
            stored.exp = update.exp;
        }
        stored.updated = now.unix;
        let stored = stored.clone();
        Ok(entry.view(&stored))
    }

    /// The active secrets (latest versions), sorted by lowercased name.
    pub fn list(&mut self, now: Now) -> Vec<(String, View)> {
        self.entries
            .iter_mut()
            .filter_map(|(key, entry)| {
                entry.settle(now);
                (entry.state == State::Active).then(|| (key.clone(), entry.view(entry.latest())))
            })
            .collect()
    }

    /// All versions of an active secret, oldest first, keyed by creation order; none for a
    /// name that is missing (the service answers an empty list, not 404) or deleted.
    pub fn versions(&mut self, name: &str, now: Now) -> Result<Vec<(String, View)>, ApiError> {
        let Ok(entry) = self.active(name, now) else {
            return Ok(Vec::new());
        };
        Ok(entry
            .versions
            .iter()
            .map(|v| (format!("{:020}", v.seq), entry.view(v)))
            .collect())
    }

    /// Moves an existing entry to the state `next` picks, or fails as `next` says.
    fn transition(
        &mut self,
        name: &str,
        now: Now,
        missing: fn(&str) -> ApiError,
        next: impl FnOnce(State) -> Result<State, ApiError>,
    ) -> Result<&Entry, ApiError> {
        let entry = self.entry(name, now).ok_or_else(|| missing(name))?;
        entry.state = next(entry.state)?;
        Ok(entry)
    }

    /// DELETE: soft delete; the secret shows under `deletedsecrets` after the delete delay.
    pub fn delete(&mut self, name: &str, now: Now) -> Result<DeletedView, ApiError> {
        let sd = self.soft_delete;
        if self
            .entry(name, now)
            .is_some_and(|e| e.managed && e.state == State::Active)
        {
            return Err(ApiError::managed_by_key_vault("delete"));
        }
        let entry = self.transition(name, now, ApiError::secret_not_found, |state| match state {
            State::Active if sd.delete_delay.is_zero() => Ok(State::Deleted { deleted_date: now.unix }),
            State::Active => Ok(State::Deleting {
                until: now.at + sd.delete_delay,
                deleted_date: now.unix,
            }),
            State::Recovering { .. } => Err(ApiError::being_recovered(name)),
            State::Deleting { .. } => Err(ApiError::being_deleted(name)),
            State::Deleted { .. } => Err(ApiError::secret_not_found(name)),
        })?;
        Ok(deleted_view(sd, entry, now.unix))
    }

    /// GET of a deleted secret (404 until the delete delay has passed).
    pub fn get_deleted(&mut self, name: &str, now: Now) -> Result<DeletedView, ApiError> {
        let sd = self.soft_delete;
        match self.entry(name, now) {
            Some(entry) => match entry.state {
                State::Deleted { deleted_date } => Ok(deleted_view(sd, entry, deleted_date)),
                _ => Err(ApiError::deleted_secret_not_found(name)),
            },
            None => Err(ApiError::deleted_secret_not_found(name)),
        }
    }

    /// The deleted secrets, sorted by lowercased name.
    pub fn list_deleted(&mut self, now: Now) -> Vec<(String, DeletedView)> {
        let sd = self.soft_delete;
        let mut out = Vec::new();
        for (key, entry) in &mut self.entries {
            entry.settle(now);
            if let State::Deleted { deleted_date } = entry.state {
                out.push((key.clone(), deleted_view(sd, entry, deleted_date)));
            }
        }
        out
    }

    /// POST recover: back to active after the recover delay.
    pub fn recover(&mut self, name: &str, now: Now) -> Result<View, ApiError> {
        let delay = self.soft_delete.recover_delay;
        let entry = self.transition(name, now, ApiError::deleted_secret_not_found, |state| match state {
            State::Deleted { .. } if delay.is_zero() => Ok(State::Active),
            State::Deleted { .. } => Ok(State::Recovering { until: now.at + delay }),
            State::Deleting { .. } => Err(ApiError::being_deleted(name)),
            State::Recovering { .. } => Err(ApiError::being_recovered(name)),
            State::Active => Err(ApiError::deleted_secret_not_found(name)),
        })?;
        Ok(entry.view(entry.latest()))
    }

    /// DELETE of a deleted secret: gone for good; 403 in a vault with purge protection.
    pub fn purge(&mut self, name: &str, now: Now) -> Result<(), ApiError> {
        if self.soft_delete.purge_protection {
            return Err(ApiError::purge_protected(&self.name));
        }
        match self.entry(name, now).map(|e| e.state) {
            Some(State::Deleted { .. }) => {
                self.entries.remove(&name_key(name));
                Ok(())
            }
            Some(State::Deleting { .. }) => Err(ApiError::being_deleted(name)),
            Some(State::Recovering { .. }) => Err(ApiError::being_recovered(name)),
            _ => Err(ApiError::deleted_secret_not_found(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(5);

    fn vault() -> Vault {
        Vault::new(SoftDelete {
            delete_delay: DELAY,
            recover_delay: DELAY,
            recoverable_days: 7,
            purge_protection: false,
        })
    }

    fn value(v: &str) -> NewVersion {
        NewVersion {
            value: v.into(),
            ..NewVersion::default()
        }
    }

    fn id(n: u32) -> String {
        format!("{n:032x}")
    }

    fn inner(result: Result<impl std::fmt::Debug, ApiError>) -> (u16, Option<String>) {
        let error = result.unwrap_err();
        (error.status, error.inner.map(String::from))
    }

    #[test]
    fn set_adds_versions_and_get_returns_latest_or_given() {
        let now = Now::current();
        let mut v = vault();
        v.set("Key", value("one"), id(1), now).unwrap();
        v.set("key", value("two"), id(2), now).unwrap();
        let latest = v.get("KEY", None, now).unwrap();
        assert_eq!((latest.name.as_str(), latest.version.value.as_str()), ("Key", "two"));
        assert_eq!(v.get("key", Some(&id(1)), now).unwrap().version.value, "one");
        assert_eq!(v.get("key", Some(&id(9)), now).unwrap_err().code, "SecretNotFound");
        assert_eq!(v.versions("key", now).unwrap().len(), 2);
        assert_eq!(v.list(now).len(), 1);
    }

    #[test]
    fn disabled_version_is_refused_but_listed() {
        let now = Now::current();
        let mut v = vault();
        v.set(
            "k",
            NewVersion {
                enabled: Some(false),
                ..value("x")
            },
            id(1),
            now,
        )
        .unwrap();
        assert_eq!(inner(v.get("k", None, now)), (403, Some("SecretDisabled".into())));
        assert!(!v.list(now)[0].1.version.enabled);
        v.update(
            "k",
            None,
            Update {
                enabled: Some(true),
                ..Update::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(v.get("k", None, now).unwrap().version.value, "x");
    }

    #[test]
    fn soft_delete_walks_through_its_states() {
        let t0 = Now::current();
        let mut v = vault();
        v.set("k", value("x"), id(1), t0).unwrap();
        let deleted = v.delete("k", t0).unwrap();
        assert_eq!(deleted.scheduled_purge_date - deleted.deleted_date, 7 * 86_400);

        // While being deleted: invisible everywhere, conflicting calls answer 409.
        assert_eq!(v.get("k", None, t0).unwrap_err().status, 404);
        assert_eq!(v.get_deleted("k", t0).unwrap_err().status, 404);
        assert!(v.list_deleted(t0).is_empty());
        assert_eq!(inner(v.purge("k", t0)), (409, Some("ObjectIsBeingDeleted".into())));
        assert_eq!(inner(v.recover("k", t0)), (409, Some("ObjectIsBeingDeleted".into())));
        assert_eq!(
            inner(v.set("k", value("y"), id(2), t0)),
            (409, Some("ObjectIsBeingDeleted".into()))
        );

        // Deleted: listed, name not reusable.
        let t1 = t0.after(DELAY);
        assert_eq!(v.get_deleted("K", t1).unwrap().view.name, "k");
        assert_eq!(v.list_deleted(t1).len(), 1);
        assert_eq!(
            inner(v.set("K", value("y"), id(2), t1)),
            (409, Some("ObjectIsDeletedButRecoverable".into()))
        );
        assert_eq!(v.delete("k", t1).unwrap_err().status, 404);

        // Recovering: invisible until the delay passes.
        v.recover("k", t1).unwrap();
        assert_eq!(v.get("k", None, t1).unwrap_err().status, 404);
        assert_eq!(
            inner(v.set("k", value("y"), id(2), t1)),
            (409, Some("ObjectIsBeingRecovered".into()))
        );
        assert_eq!(inner(v.delete("k", t1)), (409, Some("ObjectIsBeingRecovered".into())));
        let t2 = t1.after(DELAY);
        assert_eq!(v.get("k", None, t2).unwrap().version.value, "x");

        // Delete again, purge, and the name is free.
        v.delete("k", t2).unwrap();
        let t3 = t2.after(DELAY);
        v.purge("k", t3).unwrap();
        assert_eq!(v.get_deleted("k", t3).unwrap_err().status, 404);
        assert_eq!(v.purge("k", t3).unwrap_err().status, 404);
        v.set("k", value("new"), id(3), t3).unwrap();
        assert_eq!(v.versions("k", t3).unwrap().len(), 1);
    }

    #[test]
    fn zero_delays_are_instant() {
        let now = Now::current();
        let mut v = Vault::new(SoftDelete::without_delays(90));
        assert_eq!(v.soft_delete().recovery_level(), "Recoverable+Purgeable");
        v.set("k", value("x"), id(1), now).unwrap();
        v.delete("k", now).unwrap();
        v.get_deleted("k", now).unwrap();
        v.recover("k", now).unwrap();
        v.get("k", None, now).unwrap();
    }

    #[test]
    fn purge_or_recover_of_an_active_secret_is_not_found() {
        let now = Now::current();
        let mut v = vault();
        v.set("k", value("x"), id(1), now).unwrap();
        assert_eq!(v.purge("k", now).unwrap_err().status, 404);
        assert_eq!(v.recover("k", now).unwrap_err().status, 404);
        assert_eq!(v.delete("missing", now).unwrap_err().code, "SecretNotFound");
    }

    #[test]
    fn versions_of_a_missing_or_deleted_name_are_an_empty_list() {
        let now = Now::current();
        let mut v = Vault::new(SoftDelete::without_delays(90));
        assert!(v.versions("missing", now).unwrap().is_empty());
        v.set("k", value("x"), id(1), now).unwrap();
        v.delete("k", now).unwrap();
        assert!(v.versions("k", now).unwrap().is_empty());
    }

    #[test]
    fn purge_protection_refuses_purge_and_drops_purgeable() {
        let now = Now::current();
        let mut sd = SoftDelete::without_delays(90);
        sd.purge_protection = true;
        assert_eq!(sd.recovery_level(), "Recoverable");
        sd.recoverable_days = 7;
        assert_eq!(sd.recovery_level(), "CustomizedRecoverable");
        let mut v = Vault::named("locked", sd);
        v.set("k", value("x"), id(1), now).unwrap();
        v.delete("k", now).unwrap();
        let refused = v.purge("k", now).unwrap_err();
        assert_eq!(
            (refused.status, refused.code.as_ref(), refused.inner.is_none()),
            (403, "Forbidden", true)
        );
        assert!(refused.message.contains("Vault: locked;"), "{}", refused.message);
        v.recover("k", now).unwrap();
        assert_eq!(v.get("k", None, now).unwrap().version.value, "x");
    }

    #[test]
    fn certificate_backed_secrets_refuse_set_and_delete() {
        let now = Now::current();
        let mut v = Vault::new(SoftDelete::without_delays(90));
        let view = v.set_managed("cert", value("pfx"), id(1), now).unwrap();
        assert!(view.managed);
        assert_eq!(
            inner(v.set("Cert", value("y"), id(2), now)),
            (403, Some("SecretManagedByKeyVault".into()))
        );
        assert_eq!(
            inner(v.delete("cert", now)),
            (403, Some("SecretManagedByKeyVault".into()))
        );
        v.set_managed("cert", value("renewed"), id(3), now).unwrap();
        assert_eq!(v.get("cert", None, now).unwrap().version.value, "renewed");
        assert!(v.list(now)[0].1.managed);
        v.set("plain", value("p"), id(4), now).unwrap();
        assert_eq!(v.set_managed("plain", value("x"), id(5), now).unwrap_err().status, 409);
    }
}
