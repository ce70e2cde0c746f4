//! Revisions read from a file's `stat`: new on every store, even of identical bytes
//! within one tick of the kernel clock on a reused inode, after a delete too, and equal
//! to what `retrieve` and `store` report; conditional stores compare them atomically.
//! Reads give the same answers on the calling thread and on the blocking pool.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nebula_credential_core::conformance::{data, id, meta};
use nebula_credential_core::{ErrorKind, Precondition, StorageError, StorageProvider};
use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};

async fn open(dir: &Path) -> LocalStorageProvider {
    LocalStorageProvider::new(LocalStorageConfig::new(dir))
        .await
        .expect("open")
}

fn modified(p: &LocalStorageProvider, k: &str) -> SystemTime {
    std::fs::metadata(p.file_path(&id(k))).unwrap().modified().unwrap()
}

/// Identical bytes stored back to back: same size, often the same inode again (the
/// file system hands the one the previous rename freed back), within one tick of the
/// coarse clock the kernel stamps files with. A digest of the bytes would repeat, and
/// so would the kernel's own stamp; the revision must not.
#[tokio::test]
async fn identical_stores_in_quick_succession_get_distinct_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    let k = id("same_bytes");
    let mut seen = HashSet::new();
    #[cfg(unix)]
    let mut inodes = Vec::new();
    for _ in 0..200 {
        let written = p.store(&k, &data(7), &meta()).await.unwrap();
        assert_eq!(p.revision(&k).await.unwrap(), written, "revision reports the store's");
        assert_eq!(
            p.retrieve(&k).await.unwrap().revision,
            written,
            "retrieve reports the store's"
        );
        assert!(seen.insert(written.clone()), "revision {written} repeated");
        #[cfg(unix)]
        inodes.push(std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(p.file_path(&k)).unwrap(),
        ));
    }
    #[cfg(unix)]
    {
        let distinct: HashSet<_> = inodes.iter().collect();
        println!("{} stores used {} distinct inodes", inodes.len(), distinct.len());
    }
}

/// A store at a revision that an identical rewrite (or an A-B-A sequence) replaced
/// is a conflict: the revision names a version, not a content.
#[tokio::test]
async fn a_revision_replaced_by_identical_bytes_is_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    let k = id("aba");
    let first = p.store(&k, &data(1), &meta()).await.unwrap();
    p.store(&k, &data(1), &meta()).await.unwrap();
    let conflict = p
        .store_if(&k, &data(2), &meta(), &Precondition::Revision(first.clone()))
        .await
        .unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::Conflict, "{conflict}");
    p.store(&k, &data(2), &meta()).await.unwrap();
    let back = p.store(&k, &data(1), &meta()).await.unwrap();
    assert_ne!(back, first);
    let conflict = p
        .store_if(&k, &data(3), &meta(), &Precondition::Revision(first))
        .await
        .unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::Conflict, "{conflict}");
    let current = p.store_if(&k, &data(3), &meta(), &Precondition::Revision(back)).await;
    assert!(current.is_ok(), "{current:?}");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(3));
}

/// The version written after a delete is stamped after the deleted one even when that
/// one's time is ahead of the clock (written while the clock was ahead, then stepped
/// back), so a revision from before the delete never names the new version.
#[tokio::test]
async fn a_version_written_after_a_delete_is_stamped_after_the_deleted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    let k = id("reborn");
    p.store(&k, &data(1), &meta()).await.unwrap();
    let ahead = SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(p.file_path(&k))
        .unwrap()
        .set_modified(ahead)
        .unwrap();
    let before = p.revision(&k).await.unwrap();
    p.delete(&k).await.unwrap();
    let after = p.store(&k, &data(1), &meta()).await.unwrap();
    assert!(modified(&p, "reborn") > ahead, "stamped before the deleted version");
    assert_ne!(after, before);
    let stale = p
        .store_if(&k, &data(2), &meta(), &Precondition::Revision(before))
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict, "{stale}");
    // And after an overwrite too: each version is stamped after the one it replaces.
    let next = p.store(&k, &data(2), &meta()).await.unwrap();
    assert!(modified(&p, "reborn") > ahead);
    assert_ne!(next, after);
}

/// `revision` reads the file's `stat`, never its content: it answers for a file whose
/// content `retrieve` refuses, and it changes when that file is replaced.
#[tokio::test]
async fn revision_reads_no_content() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    let k = id("garbled");
    let written = p.store(&k, &data(1), &meta()).await.unwrap();
    let path = p.file_path(&k);
    let garbage = tmp.path().join("garbage");
    std::fs::write(&garbage, b"not a record").unwrap();
    std::fs::rename(&garbage, &path).unwrap();
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::Corrupted { .. })));
    let replaced = p.revision(&k).await.unwrap();
    assert_ne!(replaced, written);
    let missing = p.revision(&id("never_stored")).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

/// On a multi-threaded runtime reads may run on the calling thread; many at once take
/// the blocking pool instead. Both give the same answers as the writes report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_agree_inline_and_on_the_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Arc::new(open(tmp.path()).await);
    let mut written = Vec::new();
    for i in 0..16u8 {
        let k = id(&format!("k{i}"));
        written.push((k.clone(), p.store(&k, &data(i), &meta()).await.unwrap()));
    }
    for round in 0..20 {
        let mut tasks = tokio::task::JoinSet::new();
        for (k, revision) in written.clone() {
            let p = p.clone();
            tasks.spawn(async move {
                let stored = p.retrieve(&k).await.unwrap();
                assert_eq!(stored.revision, revision, "round {round}");
                assert_eq!(p.revision(&k).await.unwrap(), revision);
                assert!(p.exists(&k).await.unwrap());
                assert!(!p.exists(&id("absent")).await.unwrap());
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }
}

async fn open_unlocked(dir: &Path) -> LocalStorageProvider {
    let mut config = LocalStorageConfig::new(dir);
    config.enable_locking = false;
    LocalStorageProvider::new(config).await.expect("open")
}

/// Without locking there is no high-water mark: a version whose time is ahead of the
/// clock is still overwritten by one stamped after it, and identical stores in a tight
/// loop, deletes between them, still get distinct revisions (conditional stores need
/// locking, so only the revisions are compared).
#[tokio::test]
async fn without_locking_revisions_still_change_on_every_store_and_after_a_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open_unlocked(tmp.path()).await;
    let k = id("unlocked");
    let mut seen = HashSet::new();
    for round in 0..100 {
        let written = p.store(&k, &data(7), &meta()).await.unwrap();
        assert!(
            seen.insert(written.clone()),
            "revision {written} repeated in round {round}"
        );
        if round % 3 == 0 {
            p.delete(&k).await.unwrap();
        }
    }
    p.store(&k, &data(7), &meta()).await.unwrap();
    let ahead = SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(p.file_path(&k))
        .unwrap()
        .set_modified(ahead)
        .unwrap();
    let before = p.revision(&k).await.unwrap();
    let after = p.store(&k, &data(7), &meta()).await.unwrap();
    assert!(
        modified(&p, "unlocked") > ahead,
        "stamped before the version it replaced"
    );
    assert_ne!(after, before);
    assert_eq!(p.revision(&k).await.unwrap(), after);
}

/// Another tool rewriting the file in place with bytes of the same size (same inode, same
/// length, the kernel's own coarse stamp): the revision changes, and a conditional store
/// at the old one is a conflict.
#[tokio::test]
async fn an_in_place_rewrite_of_the_same_size_by_another_tool_changes_the_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    let k = id("edited");
    for round in 0..50 {
        let written = p.store(&k, &data(1), &meta()).await.unwrap();
        let path = p.file_path(&k);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let now = p.revision(&k).await.unwrap();
        assert_ne!(
            now, written,
            "round {round}: an outside rewrite hid behind the old revision"
        );
        assert_eq!(p.retrieve(&k).await.unwrap().revision, now);
        let stale = p
            .store_if(&k, &data(2), &meta(), &Precondition::Revision(written))
            .await
            .unwrap_err();
        assert_eq!(stale.kind(), ErrorKind::Conflict, "{stale}");
    }
}

/// On a current-thread runtime no read runs inline (it would stall the only worker):
/// answers are the same, and a read racing writes of the same id sees whole versions.
#[tokio::test(flavor = "current_thread")]
async fn reads_on_a_current_thread_runtime_agree_with_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Arc::new(open(tmp.path()).await);
    let k = id("single");
    for i in 0..50u8 {
        let written = p.store(&k, &data(i), &meta()).await.unwrap();
        let (a, b) = tokio::join!(p.retrieve(&k), p.revision(&k));
        let stored = a.unwrap();
        assert_eq!((stored.revision, stored.data), (written.clone(), data(i)));
        assert_eq!(b.unwrap(), written);
    }
}

/// A FIFO where a credential file belongs (left by a tool, or planted): opening it for
/// reading would wait for a writer forever — on the calling thread when reads run inline,
/// where no timeout can stop it. Reads refuse it at once instead.
#[cfg(target_os = "linux")]
#[test]
fn a_fifo_in_place_of_a_credential_file_never_hangs_a_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let p = runtime.block_on(open(&dir));
    let k = id("fifo");
    // A first read decides whether reads may run inline (they may, on a local disk).
    runtime.block_on(p.store(&id("warm"), &data(1), &meta())).unwrap();
    runtime.block_on(p.retrieve(&id("warm"))).unwrap();
    let fifo = p.file_path(&k);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let (p, k) = (p.clone(), k.clone());
        std::thread::spawn(move || {
            let answer = runtime.block_on(async {
                // A listing that reads metadata (a tag filter) skips it.
                let filter = nebula_credential_core::CredentialFilter::new().tag("env", "prod");
                let listed = p.list(&filter).await;
                (p.retrieve(&k).await.map(|s| s.revision), listed)
            });
            tx.send(answer).unwrap();
        })
    };
    // A generous bound that only a hang exceeds.
    let answer = rx.recv_timeout(Duration::from_secs(60));
    if answer.is_err() {
        // Release the stuck reader before failing.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
    }
    reader.join().unwrap();
    let (read, listed) = answer.expect("the read hung on the FIFO");
    let e = read.unwrap_err();
    assert!(!e.is_not_found(), "{e}");
    assert_eq!(listed.unwrap(), Vec::<nebula_credential_core::CredentialId>::new());
}
