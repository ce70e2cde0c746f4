//! [`VaultProvider`]: one KV v2 entry per credential.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use nebula_credential_core::remote::back_off;
use nebula_credential_core::{
    Capabilities, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation, Precondition,
    RecordEnvelope, Revision, StorageError, StorageProvider, Stored, Tags, Timestamp, async_trait,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::api::kv2::responses::{ReadSecretMetadataResponse, ReadSecretResponse};
use vaultrs::client::VaultClient;
use vaultrs::kv2;

use crate::PROVIDER;
use crate::auth::{Lookup, Session, TokenStats, renewal_loop};
use crate::config::{DeleteMode, VaultConfig};
use crate::errors::{Context, Kind, VaultError};
use crate::mount::{check_mount, config_error};
use crate::tags::{REVISION_KEY, SCHEME, desired, ensure_holds, from_vault, marker, merged, to_vault};

/// How far this machine's clock may differ from Vault's: a `deletion_time` less than
/// this away from our clock cannot be judged by it (a soft delete sets `deletion_time` to
/// Vault's "now", which a lagging clock sees in the future; a `delete_version_after` of
/// seconds sets one that a fast clock sees passed), so Vault is asked.
const CLOCK_SKEW_ALLOWANCE: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// What KV version metadata says about the version being readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// Readable: `deletion_time` empty, or well in the future (a mount's or key's
    /// `delete_version_after` sets a future one on every version, readable until then).
    Live,
    /// Destroyed, or deleted well before our clock's now.
    Gone,
    /// `deletion_time` within [`CLOCK_SKEW_ALLOWANCE`] of our clock: only Vault's clock
    /// can tell (a read of the version answers it).
    AskVault,
}

fn version_liveness(deletion_time: &str, destroyed: bool, now: Timestamp) -> Liveness {
    if destroyed {
        return Liveness::Gone;
    }
    if deletion_time.is_empty() {
        return Liveness::Live;
    }
    match deletion_time.parse::<Timestamp>() {
        Ok(at) if at > now + CLOCK_SKEW_ALLOWANCE => Liveness::Live,
        Ok(at) if at > now - CLOCK_SKEW_ALLOWANCE => Liveness::AskVault,
        _ => Liveness::Gone,
    }
}

/// Pauses before looking again at an entry that may be ours in the making (see
/// [`being_marked`]); a foreign entry is reported after them all (150 ms).
const UNMARKED_PAUSES: [Duration; 4] = [
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
];

/// Whether an entry without our marker may be one of ours in the making: a create whose
/// marked metadata a concurrent `purge` delete removed writes its first version onto
/// a bare entry (a `cas = 0` write creates it without `custom_metadata`), and marks it
/// one request later. Such an entry has version 1 and no `custom_metadata` at all: it is
/// ours when that version holds a record of ours for the id (however long the marking
/// takes on a loaded server), and is otherwise looked at again before being called foreign.
fn being_marked(current: u64, tags: &Tags) -> bool {
    current <= 1 && tags.is_empty()
}

/// How long [`VaultProvider::shutdown`] waits for the renewal task.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Rounds of read-then-`cas`-write an unconditional store makes against other writers
/// before giving up (each lost round backs off a random moment).
const MAX_ROUNDS: u32 = 64;

/// Credentials in HashiCorp Vault's (or OpenBao's) KV v2 secrets engine.
///
/// Built by `open()` from a [`VaultConfig`], or directly with [`new`](Self::new). A
/// background task renews the token (see the crate docs); [`shutdown`](Self::shutdown)
/// stops it, and dropping the provider cancels it.
pub struct VaultProvider {
    config: VaultConfig,
    session: Arc<Session>,
    /// Set once the mount was confirmed to be KV version 2.
    mount_confirmed: tokio::sync::OnceCell<()>,
    /// Set when a tag repair was denied (a read-only token): readers stop trying.
    repair_denied: std::sync::atomic::AtomicBool,
    /// Set when a `PATCH` of metadata was refused (a policy without `patch`, or a Vault
    /// before 1.9): tags are then written by replacing `custom_metadata` whole.
    patch_refused: std::sync::atomic::AtomicBool,
    /// Set once the warning that the mount cannot be confirmed was logged.
    mount_unconfirmable_warned: std::sync::atomic::AtomicBool,
    /// Set when a `GET metadata/…` of `revision` was refused by policy (a token that may
    /// read values only, e.g. `read` on `data/…` alone): `revision` then reads the value.
    metadata_denied: std::sync::atomic::AtomicBool,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for VaultProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultProvider")
            .field("endpoint", &self.config.endpoint)
            .field("mount_path", &self.config.mount_path)
            .field("secret_prefix", &self.config.secret_prefix)
            .field("auth", &self.config.auth)
            .finish_non_exhaustive()
    }
}

/// The revision of KV version `version` created at `created_time`: the version alone
/// repeats after a `purge` delete (versions restart at 1), its creation time does not.
fn revision(version: u64, created_time: &str) -> Revision {
    Revision::new(format!("{version}@{created_time}"))
}

/// What the metadata of one entry says.
struct EntryState {
    /// `current_version`; 0 for a metadata-only entry.
    current: u64,
    /// The [`revision`] of the current version.
    revision: Revision,
    /// The current version is readable (not soft-deleted, not destroyed).
    live: bool,
    /// The metadata alone cannot tell `live` (see [`Liveness::AskVault`]).
    ask_vault: bool,
    /// `custom_metadata`.
    tags: Tags,
}

impl EntryState {
    /// Whether the tags were written for the current version (see [`REVISION_KEY`]).
    fn tags_current(&self) -> bool {
        self.tags.get(REVISION_KEY).map(String::as_str) == Some(self.revision.as_str())
    }

    fn from_metadata(m: ReadSecretMetadataResponse) -> Self {
        let current = m.versions.get(&m.current_version.to_string());
        let now = nebula_credential_core::now();
        let liveness = match current {
            Some(v) if m.current_version > 0 => version_liveness(&v.deletion_time, v.destroyed, now),
            _ => Liveness::Gone,
        };
        EntryState {
            current: m.current_version,
            revision: revision(m.current_version, current.map_or("", |v| v.created_time.as_str())),
            live: liveness == Liveness::Live,
            ask_vault: liveness == Liveness::AskVault,
            tags: from_vault(m.custom_metadata),
        }
    }
}

impl VaultProvider {
    /// Validates `config`, builds the client (reading `ca_cert`), logs in with AppRole
    /// when configured (the only network I/O), and starts the token renewal task.
    pub async fn new(config: VaultConfig) -> Result<Self, StorageError> {
        use nebula_credential_core::ProviderConfig;
        config.validate()?;
        let session = Arc::new(Session::new(&config)?);
        session.login().await?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(renewal_loop(session.clone(), config.check_interval(), stopped));
        Ok(VaultProvider {
            config,
            session,
            mount_confirmed: tokio::sync::OnceCell::new(),
            repair_denied: std::sync::atomic::AtomicBool::new(false),
            patch_refused: std::sync::atomic::AtomicBool::new(false),
            mount_unconfirmable_warned: std::sync::atomic::AtomicBool::new(false),
            metadata_denied: std::sync::atomic::AtomicBool::new(false),
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Counters of the token lifecycle: renewals, re-logins and failures so far.
    pub fn token_stats(&self) -> TokenStats {
        self.session.stats()
    }

    /// Stops the token renewal task and waits for it, at most [`SHUTDOWN_GRACE`] (then
    /// it is aborted). Operations keep working with the current token until it expires.
    /// Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut task) = task
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }

    /// Whether the renewal task still runs.
    pub fn renewal_running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// The KV path (below the mount) of `id`: `secret_prefix/id`. Ids are ASCII letters,
    /// digits, `_` and `-`, all valid in Vault paths, which are case-sensitive: the map is
    /// lossless.
    pub fn secret_name(&self, id: &CredentialId) -> String {
        format!("{}/{id}", self.config.secret_prefix)
    }

    fn api_path(&self, kind: &str, path: &str) -> String {
        format!("{}/{kind}/{path}", self.config.mount_path)
    }

    /// Runs `call` with the current client. On a 403 it asks `lookup-self` whether the
    /// token itself is refused: then AppRole logs in again and `call` runs once more,
    /// token auth reports `AuthenticationFailed`; otherwise it is a policy denial.
    async fn call<'a, T, E, F, Fut>(&self, f: F) -> Result<T, VaultError>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'a,
        E: Into<VaultError>,
    {
        let client = self.session.client();
        let err = match f(client.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) => e.into(),
        };
        if err.kind != Kind::Denied || self.session.token_accepted(&client).await? {
            return Err(err);
        }
        if !matches!(self.session.reauthenticate(&client).await, Ok(true)) {
            return Err(err.unauthenticated());
        }
        let client = self.session.client();
        match f(client.clone()).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let e: VaultError = e.into();
                if e.kind == Kind::Denied && !self.session.token_accepted(&client).await? {
                    return Err(e.unauthenticated());
                }
                Err(e)
            }
        }
    }

    /// Confirms, once per provider, that `mount_path` is a KV version 2 mount (before the
    /// first operation; a failure is not remembered, the next operation asks again).
    async fn ensure_mount(&self) -> Result<(), StorageError> {
        self.mount_confirmed
            .get_or_try_init(|| self.confirm_mount())
            .await
            .map(drop)
    }

    /// `GET sys/internal/ui/mounts/<mount_path>` (the `default` policy allows it): the
    /// mount must be `kv` with `options.version = 2` and be `mount_path` itself. Missing
    /// mount, KV v1, another engine or a missing namespace: a `Config` error naming
    /// `mount_path` or `namespace`.
    async fn confirm_mount(&self) -> Result<(), StorageError> {
        let mount = self.config.mount_path.as_str();
        // Probes lookup-self first, so a 403 below can be told apart.
        self.session.lookup_state().await;
        let probe = format!("sys/internal/ui/mounts/{mount}");
        let probe_path = probe.as_str();
        let ctx = Context {
            operation: Operation::Check,
            id: None,
            path: &probe,
            capability: "read",
        };
        let no_mount = || {
            config_error(
                "mount_path",
                format!(
                    "no secrets engine is mounted at {mount:?}{} (or the token's policies grant nothing under it): \
                     set mount_path to your KV version 2 mount",
                    self.in_namespace()
                ),
            )
        };
        let session = &self.session;
        let answer = self
            .call(|c| async move { session.get_json(&c, probe_path).await })
            .await;
        match answer {
            Ok(body) => check_mount(mount, self.config.namespace.as_deref(), &self.in_namespace(), &body),
            Err(e) if e.kind == Kind::Denied => match self.session.lookup_state().await {
                // The token may not read sys/internal/ui (no `default` policy): the
                // operations themselves will tell.
                Lookup::Denied => {
                    if self
                        .mount_unconfirmable_warned
                        .swap(true, std::sync::atomic::Ordering::Relaxed)
                    {
                        return Ok(());
                    }
                    tracing::warn!(
                        provider = PROVIDER,
                        "cannot confirm that mount_path {mount:?} is a KV version 2 mount: the token lacks the \
                         `default` policy (read on sys/internal/ui/mounts)"
                    );
                    Ok(())
                }
                Lookup::Allowed => Err(no_mount()),
                // A token refused by lookup-self and by every request.
                Lookup::Unknown => Err(e.unauthenticated().into_storage(ctx)),
            },
            // Only the namespace in front of the route can be missing: the route exists.
            Err(e) if e.kind == Kind::NotFound && e.route_missing && self.config.namespace.is_some() => {
                let ns = self.config.namespace.as_deref().unwrap_or_default();
                Err(config_error(
                    "namespace",
                    format!(
                        "Vault has no namespace {ns:?} (a child namespace is written `parent/child`): set namespace \
                         to an existing one, or leave it unset for the root namespace"
                    ),
                ))
            }
            Err(e) if matches!(e.kind, Kind::NotFound | Kind::BadRequest) => Err(no_mount()),
            Err(e) => Err(e.into_storage(ctx)),
        }
    }

    /// ` in namespace "x"` when one is set.
    fn in_namespace(&self) -> String {
        self.config
            .namespace
            .as_ref()
            .map(|ns| format!(" in namespace {ns:?}"))
            .unwrap_or_default()
    }

    /// The metadata of the entry at `path`, `None` when there is none. Never reads values.
    async fn state(&self, path: &str, ctx: Context<'_>) -> Result<Option<EntryState>, StorageError> {
        let mount = self.config.mount_path.as_str();
        match self
            .call(|c| async move { kv2::read_metadata(&*c, mount, path).await })
            .await
        {
            Ok(m) => {
                let mut state = EntryState::from_metadata(m);
                if state.ask_vault {
                    state.live = self.served(path, ctx).await?;
                }
                Ok(Some(state))
            }
            Err(e) if e.kind == Kind::NotFound && !e.route_missing => Ok(None),
            Err(e) => Err(e.into_storage(ctx)),
        }
    }

    /// `GET data/<path>`: the current version's value and metadata in one call.
    async fn read_data(&self, path: &str) -> Result<ReadSecretResponse, VaultError> {
        let mount = self.config.mount_path.as_str();
        self.call(|c| async move {
            let request = ReadSecretRequest::builder()
                .mount(mount)
                .path(path)
                .build()
                .expect("mount and path set");
            vaultrs::api::exec_with_result(&*c, request).await
        })
        .await
    }

    /// Whether Vault serves the current version of the entry at `path` (its clock
    /// decides a `deletion_time` close to ours). A token that may not read values: no.
    async fn served(&self, path: &str, ctx: Context<'_>) -> Result<bool, StorageError> {
        let read = self.read_data(path).await;
        match read {
            Ok(_) => Ok(true),
            Err(e) if e.kind == Kind::NotFound && !e.route_missing => Ok(false),
            Err(e) if e.kind == Kind::Denied => Ok(false),
            Err(e) => Err(e.into_storage(Context {
                path: &self.api_path("data", path),
                capability: "read",
                ..ctx
            })),
        }
    }

    /// The state of `id`'s entry, refusing (`Conflict`) an entry without our marker.
    async fn ours(
        &self,
        id: &CredentialId,
        path: &str,
        operation: Operation,
    ) -> Result<Option<EntryState>, StorageError> {
        let meta_path = self.api_path("metadata", path);
        let ctx = Context {
            operation,
            id: Some(id),
            path: &meta_path,
            capability: "read",
        };
        let location = format!("{}/{path}", self.config.mount_path);
        for pause in UNMARKED_PAUSES.iter().map(Some).chain([None]) {
            let Some(state) = self.state(path, ctx).await? else {
                return Ok(None);
            };
            let Err(e) = ensure_holds(id, &location, &state.tags) else {
                return Ok(Some(state));
            };
            if !being_marked(state.current, &state.tags) {
                return Err(e);
            }
            // Its value tells, however long our marking takes on a loaded server.
            if self.holds_record_of(id, path, operation, state.current).await? {
                return Ok(Some(state));
            }
            match pause {
                Some(pause) => tokio::time::sleep(*pause).await,
                None => return Err(e),
            }
        }
        unreachable!("the last round returns")
    }

    /// Whether version `version` of `id`'s entry is current and holds a record of ours for
    /// `id`: an entry [`being_marked`] that a create of ours wrote.
    async fn holds_record_of(
        &self,
        id: &CredentialId,
        path: &str,
        operation: Operation,
        version: u64,
    ) -> Result<bool, StorageError> {
        let Some(read) = self.read_current(id, path, operation).await? else {
            return Ok(false);
        };
        Ok(read.metadata.version == version && self.is_record_of(id, path, &read))
    }

    /// Whether `read` holds a record of ours for `id` (whatever its tags say).
    fn is_record_of(&self, id: &CredentialId, path: &str, read: &ReadSecretResponse) -> bool {
        let location = format!("{}/{path}", self.config.mount_path);
        serde_json::to_vec(&read.data)
            .ok()
            .is_some_and(|bytes| RecordEnvelope::from_json(&bytes, PROVIDER, &location, Some(id)).is_ok())
    }

    /// Reads the current version of `id`'s entry (value and metadata in one call); `None`
    /// when there is no readable version.
    async fn read_current(
        &self,
        id: &CredentialId,
        path: &str,
        operation: Operation,
    ) -> Result<Option<ReadSecretResponse>, StorageError> {
        let read = self.read_data(path).await;
        match read {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind == Kind::NotFound && !e.route_missing => Ok(None),
            Err(e) => Err(e.into_storage(Context {
                operation,
                id: Some(id),
                path: &self.api_path("data", path),
                capability: "read",
            })),
        }
    }

    /// The current version of `id`'s entry (value and metadata in one `GET data/…`) and
    /// its tags, checked to be ours and `id`'s: `NotFound` when there is no readable
    /// version, `Conflict` for an entry without our marker (after the pauses an entry of
    /// ours in the making gets, see [`being_marked`]).
    async fn read_ours(
        &self,
        id: &CredentialId,
        path: &str,
        operation: Operation,
    ) -> Result<(ReadSecretResponse, Tags), StorageError> {
        let location = format!("{}/{path}", self.config.mount_path);
        let mut pauses = UNMARKED_PAUSES.iter();
        loop {
            let Some(read) = self.read_current(id, path, operation).await? else {
                return Err(StorageError::not_found(PROVIDER, id));
            };
            let tags = from_vault(read.metadata.custom_metadata.clone());
            match ensure_holds(id, &location, &tags) {
                Ok(()) => return Ok((read, tags)),
                // A create of ours not marked yet: its value tells.
                Err(_) if being_marked(read.metadata.version, &tags) && self.is_record_of(id, path, &read) => {
                    return Ok((read, tags));
                }
                Err(e) => match pauses.next() {
                    Some(pause) if being_marked(read.metadata.version, &tags) => tokio::time::sleep(*pause).await,
                    _ => return Err(e),
                },
            }
        }
    }

    /// The revision of `id` from the metadata alone (`GET metadata/…`): `current_version`
    /// with that version's `created_time`, as `retrieve` reports it from `GET data/…`.
    /// `NotFound` for no entry, a metadata-only entry, or a current version soft-deleted
    /// (`deletion_time` passed) or destroyed; `Conflict` for an entry without our marker.
    async fn revision_from_metadata(&self, id: &CredentialId, path: &str) -> Result<Revision, StorageError> {
        match self.ours(id, path, Operation::Revision).await? {
            Some(state) if state.live => Ok(state.revision),
            _ => Err(StorageError::not_found(PROVIDER, id)),
        }
    }

    /// `Some(revision)` when the entry's current version holds exactly `record`: an
    /// earlier attempt of this very write (retried after a lost answer) landed, so the
    /// conditional store succeeded rather than conflicting with itself.
    async fn landed(
        &self,
        id: &CredentialId,
        path: &str,
        record: &serde_json::Value,
        metadata: &CredentialMetadata,
    ) -> Result<Option<Revision>, StorageError> {
        let Some(read) = self.read_current(id, path, Operation::Store).await? else {
            return Ok(None);
        };
        if read.data != *record {
            return Ok(None);
        }
        let written = revision(read.metadata.version, &read.metadata.created_time);
        let tags = from_vault(read.metadata.custom_metadata);
        ensure_holds(id, &format!("{}/{path}", self.config.mount_path), &tags)?;
        if tags.get(REVISION_KEY).map(String::as_str) != Some(written.as_str()) {
            self.tag_version(id, path, &tags, &desired(id, metadata, &written))
                .await;
        }
        Ok(Some(written))
    }

    /// After our marker went onto a new entry and our create (`cas` 0) lost: when the
    /// version that won is not a record of ours for `id` — another tool created the
    /// entry between our look and our marker — takes our keys off it again and reports
    /// it as foreign, so no later store takes it for ours and overwrites it.
    async fn release_if_foreign(&self, id: &CredentialId, path: &str) -> Result<(), StorageError> {
        let Some(read) = self.read_current(id, path, Operation::Store).await? else {
            return Ok(());
        };
        let location = format!("{}/{path}", self.config.mount_path);
        if self.is_record_of(id, path, &read) {
            return Ok(());
        }
        let tags = from_vault(read.metadata.custom_metadata);
        let foreign: Tags = tags
            .iter()
            .filter(|(k, _)| !k.starts_with(SCHEME.reserved_prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // `desired` = the foreign keys alone: every reserved key of ours is removed.
        if let Err(e) = self.write_tags(id, path, &tags, &foreign).await {
            tracing::warn!(
                provider = PROVIDER,
                credential = %id,
                error = %e,
                "another tool created {location:?} while this provider was creating it; taking the managed-by marker \
                 off it again failed: remove the nebula-credential:* keys from its custom_metadata by hand"
            );
        }
        SCHEME.ensure_ours(PROVIDER, id, &location, &Tags::new())
    }

    /// After a version landed: sets its tags (`desired`, marked with its revision) on top
    /// of `current`. A failure is logged, not returned — the value is stored and the tags
    /// say which version they describe, so readers detect stale ones and repair them.
    async fn tag_version(&self, id: &CredentialId, path: &str, current: &Tags, desired: &Tags) {
        if let Err(e) = self.write_tags(id, path, current, desired).await {
            tracing::warn!(
                provider = PROVIDER,
                credential = %id,
                error = %e,
                "the value was stored, but its tags (custom_metadata) were not updated; list reads the record until \
                 they are repaired"
            );
        }
    }

    /// Tags for `id` from its record when the entry's tags were written for another
    /// version: repaired in passing (best effort; once a repair is denied — a token
    /// without `update` on metadata — this provider stops trying, and readers keep
    /// reading the record).
    async fn repair_tags(
        &self,
        id: &CredentialId,
        path: &str,
        read: &ReadSecretResponse,
        current: &Tags,
    ) -> Option<Tags> {
        let bytes = serde_json::to_vec(&read.data).ok()?;
        let location = format!("{}/{path}", self.config.mount_path);
        let record = RecordEnvelope::from_json(&bytes, PROVIDER, &location, Some(id)).ok()?;
        let written = revision(read.metadata.version, &read.metadata.created_time);
        let tags = desired(id, &record.metadata, &written);
        let next = merged(current, &tags);
        if self.repair_denied.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(next);
        }
        if let Err(e) = self.write_tags(id, path, current, &tags).await {
            if matches!(e, StorageError::PermissionDenied { .. }) {
                self.repair_denied.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            tracing::debug!(provider = PROVIDER, credential = %id, error = %e, "cannot repair stale tags");
        }
        Some(next)
    }

    /// Sets our keys of `desired` on the entry whose tags were `current`, by a JSON merge
    /// patch of our keys alone (every key of `desired`, and `null` for ours it drops):
    /// keys other tools add meanwhile survive, and an entry deleted meanwhile is not
    /// brought back as metadata alone. Where `PATCH` is refused (a policy without
    /// `patch` on `metadata/`, or a Vault before 1.9), `custom_metadata` is replaced
    /// whole instead, from `current`.
    async fn write_tags(
        &self,
        id: &CredentialId,
        path: &str,
        current: &Tags,
        desired: &Tags,
    ) -> Result<(), StorageError> {
        use std::sync::atomic::Ordering;
        if !self.patch_refused.load(Ordering::Relaxed) {
            let mut custom: serde_json::Map<String, serde_json::Value> = to_vault(desired)
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            for k in SCHEME.update(current, desired).remove {
                custom.insert(k, serde_json::Value::Null);
            }
            let body = serde_json::json!({ "custom_metadata": custom });
            let api = self.api_path("metadata", path);
            let (session, api_ref, body_ref) = (&self.session, api.as_str(), &body);
            let patched = self
                .call(|c| async move { session.patch_json(&c, api_ref, body_ref).await })
                .await;
            match patched {
                Ok(()) => return Ok(()),
                // Deleted (purge) since the value landed: nothing left to describe.
                Err(e) if e.kind == Kind::NotFound && !e.route_missing => return Ok(()),
                Err(e) if e.kind == Kind::Denied || e.status == Some(405) => {
                    if !self.patch_refused.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            provider = PROVIDER,
                            path = %api,
                            "Vault refused PATCH on metadata/ (the policy lacks the `patch` capability there, or Vault \
                             is older than 1.9): the provider now replaces custom_metadata whole, which can drop keys \
                             another tool adds at the same moment; grant `patch` on metadata/"
                        );
                    }
                }
                Err(e) => {
                    return Err(e.into_storage(Context {
                        operation: Operation::Store,
                        id: Some(id),
                        path: &api,
                        capability: "patch",
                    }));
                }
            }
        }
        self.put_tags(id, path, &merged(current, desired), "update").await
    }

    /// Replaces the entry's `custom_metadata` with `tags`.
    async fn put_tags(
        &self,
        id: &CredentialId,
        path: &str,
        tags: &Tags,
        capability: &'static str,
    ) -> Result<(), StorageError> {
        let mount = self.config.mount_path.as_str();
        let custom = to_vault(tags);
        let custom = &custom;
        self.call(|c| async move {
            let mut req = SetSecretMetadataRequest::builder();
            req.custom_metadata(custom.clone());
            kv2::set_metadata(&*c, mount, path, Some(&mut req)).await
        })
        .await
        .map_err(|e| {
            e.into_storage(Context {
                operation: Operation::Store,
                id: Some(id),
                path: &self.api_path("metadata", path),
                capability,
            })
        })
    }

    /// One write with check-and-set `cas`: the new version's revision, `Ok(None)` when the
    /// check-and-set did not hold.
    async fn write(
        &self,
        id: &CredentialId,
        path: &str,
        record: &serde_json::Value,
        cas: u64,
        create: bool,
    ) -> Result<Option<Revision>, StorageError> {
        let mount = self.config.mount_path.as_str();
        let cas = match u32::try_from(cas) {
            Ok(c) => c,
            Err(_) => {
                return Err(StorageError::backend(
                    PROVIDER,
                    Operation::Store,
                    Some(id),
                    "the entry's version is beyond what check-and-set can name; delete and store it again",
                ));
            }
        };
        let written =
            self.call(|c| async move {
                kv2::set_with_options(&*c, mount, path, record, SetSecretRequestOptions { cas }).await
            })
            .await;
        match written {
            Ok(meta) => Ok(Some(revision(meta.version, &meta.created_time))),
            // Our request is well-formed: a 400 on a cas write is the check-and-set failing.
            Err(e) if e.kind == Kind::BadRequest => Ok(None),
            Err(e) => Err(e.into_storage(Context {
                operation: Operation::Store,
                id: Some(id),
                path: &self.api_path("data", path),
                capability: if create { "create" } else { "update" },
            })),
        }
    }

    async fn store_entry(
        &self,
        id: &CredentialId,
        record: &serde_json::Value,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        self.ensure_mount().await?;
        let path = self.secret_name(id);
        for round in 0..MAX_ROUNDS {
            if round > 0 {
                back_off(round).await;
            }
            let state = self.ours(id, &path, Operation::Store).await?;
            // Every write names the version checked as ours with cas (0: no entry), so an
            // entry deleted or replaced meanwhile (ours or foreign) is never written over:
            // a write after a concurrent purge would recreate it without our marker.
            let refused = match (&state, precondition) {
                (Some(s), Precondition::Absent) => s.live,
                (Some(s), Precondition::Revision(r)) => !s.live || *r != s.revision,
                (None, Precondition::Revision(_)) => true,
                _ => false,
            };
            if refused {
                return match self.landed(id, &path, record, metadata).await? {
                    Some(written) => Ok(written),
                    None => Err(precondition.conflict(PROVIDER, id)),
                };
            }
            let (cas, current_tags, marked_now) = match state {
                Some(s) => (s.current, s.tags, false),
                // A new entry carries our marker before it holds any data.
                None => {
                    let marked = marker(id);
                    self.put_tags(id, &path, &marked, "create").await?;
                    (0, marked, true)
                }
            };
            let written = self.write(id, &path, record, cas, cas == 0).await?;
            if written.is_none() && marked_now {
                // Our marker may have gone onto an entry another tool created meanwhile.
                self.release_if_foreign(id, &path).await?;
            }
            match written {
                Some(written) => {
                    // Also re-marks an entry a delete stripped between marking and writing.
                    self.tag_version(id, &path, &current_tags, &desired(id, metadata, &written))
                        .await;
                    return Ok(written);
                }
                None if precondition.is_conditional() => {
                    return match self.landed(id, &path, record, metadata).await? {
                        Some(written) => Ok(written),
                        None => Err(precondition.conflict(PROVIDER, id)),
                    };
                }
                // Another writer got in between: read again (it may even be foreign now).
                None => continue,
            }
        }
        Err(StorageError::conflict(
            PROVIDER,
            id,
            "the entry kept changing while being written; retry the store",
        ))
    }
}

impl Drop for VaultProvider {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.lock().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
    }
}

#[async_trait]
impl StorageProvider for VaultProvider {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::new(self.config.max_payload_bytes).with_conditional_store();
        match self.config.delete_mode {
            DeleteMode::Soft => caps.with_soft_delete(),
            DeleteMode::Purge => caps,
        }
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let json = RecordEnvelope::encode(id, data, metadata, PROVIDER, self.config.max_payload_bytes)?;
        let record: serde_json::Value = serde_json::from_slice(&json).map_err(|e| {
            StorageError::backend(PROVIDER, Operation::Store, Some(id), "cannot re-read the record").with_source(e)
        })?;
        self.store_entry(id, &record, metadata, precondition).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        self.ensure_mount().await?;
        let path = self.secret_name(id);
        let location = format!("{}/{path}", self.config.mount_path);
        let (read, tags) = self.read_ours(id, &path, Operation::Retrieve).await?;
        let bytes = serde_json::to_vec(&read.data).map_err(|e| {
            StorageError::backend(PROVIDER, Operation::Retrieve, Some(id), "cannot re-encode the entry").with_source(e)
        })?;
        let record = RecordEnvelope::from_json(&bytes, PROVIDER, &location, Some(id))?;
        let read_revision = revision(read.metadata.version, &read.metadata.created_time);
        if tags.get(REVISION_KEY).map(String::as_str) != Some(read_revision.as_str()) {
            self.repair_tags(id, &path, &read, &tags).await;
        }
        Ok(Stored {
            data: record.encrypted_data,
            metadata: record.metadata,
            revision: read_revision,
        })
    }

    /// One `GET metadata/…`, never the value (see `revision_from_metadata`). A token
    /// whose policy refuses `read` on `metadata/…` but allows it on `data/…` (the usual
    /// read-only application policy) gets the revision from a `GET data/…` instead: the
    /// first refusal is logged once, and later calls go to `data/…` at once.
    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        use std::sync::atomic::Ordering;
        self.ensure_mount().await?;
        let path = self.secret_name(id);
        if !self.metadata_denied.load(Ordering::Relaxed) {
            match self.revision_from_metadata(id, &path).await {
                Err(StorageError::PermissionDenied { .. }) => {
                    if !self.metadata_denied.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            provider = PROVIDER,
                            path = %self.api_path("metadata", &path),
                            "the token may not read metadata/: revision (a cache's revalidation) now reads the value \
                             from data/ instead; grant `read` on metadata/ so it never fetches the value"
                        );
                    }
                }
                other => return other,
            }
        }
        let (read, _) = self.read_ours(id, &path, Operation::Revision).await?;
        Ok(revision(read.metadata.version, &read.metadata.created_time))
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        self.ensure_mount().await?;
        let path = self.secret_name(id);
        let Some(state) = self.ours(id, &path, Operation::Delete).await? else {
            return Ok(());
        };
        let mount = self.config.mount_path.as_str();
        let p = path.as_str();
        let (result, api) = match self.config.delete_mode {
            DeleteMode::Purge => (
                self.call(|c| async move { kv2::delete_metadata(&*c, mount, p).await })
                    .await,
                "metadata",
            ),
            DeleteMode::Soft if state.live => (
                self.call(|c| async move { kv2::delete_latest(&*c, mount, p).await })
                    .await,
                "data",
            ),
            DeleteMode::Soft => return Ok(()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind == Kind::NotFound && !e.route_missing => Ok(()),
            Err(e) => Err(e.into_storage(Context {
                operation: Operation::Delete,
                id: Some(id),
                path: &self.api_path(api, &path),
                capability: "delete",
            })),
        }
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        self.ensure_mount().await?;
        let mount = self.config.mount_path.as_str();
        let prefix = self.config.secret_prefix.as_str();
        let listed = self.call(|c| async move { kv2::list(&*c, mount, prefix).await }).await;
        let keys = match listed {
            Ok(keys) => keys,
            Err(e) if e.kind == Kind::NotFound && !e.route_missing => return Ok(Vec::new()),
            Err(e) => {
                return Err(e.into_storage(Context {
                    operation: Operation::List,
                    id: None,
                    path: &self.api_path("metadata", prefix),
                    capability: "list",
                }));
            }
        };
        let wanted_prefix = filter.id_prefix.as_deref().unwrap_or_default();
        let candidates: Vec<CredentialId> = keys
            .iter()
            .filter(|k| !k.ends_with('/') && k.starts_with(wanted_prefix))
            .filter_map(|k| CredentialId::new(k.as_str()).ok())
            .collect();
        let checks = futures::stream::iter(candidates)
            .map(|id| async move {
                let path = self.secret_name(&id);
                let meta_path = self.api_path("metadata", &path);
                let ctx = Context {
                    operation: Operation::List,
                    id: Some(&id),
                    path: &meta_path,
                    capability: "read",
                };
                let Some(state) = self.state(&path, ctx).await? else {
                    return Ok(None);
                };
                if !state.live || ensure_holds(&id, "", &state.tags).is_err() {
                    return Ok(None);
                }
                let tags = if state.tags_current() {
                    state.tags
                } else {
                    // Tags written for another version: the record says what is current.
                    match self.read_current(&id, &path, Operation::List).await {
                        Ok(Some(read)) => match self.repair_tags(&id, &path, &read, &state.tags).await {
                            Some(tags) => tags,
                            // The current version is no record of ours (another tool wrote
                            // over it): the stale tags describe nothing there, so only the
                            // marker is left to match (a tag filter does not).
                            None => marker(&id),
                        },
                        Ok(None) => return Ok(None),
                        // A token that may list but not read values filters on the tags it has.
                        Err(StorageError::PermissionDenied { .. }) => state.tags,
                        Err(e) => return Err(e),
                    }
                };
                // Only keys written together with the revision count (a merge-patch may
                // leave another writer's key behind; another tool's keys are not tags).
                Ok::<_, StorageError>(SCHEME.matches(filter, &id, &SCHEME.owned_view(&tags)).then_some(id))
            })
            .buffer_unordered(self.config.list_concurrency);
        let mut ids: Vec<CredentialId> = Vec::new();
        let results: Vec<Result<Option<CredentialId>, StorageError>> = checks.collect().await;
        for r in results {
            if let Some(id) = r? {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        self.ensure_mount().await?;
        let path = self.secret_name(id);
        Ok(self.ours(id, &path, Operation::Exists).await?.is_some_and(|s| s.live))
    }

    /// Confirms that `mount_path` is a KV version 2 mount (`GET
    /// sys/internal/ui/mounts/<mount_path>`; a `Config` error naming `mount_path` or
    /// `namespace` otherwise), then a `LIST` of the prefix (an empty folder is fine):
    /// proves the endpoint, TLS, the token, the mount and the `list` capability.
    async fn check(&self) -> Result<(), StorageError> {
        self.confirm_mount().await?;
        let _ = self.mount_confirmed.set(());
        let mount = self.config.mount_path.as_str();
        let prefix = self.config.secret_prefix.as_str();
        match self.call(|c| async move { kv2::list(&*c, mount, prefix).await }).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == Kind::NotFound && !e.route_missing => Ok(()),
            Err(e) => Err(e.into_storage(Context {
                operation: Operation::Check,
                id: None,
                path: &self.api_path("metadata", prefix),
                capability: "list",
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider for an address where nothing listens (port 9 on loopback).
    async fn unreachable(prefix: &str) -> VaultProvider {
        VaultProvider::new(VaultConfig {
            mount_path: "kv".into(),
            secret_prefix: prefix.into(),
            max_payload_bytes: 2048,
            ..VaultConfig::with_token("http://127.0.0.1:9", "s.TOPSECRET")
        })
        .await
        .expect("token auth builds without a request")
    }

    #[tokio::test]
    async fn paths_are_mount_prefix_and_id_unchanged() {
        let p = unreachable("team/app").await;
        let id: CredentialId = "Api_Key-2".parse().unwrap();
        assert_eq!(p.secret_name(&id), "team/app/Api_Key-2");
        assert_eq!(p.api_path("data", &p.secret_name(&id)), "kv/data/team/app/Api_Key-2");
        assert_eq!(p.api_path("metadata", "team/app"), "kv/metadata/team/app");
        let other: CredentialId = "api_key-2".parse().unwrap();
        assert_ne!(p.secret_name(&id), p.secret_name(&other), "case is kept");
        let shown = format!("{p:?}");
        assert!(!shown.contains("TOPSECRET") && shown.contains("team/app"), "{shown}");
        p.shutdown().await;
    }

    #[tokio::test]
    async fn too_large_before_any_request_and_refused_connections_are_retryable() {
        let p = unreachable("x").await;
        let id: CredentialId = "k".parse().unwrap();
        let big = EncryptedData {
            version: 1,
            key_id: "k".into(),
            nonce: [0; 12],
            ciphertext: vec![0; 4096],
        };
        let e = p.store(&id, &big, &CredentialMetadata::new()).await.unwrap_err();
        assert!(matches!(e, StorageError::TooLarge { limit: 2048, .. }), "{e:?}");
        let e = p.retrieve(&id).await.unwrap_err();
        assert!(
            matches!(e, StorageError::Unavailable { .. }) && e.is_retryable(),
            "{e:?}"
        );
        assert!(!format!("{e} {e:?}").contains("TOPSECRET"));
    }

    #[tokio::test]
    async fn shutdown_and_drop_stop_the_renewal_task() {
        let p = unreachable("x").await;
        assert!(p.renewal_running());
        p.shutdown().await;
        assert!(!p.renewal_running());
        let p = unreachable("y").await;
        let session = p.session.clone();
        drop(p);
        // The task holds the other reference; dropping the provider aborts it.
        for _ in 0..100 {
            if Arc::strong_count(&session) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the renewal task outlived its provider");
    }

    #[test]
    fn a_future_deletion_time_is_live() {
        use Liveness::*;
        let now: Timestamp = "2026-12-06T12:00:00Z".parse().unwrap();
        assert_eq!(version_liveness("", false, now), Live);
        assert_eq!(
            version_liveness("2026-12-06T13:00:00.123456789Z", false, now),
            Live,
            "delete_version_after"
        );
        assert_eq!(
            version_liveness("2026-12-06T11:59:50Z", false, now),
            Gone,
            "soft-deleted"
        );
        assert_eq!(
            version_liveness("2026-12-06T12:00:03Z", false, now),
            AskVault,
            "soft-deleted seen by a clock 3 s behind Vault's, or a delete_version_after of seconds"
        );
        assert_eq!(
            version_liveness("2026-12-06T11:59:58Z", false, now),
            AskVault,
            "due a moment ago by our clock"
        );
        assert_eq!(version_liveness("", true, now), Gone, "destroyed");
        assert_eq!(version_liveness("not a time", false, now), Gone);
    }

    #[test]
    fn mount_answers() {
        let answer = |kind: &str, version: serde_json::Value, path: &str| serde_json::json!({"data": {"type": kind, "options": {"version": version}, "path": path}});
        assert!(check_mount("secret", None, "", &answer("kv", "2".into(), "secret/")).is_ok());
        let field = |r: Result<(), StorageError>| match r {
            Err(StorageError::Config(c)) => (c.field().to_string(), c.rule().to_string()),
            other => panic!("{other:?}"),
        };
        let (f, rule) = field(check_mount("secret", None, "", &answer("kv", "1".into(), "secret/")));
        assert!(f == "mount_path" && rule.contains("version 1"), "{rule}");
        let (f, rule) = field(check_mount(
            "kv",
            None,
            "",
            &answer("kv", serde_json::Value::Null, "kv/"),
        ));
        assert!(f == "mount_path" && rule.contains("version 1"), "{rule}");
        let (_, rule) = field(check_mount(
            "pki",
            None,
            "",
            &answer("pki", serde_json::Value::Null, "pki/"),
        ));
        assert!(rule.contains("\"pki\" secrets engine"), "{rule}");
        let (_, rule) = field(check_mount(
            "secret/sub",
            None,
            "",
            &answer("kv", "2".into(), "secret/"),
        ));
        assert!(rule.contains("inside") && rule.contains("secret_prefix"), "{rule}");
        // A child namespace written in front of the mount: Vault answers from the parent on.
        let nested = answer("kv", "2".into(), "parent/child/kv/");
        assert!(check_mount("child/kv", Some("parent"), "", &nested).is_ok());
        assert!(check_mount("child/kv", Some("/parent/"), "", &nested).is_ok());
        let (_, rule) = field(check_mount("child/kv", None, "", &nested));
        assert!(rule.contains("inside"), "{rule}");
        let (_, rule) = field(check_mount("child/kv/sub", Some("parent"), "", &nested));
        assert!(rule.contains("inside"), "{rule}");
    }

    #[test]
    fn tags_name_the_version_they_describe() {
        let id: CredentialId = "k".parse().unwrap();
        let meta = CredentialMetadata::new().with_tags(Tags::from([("env".to_string(), "prod".to_string())]));
        let rev = revision(3, "2026-12-06T12:00:00Z");
        let tags = desired(&id, &meta, &rev);
        let state = |tags: Tags| EntryState {
            current: 3,
            revision: rev.clone(),
            live: true,
            ask_vault: false,
            tags,
        };
        assert!(state(tags.clone()).tags_current());
        let older = desired(&id, &meta, &revision(2, "2026-12-06T11:00:00Z"));
        assert!(!state(older).tags_current());
        assert!(
            !state(marker(&id)).tags_current(),
            "the marker alone describes no version"
        );
        assert!(SCHEME.is_ours(&marker(&id)) && !marker(&id).contains_key("env"));
        // Other tools' keys survive a merge; ours are replaced.
        let mut current = marker(&id);
        current.insert("owner".into(), "ops".into());
        let next = merged(&current, &tags);
        assert_eq!(next["owner"], "ops");
        assert_eq!(next[REVISION_KEY], rev.as_str());
    }

    #[test]
    fn empty_values_survive_custom_metadata() {
        let meta = CredentialMetadata::new().with_tags(Tags::from([
            ("empty".to_string(), String::new()),
            ("set".to_string(), "∅".to_string()),
            ("long".to_string(), "ü".repeat(256)),
        ]));
        let desired = SCHEME.desired(&meta, &Tags::new());
        let written = to_vault(&desired);
        assert!(written.values().all(|v| !v.is_empty() && v.len() <= 512), "{written:?}");
        assert_ne!(written["empty"], written["set"]);
        assert_eq!(from_vault(Some(written)), desired);
        let id: CredentialId = "k".parse().unwrap();
        for (k, v) in [("empty", ""), ("set", "∅")] {
            let f = CredentialFilter::new().tag(k, v);
            assert!(SCHEME.matches(&f, &id, &desired), "{k}");
        }
    }
}
