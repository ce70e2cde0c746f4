//! [`LocalStorageProvider`]: the [`StorageProvider`] over a directory.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nebula_credential_core::{
    ConfigError, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation, ProviderConfig,
    ProviderLimits, StorageError, StorageProvider, StoredRecord, async_trait,
};
use serde::Deserialize;

use crate::PROVIDER;
use crate::cache::{MetadataCache, Pass, Stamp};
use crate::config::LocalStorageConfig;
use crate::fs::{Dir, create_private_dir, probe_writable};
use crate::naming::{file_name, parse_file_name};

/// Stores each credential as one JSON file ([`StoredRecord`]) in a directory.
///
/// Writes are atomic and durable (temporary file, fsync, rename, directory fsync),
/// writers of one credential exclude each other across threads and processes with an
/// advisory lock, and every blocking call runs on tokio's blocking pool.
///
/// ```
/// use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};
/// use nebula_credential_core::StorageProvider;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("nebula-doc-{}", std::process::id()));
/// let provider = LocalStorageProvider::new(LocalStorageConfig::new(&dir)).await?;
/// assert_eq!(provider.provider_name(), "local");
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
    cache: MetadataCache,
}

/// Only the metadata of a record, so `list` does not decode ciphertexts.
#[derive(Deserialize)]
struct MetadataOnly {
    metadata: CredentialMetadata,
}

impl LocalStorageProvider {
    /// Validates `config`, then prepares the directory: creates it (mode 0700 on Unix)
    /// when missing and `create_dir` is on, checks it is a writable directory, and
    /// removes temporary files left by crashed writers. Fails fast with a
    /// [`StorageError::Config`] naming `base_path` when the directory is unusable.
    pub async fn new(config: LocalStorageConfig) -> Result<Self, StorageError> {
        config.validate()?;
        let inner = Inner {
            dir: Dir {
                path: config.base_path.clone(),
                locking: config.enable_locking,
            },
            extension: config.file_extension.clone(),
            limit: config.max_payload_bytes,
            cache: MetadataCache::default(),
        };
        let inner = tokio::task::spawn_blocking(move || inner.prepare(config.create_dir).map(|()| inner))
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
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| join_error(operation, e))?
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
                create_private_dir(path)
                    .map_err(|e| config_err(format!("{} cannot be created: {e}", path.display())))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(config_err(format!(
                    "{} does not exist; create it or set create_dir = true",
                    path.display()
                )));
            }
            Err(e) => return Err(config_err(format!("{} cannot be read: {e}", path.display()))),
        }
        probe_writable(path).map_err(|e| {
            config_err(format!(
                "{} is not writable by this process ({e}); fix its owner or permissions",
                path.display()
            ))
        })?;
        self.dir
            .remove_stale_temps()
            .map_err(|e| io_error(Operation::List, None, path, e))?;
        Ok(())
    }

    fn store(&self, id: &CredentialId, bytes: &[u8]) -> Result<(), StorageError> {
        let name = file_name(id, &self.extension);
        self.dir
            .write_atomic(&name, bytes)
            .map_err(|e| io_error(Operation::Store, Some(id), &self.dir.path.join(&name), e))
    }

    fn retrieve(&self, id: &CredentialId) -> Result<StoredRecord, StorageError> {
        let path = self.path_of(id);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound {
                provider: PROVIDER,
                id: id.clone(),
            },
            _ => io_error(Operation::Retrieve, Some(id), &path, e),
        })?;
        StoredRecord::from_json(&bytes, PROVIDER, &path.display().to_string(), Some(id))
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
                    cache.keep(name);
                }
                continue;
            }
            if let Some(cache) = &mut cache {
                match matches_metadata(cache, &entry, name, |m| filter.matches(&id, m)) {
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
/// the file is unchanged. A file that vanished meanwhile does not pass.
fn matches_metadata(
    cache: &mut Pass<'_>,
    entry: &std::fs::DirEntry,
    name: String,
    test: impl FnOnce(&CredentialMetadata) -> bool,
) -> Result<bool, String> {
    let stamp = match entry.metadata() {
        Ok(m) => Stamp::of(&m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    let load = || {
        let bytes = std::fs::read(entry.path()).map_err(|e| e.to_string())?;
        serde_json::from_slice::<MetadataOnly>(&bytes)
            .map(|m| m.metadata)
            .map_err(|e| format!("not a credential record ({e})"))
    };
    match cache.get_or_load(name, stamp, load) {
        Ok(metadata) => Ok(test(metadata)),
        Err(_) if !entry.path().exists() => Ok(false),
        Err(reason) => Err(reason),
    }
}

fn join_error(operation: Operation, e: tokio::task::JoinError) -> StorageError {
    StorageError::Backend {
        provider: PROVIDER,
        operation,
        id: None,
        status: None,
        code: Some("TaskFailed".into()),
        message: "the blocking file-system task did not complete; this is a bug, please report it".into(),
        source: Some(Box::new(e)),
    }
}

/// The mapping table from I/O errors to [`StorageError`] kinds (by `io::ErrorKind`).
fn io_error(operation: Operation, id: Option<&CredentialId>, path: &Path, e: io::Error) -> StorageError {
    use io::ErrorKind as K;
    let where_ = path.display();
    let backend = |code: &str, message: String, e: io::Error| StorageError::Backend {
        provider: PROVIDER,
        operation,
        id: id.cloned(),
        status: None,
        code: Some(code.into()),
        message,
        source: Some(Box::new(e)),
    };
    match e.kind() {
        K::PermissionDenied => StorageError::PermissionDenied {
            provider: PROVIDER,
            operation,
            id: id.cloned(),
            required: format!(
                "the user running this process needs read and write access to {where_} and its directory"
            ),
        },
        K::Interrupted | K::WouldBlock | K::TimedOut | K::ResourceBusy => StorageError::Unavailable {
            provider: PROVIDER,
            operation,
            id: id.cloned(),
            source: Some(Box::new(e)),
        },
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

    fn limits(&self) -> ProviderLimits {
        ProviderLimits::new(self.inner.limit)
    }

    async fn store(
        &self,
        id: &CredentialId,
        data: EncryptedData,
        metadata: CredentialMetadata,
    ) -> Result<(), StorageError> {
        let record = StoredRecord::new(id.clone(), data, metadata);
        let bytes = record.to_json(PROVIDER, self.inner.limit)?;
        let id = record.id;
        self.blocking(Operation::Store, move |inner| inner.store(&id, &bytes))
            .await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<(EncryptedData, CredentialMetadata), StorageError> {
        let id = id.clone();
        let record = self
            .blocking(Operation::Retrieve, move |inner| inner.retrieve(&id))
            .await?;
        Ok((record.encrypted_data, record.metadata))
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        let id = id.clone();
        self.blocking(Operation::Delete, move |inner| {
            let name = file_name(&id, &inner.extension);
            inner
                .dir
                .remove(&name)
                .map_err(|e| io_error(Operation::Delete, Some(&id), &inner.dir.path.join(&name), e))
        })
        .await
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let filter = filter.clone();
        self.blocking(Operation::List, move |inner| inner.list(&filter)).await
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        let id = id.clone();
        self.blocking(Operation::Exists, move |inner| {
            let path = inner.path_of(&id);
            path.try_exists()
                .map_err(|e| io_error(Operation::Exists, Some(&id), &path, e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(e.kind(), expected, "{kind:?}");
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
