//! [`HashiCorpVaultProvider`]: one KV v2 entry per credential.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use nebula_credential_core::remote::{TagScheme, back_off};
use nebula_credential_core::{
    Capabilities, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation, Precondition, Revision,
    StorageError, StorageProvider, Stored, StoredRecord, Tags, async_trait,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::api::kv2::responses::ReadSecretMetadataResponse;
use vaultrs::client::VaultClient;
use vaultrs::error::ClientError;
use vaultrs::kv2;

use crate::PROVIDER;
use crate::auth::{Session, TokenStats, renewal_loop};
use crate::config::{DeleteMode, VaultConfig};
use crate::errors::{Context, Kind, VaultError};

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

/// Our `custom_metadata` for `id` holding a credential with `metadata`.
fn desired(id: &CredentialId, metadata: &CredentialMetadata) -> Tags {
    let mut tags = SCHEME.desired(metadata, &Tags::new());
    tags.insert(ID_KEY.into(), id.to_string());
    tags
}

/// `Ok` when the entry at `location`, tagged `tags`, is ours and holds `id` (entries
/// written before [`ID_KEY`] existed lack it and pass); `Conflict` otherwise.
fn ensure_holds(id: &CredentialId, location: &str, tags: &Tags) -> Result<(), StorageError> {
    SCHEME.ensure_ours(PROVIDER, id, location, tags)?;
    match tags.get(ID_KEY) {
        Some(held) if held != id.as_str() => Err(StorageError::conflict(
            PROVIDER,
            id,
            format!(
                "{location:?} carries the managed-by marker but holds credential {held:?} (a copy?), so \
                 nebula-credential neither reads, overwrites nor deletes it; move that entry away"
            ),
        )),
        _ => Ok(()),
    }
}

/// Vault refuses empty `custom_metadata` values: an empty tag value is stored as `∅`,
/// which the scheme never produces for a non-empty value (it holds `∅` as a digest).
const EMPTY_CHAR: char = '\u{2205}';
const EMPTY: &str = "\u{2205}";

/// Tags as written to `custom_metadata`.
fn to_vault(tags: &Tags) -> HashMap<String, String> {
    tags.iter()
        .map(|(k, v)| (k.clone(), if v.is_empty() { EMPTY.to_string() } else { v.clone() }))
        .collect()
}

/// Tags as read from `custom_metadata`.
fn from_vault(custom: Option<HashMap<String, String>>) -> Tags {
    custom
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| if v == EMPTY { (k, String::new()) } else { (k, v) })
        .collect()
}

/// How long [`HashiCorpVaultProvider::shutdown`] waits for the renewal task.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Rounds of read-then-`cas`-write an unconditional store makes against other writers
/// before giving up (each lost round backs off a random moment).
const MAX_ROUNDS: u32 = 64;

/// Credentials in HashiCorp Vault's (or OpenBao's) KV v2 secrets engine.
///
/// Built by `open()` from a [`VaultConfig`], or directly with [`new`](Self::new). A
/// background task renews the token (see the crate docs); [`shutdown`](Self::shutdown)
/// stops it, and dropping the provider cancels it.
pub struct HashiCorpVaultProvider {
    config: VaultConfig,
    session: Arc<Session>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for HashiCorpVaultProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashiCorpVaultProvider")
            .field("address", &self.config.address)
            .field("mount_path", &self.config.mount_path)
            .field("path_prefix", &self.config.path_prefix)
            .field("auth", &self.config.auth)
            .finish_non_exhaustive()
    }
}

/// The revision of KV version `version` created at `created_time`: the version alone
/// repeats after a `destroy` delete (versions restart at 1), its creation time does not.
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
    /// `custom_metadata`.
    tags: Tags,
}

impl EntryState {
    fn from_metadata(m: ReadSecretMetadataResponse) -> Self {
        let current = m.versions.get(&m.current_version.to_string());
        let live = m.current_version > 0 && current.is_some_and(|v| v.deletion_time.is_empty() && !v.destroyed);
        EntryState {
            current: m.current_version,
            revision: revision(m.current_version, current.map_or("", |v| v.created_time.as_str())),
            live,
            tags: from_vault(m.custom_metadata),
        }
    }
}

impl HashiCorpVaultProvider {
    /// Validates `config`, builds the client (reading `ca_cert`), logs in with AppRole
    /// when configured (the only network I/O), and starts the token renewal task.
    pub async fn new(config: VaultConfig) -> Result<Self, StorageError> {
        use nebula_credential_core::ProviderConfig;
        config.validate()?;
        let session = Arc::new(Session::new(&config)?);
        session.login().await?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(renewal_loop(session.clone(), config.check_interval(), stopped));
        Ok(HashiCorpVaultProvider {
            config,
            session,
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

    /// The KV path (below the mount) of `id`: `path_prefix/id`. Ids are ASCII letters,
    /// digits, `_` and `-`, all valid in Vault paths, which are case-sensitive: the map is
    /// lossless.
    pub fn entry_path(&self, id: &CredentialId) -> String {
        format!("{}/{id}", self.config.path_prefix)
    }

    fn api_path(&self, kind: &str, path: &str) -> String {
        format!("{}/{kind}/{path}", self.config.mount_path)
    }

    /// Runs `call` with the current client. On a 403 it asks `lookup-self` whether the
    /// token itself is refused: then AppRole logs in again and `call` runs once more,
    /// token auth reports `AuthenticationFailed`; otherwise it is a policy denial.
    async fn call<'a, T, F, Fut>(&self, f: F) -> Result<T, VaultError>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>> + 'a,
    {
        let client = self.session.client();
        let err = match f(client.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) => VaultError::from(e),
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
                let e = VaultError::from(e);
                if e.kind == Kind::Denied && !self.session.token_accepted(&client).await? {
                    return Err(e.unauthenticated());
                }
                Err(e)
            }
        }
    }

    /// The metadata of the entry at `path`, `None` when there is none. Never reads values.
    async fn state(&self, path: &str, ctx: Context<'_>) -> Result<Option<EntryState>, StorageError> {
        let mount = self.config.mount_path.as_str();
        match self
            .call(|c| async move { kv2::read_metadata(&*c, mount, path).await })
            .await
        {
            Ok(m) => Ok(Some(EntryState::from_metadata(m))),
            Err(e) if e.kind == Kind::NotFound => Ok(None),
            Err(e) => Err(e.into_storage(ctx)),
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
        let Some(state) = self.state(path, ctx).await? else {
            return Ok(None);
        };
        ensure_holds(id, &format!("{}/{path}", self.config.mount_path), &state.tags)?;
        Ok(Some(state))
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
        let path = self.entry_path(id);
        let desired = desired(id, metadata);
        for round in 0..MAX_ROUNDS {
            if round > 0 {
                back_off(round).await;
            }
            let state = self.ours(id, &path, Operation::Store).await?;
            // Every write names the version checked as ours with cas (0: no entry), so an
            // entry deleted or replaced meanwhile (ours or foreign) is never written over:
            // a write after a concurrent destroy would recreate it without our marker.
            let (cas, current_tags) = match (&state, precondition) {
                (Some(s), Precondition::Absent) if s.live => return Err(precondition.conflict(PROVIDER, id)),
                (Some(s), Precondition::Revision(r)) if !s.live || *r != s.revision => {
                    return Err(precondition.conflict(PROVIDER, id));
                }
                (None, Precondition::Revision(_)) => return Err(precondition.conflict(PROVIDER, id)),
                (Some(s), _) => (s.current, Some(&s.tags)),
                (None, _) => (0, None),
            };
            let tags = match current_tags {
                // A new entry carries our marker before it holds any data.
                None => {
                    self.put_tags(id, &path, &desired, "create").await?;
                    None
                }
                Some(current) => {
                    let update = SCHEME.update(current, &desired);
                    (!update.is_empty()).then(|| {
                        let mut next = current.clone();
                        for k in &update.remove {
                            next.remove(k);
                        }
                        next.extend(update.set);
                        next
                    })
                }
            };
            let created = current_tags.is_none();
            match self.write(id, &path, record, cas, created).await? {
                Some(written) => {
                    if let Some(tags) = tags {
                        self.put_tags(id, &path, &tags, "update").await?;
                    } else if created {
                        // A delete between marking and writing removed the marker with the
                        // metadata; the version just written is ours: mark it again.
                        self.put_tags(id, &path, &desired, "create").await?;
                    }
                    return Ok(written);
                }
                None if precondition.is_conditional() => return Err(precondition.conflict(PROVIDER, id)),
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

impl Drop for HashiCorpVaultProvider {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.lock().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
    }
}

#[async_trait]
impl StorageProvider for HashiCorpVaultProvider {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::new(self.config.max_payload_bytes).with_conditional_store();
        match self.config.delete_mode {
            DeleteMode::Soft => caps.with_soft_delete(),
            DeleteMode::Destroy => caps,
        }
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let json = StoredRecord::encode(id, data, metadata, PROVIDER, self.config.max_payload_bytes)?;
        let record: serde_json::Value = serde_json::from_slice(&json).map_err(|e| {
            StorageError::backend(PROVIDER, Operation::Store, Some(id), "cannot re-read the record").with_source(e)
        })?;
        self.store_entry(id, &record, metadata, precondition).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let path = self.entry_path(id);
        let mount = self.config.mount_path.as_str();
        let p = path.as_str();
        let read = self
            .call(|c| async move {
                let request = ReadSecretRequest::builder()
                    .mount(mount)
                    .path(p)
                    .build()
                    .expect("mount and path set");
                vaultrs::api::exec_with_result(&*c, request).await
            })
            .await;
        let read = match read {
            Ok(r) => r,
            Err(e) => {
                return Err(e.into_storage(Context {
                    operation: Operation::Retrieve,
                    id: Some(id),
                    path: &self.api_path("data", &path),
                    capability: "read",
                }));
            }
        };
        let location = format!("{mount}/{path}");
        let tags = from_vault(read.metadata.custom_metadata);
        ensure_holds(id, &location, &tags)?;
        let bytes = serde_json::to_vec(&read.data).map_err(|e| {
            StorageError::backend(PROVIDER, Operation::Retrieve, Some(id), "cannot re-encode the entry").with_source(e)
        })?;
        let record = StoredRecord::from_json(&bytes, PROVIDER, &location, Some(id))?;
        Ok(Stored {
            data: record.encrypted_data,
            metadata: record.metadata,
            revision: revision(read.metadata.version, &read.metadata.created_time),
        })
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        let path = self.entry_path(id);
        let Some(state) = self.ours(id, &path, Operation::Delete).await? else {
            return Ok(());
        };
        let mount = self.config.mount_path.as_str();
        let p = path.as_str();
        let (result, api) = match self.config.delete_mode {
            DeleteMode::Destroy => (
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
            Err(e) if e.kind == Kind::NotFound => Ok(()),
            Err(e) => Err(e.into_storage(Context {
                operation: Operation::Delete,
                id: Some(id),
                path: &self.api_path(api, &path),
                capability: "delete",
            })),
        }
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let mount = self.config.mount_path.as_str();
        let prefix = self.config.path_prefix.as_str();
        let listed = self.call(|c| async move { kv2::list(&*c, mount, prefix).await }).await;
        let keys = match listed {
            Ok(keys) => keys,
            Err(e) if e.kind == Kind::NotFound => return Ok(Vec::new()),
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
                let path = self.entry_path(&id);
                let meta_path = self.api_path("metadata", &path);
                let ctx = Context {
                    operation: Operation::List,
                    id: Some(&id),
                    path: &meta_path,
                    capability: "read",
                };
                let state = self.state(&path, ctx).await?;
                Ok::<_, StorageError>(
                    state
                        .filter(|s| {
                            s.live && SCHEME.matches(filter, &id, &s.tags) && ensure_holds(&id, "", &s.tags).is_ok()
                        })
                        .map(|_| id),
                )
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
        let path = self.entry_path(id);
        Ok(self.ours(id, &path, Operation::Exists).await?.is_some_and(|s| s.live))
    }

    /// A `LIST` of the prefix (an empty folder is fine): proves the address, TLS, the
    /// token and the `list` capability.
    async fn check(&self) -> Result<(), StorageError> {
        let mount = self.config.mount_path.as_str();
        let prefix = self.config.path_prefix.as_str();
        match self.call(|c| async move { kv2::list(&*c, mount, prefix).await }).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == Kind::NotFound => Ok(()),
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
    async fn unreachable(prefix: &str) -> HashiCorpVaultProvider {
        HashiCorpVaultProvider::new(VaultConfig {
            mount_path: "kv".into(),
            path_prefix: prefix.into(),
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
        assert_eq!(p.entry_path(&id), "team/app/Api_Key-2");
        assert_eq!(p.api_path("data", &p.entry_path(&id)), "kv/data/team/app/Api_Key-2");
        assert_eq!(p.api_path("metadata", "team/app"), "kv/metadata/team/app");
        let other: CredentialId = "api_key-2".parse().unwrap();
        assert_ne!(p.entry_path(&id), p.entry_path(&other), "case is kept");
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
