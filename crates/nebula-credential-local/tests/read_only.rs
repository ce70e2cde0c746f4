//! `LocalStorageProvider::open_read_only` and `build_read_only`: opening writes, creates
//! and removes nothing (proved by the directory's entries and modification time, which a
//! probe file created and removed would change even for root), reads work, and every
//! write is refused as `PermissionDenied`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use nebula_credential_core::conformance::{data, id, meta};
use nebula_credential_core::{CredentialFilter, ErrorKind, ProviderConfig, StorageError, StorageProvider};
use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};

/// Every entry of `dir` with its modification time, plus the directory's own.
fn snapshot(dir: &Path) -> (SystemTime, Vec<(String, SystemTime)>) {
    let mut entries: Vec<(String, SystemTime)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    entries.sort();
    (std::fs::metadata(dir).unwrap().modified().unwrap(), entries)
}

#[tokio::test]
async fn opening_read_only_changes_nothing_and_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let config = LocalStorageConfig::new(&dir);
    let writer = LocalStorageProvider::new(config.clone()).await.unwrap();
    writer.store(&id("kept"), &data(1), &meta()).await.unwrap();
    // A temporary file old enough that a writable open would remove it.
    let stale = dir.join(".kept.enc.json.abc123.tmp");
    std::fs::write(&stale, b"partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3 * 3600))
        .unwrap();
    // Any entry created and removed (a probe) moves the directory's mtime past this.
    let past = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::open(&dir).unwrap().set_modified(past).unwrap();
    let before = snapshot(&dir);

    let reader = config.build_read_only().await.unwrap();
    assert_eq!(reader.list(&CredentialFilter::new()).await.unwrap(), [id("kept")]);
    assert_eq!(reader.retrieve(&id("kept")).await.unwrap().data, data(1));
    assert!(reader.exists(&id("kept")).await.unwrap());
    reader.check().await.unwrap();
    for write in [
        reader.store(&id("new"), &data(2), &meta()).await.map(drop),
        reader.delete(&id("kept")).await,
    ] {
        let e = write.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("read-only"), "{e}");
    }
    assert_eq!(
        snapshot(&dir),
        before,
        "a read-only open or refused write touched the directory"
    );
    assert!(stale.exists());

    // A writable open does remove the stale file: the check above can fail.
    drop(LocalStorageProvider::new(config).await.unwrap());
    assert!(!stale.exists());
}

#[tokio::test]
async fn a_missing_directory_is_not_created_when_opened_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-created");
    let e = LocalStorageProvider::open_read_only(LocalStorageConfig::new(&dir))
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::Config(_)), "{e}");
    assert!(
        e.to_string().contains("does not exist") && e.to_string().contains("read-only"),
        "{e}"
    );
    assert!(!dir.exists());
}

/// Without root, a directory without write permission: the writable open fails, the
/// read-only one reads. (Root ignores the mode bits; the test above covers it too.)
#[cfg(unix)]
#[tokio::test]
async fn a_directory_without_write_permission_opens_read_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let config = LocalStorageConfig::new(&dir);
    LocalStorageProvider::new(config.clone())
        .await
        .unwrap()
        .store(&id("kept"), &data(1), &meta())
        .await
        .unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let reader = LocalStorageProvider::open_read_only(config.clone()).await;
    let writable = LocalStorageProvider::new(config).await;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let reader = reader.unwrap();
    assert_eq!(reader.list(&CredentialFilter::new()).await.unwrap(), [id("kept")]);
    if !is_root() {
        let e = writable.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    }
}

fn is_root() -> bool {
    // The owner of a file this process creates is its effective user.
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}
