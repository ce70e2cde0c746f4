//! [`LocalStorageProvider`]: the [`StorageProvider`] over a directory.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nebula_credential_core::{
    Capabilities, ConfigError, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation,
    Precondition, ProviderConfig, RecordEnvelope, Revision, StorageError, StorageProvider, Stored, Timeouts,
    async_trait, layers,
};
use serde::Deserialize;

use crate::PROVIDER;
use crate::cache::{MetadataCache, Pass, Stamp};
use crate::config::LocalStorageConfig;
use crate::fs::{Commit, Dir, FsError, InlineReads, create_private_dir, probe_writable, read_stamped};
use crate::naming::{file_name, parse_file_name};

/// Longest time kept free before an operation's deadline: a write commits only while
/// at least this much (or a quarter of its time, if less) is left, so the rename and
/// directory fsync that follow finish before the caller's deadline.
const MAX_COMMIT_MARGIN: Duration = Duration::from_millis(250);

/// Stores each credential as one JSON file ([`RecordEnvelope`]) in a directory.
///
/// Writes are atomic and durable (temporary file, fsync, rename, directory fsync),
/// writers of one credential exclude each other across threads and processes with an
/// advisory lock, and every blocking call runs on tokio's blocking pool — except short
/// reads of a directory on a local disk, which may run on the calling thread (see
/// `InlineReads` in the crate's `fs` module and the README).
///
/// The revision of a record is read from its file's `stat` (modification time, size,
/// inode, change time); every store stamps the new file with a modification time after
/// that of every earlier version, so the revision changes on every store. With locking
/// on, [`store_if`](StorageProvider::store_if) is atomic: the revision is compared under
/// the credential's lock. A lock is waited
/// for only until the operation's deadline (the [`Timeout`](layers::Timeout) layer's,
/// else this provider's own [`Timeouts`]), and a write that missed it, or whose caller
/// stopped waiting, never lands afterwards.
///
/// ```
/// use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};
/// use nebula_credential_core::StorageProvider;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("nebula-doc-{}", std::process::id()));
/// let provider = LocalStorageProvider::new(LocalStorageConfig::new(&dir)).await?;
/// assert_eq!(provider.provider_name(), "local");
/// assert!(provider.capabilities().conditional_store);
/// # std::fs::remove_dir_all(dir).ok();
/// # Ok::<(), nebula_credential_core::StorageError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LocalStorageProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: Dir,
    extension: String,
    limit: usize,
    timeouts: Timeouts,
    cache: MetadataCache,
    /// Opened with [`LocalStorageProvider::open_read_only`]: writes are refused.
    read_only: bool,
    inline: InlineReads,
}

/// Only the metadata of a record, so `list` does not decode ciphertexts.
#[derive(Deserialize)]
struct MetadataOnly {
    metadata: CredentialMetadata,
}

/// A write running on the blocking pool: what its errors name, and its commit point.
struct WriteOp {
    operation: Operation,
    id: CredentialId,
    /// Time the operation was given, for its `Timeout` error.
    budget: Duration,
    commit: Arc<Commit>,
}

impl WriteOp {
    fn error(&self, path: &Path, e: FsError) -> StorageError {
        match e {
            FsError::Io(e) => io_error(self.operation, Some(&self.id), path, e),
            FsError::Expired => StorageError::timeout(PROVIDER, self.operation, Some(&self.id), self.budget),
        }
    }
}

/// Abandons a write when the task waiting for it goes away (a timeout dropped it), so
/// the blocking thread does not commit it afterwards.
struct AbandonOnDrop(Arc<Commit>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

impl LocalStorageProvider {
    /// Validates `config`, then prepares the directory: creates it (mode 0700 on Unix)
    /// when missing and `create_dir` is on, checks it is a writable directory, and
    /// removes temporary files left by crashed writers (those untouched for an hour).
    /// Fails fast with a [`StorageError::Config`] naming `base_path` when the directory
    /// is unusable.
    pub async fn new(config: LocalStorageConfig) -> Result<Self, StorageError> {
        Self::open(config, false).await
    }

    /// Validates `config` and opens the directory for reading only: nothing is created
    /// (whatever `create_dir` says), no probe file is written and no temporary file is
    /// removed, so a read-only directory or mount, or a backup being audited, opens and
    /// stays exactly as it was. Fails with a [`StorageError::Config`] naming `base_path`
    /// when it is missing or not a directory. Every write (`store`, `store_if`,
    /// `delete`) fails with [`StorageError::PermissionDenied`] saying the provider was
    /// opened read-only.
    ///
    /// ```
    /// use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};
    /// use nebula_credential_core::{CredentialFilter, StorageProvider};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let dir = std::env::temp_dir();
    /// let provider = LocalStorageProvider::open_read_only(LocalStorageConfig::new(&dir)).await?;
    /// provider.list(&CredentialFilter::new()).await?;
    /// # Ok::<(), nebula_credential_core::StorageError>(())
    /// # }).unwrap();
    /// ```
    pub async fn open_read_only(config: LocalStorageConfig) -> Result<Self, StorageError> {
        Self::open(config, true).await
    }

    async fn open(config: LocalStorageConfig, read_only: bool) -> Result<Self, StorageError> {
        config.validate()?;
        let inner = Inner {
            dir: Dir {
                path: config.base_path.clone(),
                locking: config.enable_locking,
            },
            extension: config.file_extension.clone(),
            limit: config.max_payload_bytes,
            timeouts: config.timeouts,
            cache: MetadataCache::default(),
            read_only,
            inline: InlineReads::default(),
        };
        let create_dir = config.create_dir && !read_only;
        let inner = tokio::task::spawn_blocking(move || inner.prepare(create_dir).map(|()| inner))
            .await
            .map_err(|e| join_error(Operation::List, e))??;
        Ok(LocalStorageProvider { inner: Arc::new(inner) })
    }

    /// The directory holding the credential files.
    pub fn base_path(&self) -> &Path {
        &self.inner.dir.path
    }

    /// The file that holds (or would hold) `id`.
    pub fn file_path(&self, id: &CredentialId) -> PathBuf {
        self.inner.path_of(id)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        operation: Operation,
        f: impl FnOnce(&Inner) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let inner = self.inner.clone();
        // Logs of the blocking work go where the caller's go, inside the caller's span.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            tracing::dispatcher::with_default(&dispatch, || span.in_scope(|| f(&inner)))
        })
        .await
        .map_err(|e| join_error(operation, e))?
    }

    /// Runs a short read: on the calling thread when [`InlineReads`] allows, else on the
    /// blocking pool (which decides, on the first read, whether the directory allows it).
    async fn read<T: Send + 'static>(
        &self,
        operation: Operation,
        f: impl FnOnce(&Inner) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        if let Some(_slot) = self.inner.inline.enter() {
            return f(&self.inner);
        }
        if self.inner.inline.decided() {
            return self.blocking(operation, f).await;
        }
        self.blocking(operation, move |inner| {
            inner.inline.decide(&inner.dir.path);
            f(inner)
        })
        .await
    }

    /// Runs a write of `id` on the blocking pool with a commit point before the
    /// operation's deadline; dropping the returned future abandons the write.
    async fn write<T: Send + 'static>(
        &self,
        operation: Operation,
        id: &CredentialId,
        f: impl FnOnce(&Inner, &WriteOp) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let now = Instant::now();
        let deadline = layers::deadline()
            .map(|d| d.into_std())
            .unwrap_or_else(|| now + self.inner.timeouts.for_operation(operation));
        let budget = deadline.saturating_duration_since(now);
        let margin = (budget / 4).min(MAX_COMMIT_MARGIN);
        let op = WriteOp {
            operation,
            id: id.clone(),
            budget,
            commit: Arc::new(Commit::new(deadline - margin)),
        };
        let _abandon = AbandonOnDrop(op.commit.clone());
        self.blocking(operation, move |inner| f(inner, &op)).await
    }
}

impl Inner {
    fn path_of(&self, id: &CredentialId) -> PathBuf {
        self.dir.path.join(file_name(id, &self.extension))
    }

    fn prepare(&self, create_dir: bool) -> Result<(), StorageError> {
        let path = &self.dir.path;
        let config_err = |rule: String| StorageError::Config(ConfigError::new(PROVIDER, "base_path", rule));
        match std::fs::metadata(path) {
            Ok(m) if !m.is_dir() => {
                return Err(config_err(format!("{} exists but is not a directory", path.display())));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && create_dir => {
                create_private_dir(path).map_err(|e| prepare_error(path, "cannot be created", e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.read_only => {
                return Err(config_err(format!(
                    "{} does not exist, so nothing is stored there yet (opened read-only, it is not \
                     created); check base_path, or store a credential first",
                    path.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(config_err(format!(
                    "{} does not exist; create it or set create_dir = true",
                    path.display()
                )));
            }
            Err(e) => return Err(prepare_error(path, "cannot be read", e)),
        }
        if self.read_only {
            return Ok(());
        }
        probe_writable(path).map_err(|e| prepare_error(path, "is not writable by this process", e))?;
        self.dir
            .remove_stale_temps()
            .map_err(|e| io_error(Operation::List, None, path, e))?;
        Ok(())
    }

    /// Refuses a write through a provider opened read-only.
    fn writable(&self, operation: Operation, id: &CredentialId) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::permission_denied(
                PROVIDER,
                operation,
                Some(id),
                format!(
                    "{} was opened read-only (open_read_only); open it with open() or \
                     LocalStorageProvider::new to write",
                    self.dir.path.display()
                ),
            ));
        }
        Ok(())
    }

    fn store(&self, op: &WriteOp, bytes: &[u8], precondition: &Precondition) -> Result<Revision, StorageError> {
        let name = file_name(&op.id, &self.extension);
        let path = self.dir.path.join(&name);
        let lock = self.dir.lock(&name, &op.commit).map_err(|e| op.error(&path, e))?;
        let current = self.dir.stamp(&name).map_err(|e| op.error(&path, e.into()))?;
        if precondition.is_conditional() && !precondition.holds(current.as_ref().map(Stamp::revision).as_ref()) {
            return Err(precondition.conflict(PROVIDER, &op.id));
        }
        // The new version is stamped after the current one and every deleted one.
        let high_water = lock.high_water().map_err(|e| op.error(&path, e.into()))?;
        let after = current.and_then(|s| s.modified()).max(high_water);
        let stamp = self
            .dir
            .write_atomic(&name, bytes, after, &op.commit)
            .map_err(|e| op.error(&path, e))?;
        Ok(stamp.revision())
    }

    fn delete(&self, op: &WriteOp) -> Result<(), StorageError> {
        let name = file_name(&op.id, &self.extension);
        let path = self.dir.path.join(&name);
        let lock = self.dir.lock(&name, &op.commit).map_err(|e| op.error(&path, e))?;
        // A version written after this delete is stamped after the deleted one.
        let current = self.dir.stamp(&name).map_err(|e| op.error(&path, e.into()))?;
        if let Some(modified) = current.and_then(|s| s.modified()) {
            lock.raise_high_water(modified).map_err(|e| op.error(&path, e.into()))?;
        }
        self.dir.remove(&name, &op.commit).map_err(|e| op.error(&path, e))
    }

    fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let path = self.path_of(id);
        let (bytes, stamp) = read_stamped(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StorageError::not_found(PROVIDER, id),
            _ => io_error(Operation::Retrieve, Some(id), &path, e),
        })?;
        // The location only appears in errors: borrowed, not formatted, when it is UTF-8.
        let location = path
            .to_str()
            .map_or_else(|| Cow::Owned(path.display().to_string()), Cow::Borrowed);
        let record = RecordEnvelope::from_json(&bytes, PROVIDER, &location, Some(id))?;
        Ok(Stored {
            data: record.encrypted_data,
            metadata: record.metadata,
            revision: stamp.revision(),
        })
    }

    /// The revision from the file's `stat` alone.
    fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        let path = self.path_of(id);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Stamp::of(&m).revision()),
            Ok(_) => Err(io_error(
                Operation::Revision,
                Some(id),
                &path,
                io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StorageError::not_found(PROVIDER, id)),
            Err(e) => Err(io_error(Operation::Revision, Some(id), &path, e)),
        }
    }

    fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let dir = &self.dir.path;
        let entries = std::fs::read_dir(dir).map_err(|e| io_error(Operation::List, None, dir, e))?;
        let mut ids = Vec::new();
        let mut cache = filter.needs_metadata().then(|| self.cache.pass());
        for entry in entries {
            let entry = entry.map_err(|e| io_error(Operation::List, None, dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(id) = parse_file_name(&name, &self.extension) else {
                continue;
            };
            if !filter.matches_id(&id) {
                if let Some(cache) = &mut cache {
                    cache.keep(&name);
                }
                continue;
            }
            if let Some(cache) = &mut cache {
                match matches_metadata(cache, &entry, &name, |m| filter.matches(&id, m)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(reason) => {
                        tracing::warn!(
                            provider = PROVIDER,
                            file = %entry.path().display(),
                            %reason,
                            "skipping an unreadable credential file while listing"
                        );
                        continue;
                    }
                }
            }
            ids.push(id);
        }
        if let Some(cache) = cache {
            cache.finish();
        }
        ids.sort();
        Ok(ids)
    }
}

/// Whether the metadata of a directory entry passes `test`, read from the cache while
/// the file is unchanged. A file that vanished meanwhile does not pass. The reason a
/// file cannot be read names position and kind only, never its content.
fn matches_metadata(
    cache: &mut Pass<'_>,
    entry: &std::fs::DirEntry,
    name: &str,
    test: impl FnOnce(&CredentialMetadata) -> bool,
) -> Result<bool, String> {
    let stamp = match entry.metadata() {
        Ok(m) => Stamp::of(&m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    let load = || {
        let path = entry.path();
        // Never a plain read: a FIFO in the directory would hold the listing forever.
        let (bytes, _) = read_stamped(&path).map_err(|e| e.to_string())?;
        serde_json::from_slice::<MetadataOnly>(&bytes)
            .map(|m| m.metadata)
            .map_err(
                |_| match RecordEnvelope::from_json(&bytes, PROVIDER, &path.display().to_string(), None) {
                    Err(e) => e.to_string(),
                    Ok(_) => "its metadata cannot be read".to_string(),
                },
            )
    };
    match cache.get_or_load(name, stamp, load) {
        Ok(metadata) => Ok(test(metadata)),
        Err(_) if !entry.path().exists() => Ok(false),
        Err(reason) => Err(reason),
    }
}

fn join_error(operation: Operation, e: tokio::task::JoinError) -> StorageError {
    StorageError::backend(
        PROVIDER,
        operation,
        None,
        "the blocking file-system task did not complete; this is a bug, please report it",
    )
    .with_code(None, Some("TaskFailed"))
    .with_source(e)
}

/// The mapping table from I/O errors to [`StorageError`] kinds (by `io::ErrorKind`).
/// Why `base_path` cannot be used: a permission the process lacks, or a read-only file
/// system, is `PermissionDenied` (what to grant or change: the same cause as a directory
/// without write permission); anything else is a configuration error naming the path.
fn prepare_error(path: &Path, what: &str, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::PermissionDenied {
        return io_error(Operation::Check, None, path, e);
    }
    if e.kind() == io::ErrorKind::ReadOnlyFilesystem {
        return StorageError::permission_denied(
            PROVIDER,
            Operation::Check,
            None,
            format!(
                "{} is on a read-only file system: it can be opened read-only (open_read_only) to read; \
                 to write, choose a writable base_path or remount it read-write",
                path.display()
            ),
        )
        .with_source(e);
    }
    let rule = format!("{} {what} ({e}); fix its owner or permissions", path.display());
    StorageError::Config(ConfigError::new(PROVIDER, "base_path", rule))
}

fn io_error(operation: Operation, id: Option<&CredentialId>, path: &Path, e: io::Error) -> StorageError {
    use io::ErrorKind as K;
    let where_ = path.display();
    let backend = |code: &str, message: String, e: io::Error| {
        StorageError::backend(PROVIDER, operation, id, message)
            .with_code(None, Some(code))
            .with_source(e)
    };
    match e.kind() {
        K::PermissionDenied => StorageError::permission_denied(
            PROVIDER,
            operation,
            id,
            format!("the user running this process needs read and write access to {where_} and its directory"),
        )
        .with_source(e),
        K::Interrupted | K::WouldBlock | K::TimedOut | K::ResourceBusy => {
            StorageError::unavailable(PROVIDER, operation, id).with_source(e)
        }
        K::StorageFull | K::QuotaExceeded => backend(
            "StorageFull",
            format!("no space left for {where_}; free disk space or raise the quota"),
            e,
        ),
        K::ReadOnlyFilesystem => backend(
            "ReadOnlyFilesystem",
            format!("{where_} is on a read-only file system; choose a writable base_path"),
            e,
        ),
        K::NotFound => backend(
            "NotFound",
            format!("{where_} is missing; was the credential directory removed? Restart to recreate it"),
            e,
        ),
        kind => backend(&format!("{kind:?}"), format!("I/O error on {where_}"), e),
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl StorageProvider for LocalStorageProvider {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    /// Conditional stores only with `enable_locking`: without the lock nothing makes
    /// the comparison and the rename one step.
    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::new(self.inner.limit);
        if self.inner.dir.locking {
            caps.with_conditional_store()
        } else {
            caps
        }
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        self.inner.writable(Operation::Store, id)?;
        if precondition.is_conditional() && !self.inner.dir.locking {
            return Err(StorageError::Unsupported {
                provider: PROVIDER,
                what: "conditional stores with enable_locking = false",
                advice: "turn enable_locking on, or store without a precondition",
            });
        }
        let bytes = RecordEnvelope::encode(id, data, metadata, PROVIDER, self.inner.limit)?;
        let precondition = precondition.clone();
        self.write(Operation::Store, id, move |inner, op| {
            inner.store(op, &bytes, &precondition)
        })
        .await
    }

    async fn store(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
    ) -> Result<Revision, StorageError> {
        self.store_if(id, data, metadata, &Precondition::Overwrite).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let id = id.clone();
        self.read(Operation::Retrieve, move |inner| inner.retrieve(&id)).await
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        self.inner.writable(Operation::Delete, id)?;
        self.write(Operation::Delete, id, |inner, op| inner.delete(op)).await
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let filter = filter.clone();
        self.blocking(Operation::List, move |inner| inner.list(&filter)).await
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        let id = id.clone();
        self.read(Operation::Exists, move |inner| {
            let path = inner.path_of(&id);
            path.try_exists()
                .map_err(|e| io_error(Operation::Exists, Some(&id), &path, e))
        })
        .await
    }

    /// One `stat` of the file: the revision never needs its content.
    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        let id = id.clone();
        self.read(Operation::Revision, move |inner| inner.revision(&id)).await
    }

    /// Reads the directory (one entry): proves it exists and is readable.
    async fn check(&self) -> Result<(), StorageError> {
        self.blocking(Operation::Check, |inner| {
            let path = &inner.dir.path;
            let mut entries = std::fs::read_dir(path).map_err(|e| io_error(Operation::Check, None, path, e))?;
            match entries.next() {
                Some(Err(e)) => Err(io_error(Operation::Check, None, path, e)),
                _ => Ok(()),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_base_path_is_permission_denied_only_when_a_permission_is_missing() {
        let p = Path::new("/srv/creds");
        let denied = prepare_error(
            p,
            "is not writable by this process",
            io::ErrorKind::PermissionDenied.into(),
        );
        assert_eq!(
            denied.kind(),
            nebula_credential_core::ErrorKind::PermissionDenied,
            "{denied}"
        );
        assert!(denied.to_string().contains("/srv/creds"), "{denied}");
        let read_only = prepare_error(
            p,
            "is not writable by this process",
            io::ErrorKind::ReadOnlyFilesystem.into(),
        );
        assert_eq!(
            read_only.kind(),
            nebula_credential_core::ErrorKind::PermissionDenied,
            "{read_only}"
        );
        assert!(read_only.to_string().contains("read-only file system"), "{read_only}");
        let other = prepare_error(p, "cannot be read", io::ErrorKind::InvalidData.into());
        assert!(matches!(other, StorageError::Config(_)), "{other}");
        assert!(other.to_string().contains("base_path"), "{other}");
    }

    #[test]
    fn io_errors_map_by_kind() {
        let id: CredentialId = "k".parse().unwrap();
        let p = Path::new("/x/k.enc.json");
        let cases = [
            (io::ErrorKind::PermissionDenied, "permission_denied", false),
            (io::ErrorKind::Interrupted, "unavailable", true),
            (io::ErrorKind::TimedOut, "unavailable", true),
            (io::ErrorKind::StorageFull, "backend", false),
            (io::ErrorKind::ReadOnlyFilesystem, "backend", false),
            (io::ErrorKind::InvalidData, "backend", false),
        ];
        for (kind, expected, retryable) in cases {
            let e = io_error(Operation::Store, Some(&id), p, io::Error::from(kind));
            assert_eq!(e.kind().as_str(), expected, "{kind:?}");
            assert_eq!(e.is_retryable(), retryable, "{kind:?}");
            assert!(e.to_string().contains("k"), "{e}");
        }
        let e = io_error(
            Operation::Store,
            Some(&id),
            p,
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(e.to_string().contains("free disk space"), "{e}");
        let e = io_error(
            Operation::Store,
            Some(&id),
            p,
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(e.to_string().contains("read and write access to /x/k.enc.json"), "{e}");
    }
}
