//! What the local provider does on disk: permissions, temp files, restarts, corruption,
//! configuration errors, and readers racing writers.

use std::path::Path;
use std::sync::Arc;

use nebula_credential_core::{
    CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, StorageError, StorageProvider, StoredRecord,
};
use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};

fn id(s: &str) -> CredentialId {
    s.parse().unwrap()
}

fn data(fill: u8, len: usize) -> EncryptedData {
    EncryptedData {
        version: 1,
        key_id: "test".into(),
        nonce: [fill; 12],
        ciphertext: vec![fill; len],
    }
}

fn tagged(key: &str, value: &str) -> CredentialMetadata {
    CredentialMetadata::new().with_tags([(key.to_string(), value.to_string())].into())
}

async fn open(dir: &Path) -> LocalStorageProvider {
    LocalStorageProvider::new(LocalStorageConfig::new(dir))
        .await
        .expect("open")
}

/// Names of the entries of `dir` matching `pred`.
fn entries(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| pred(n))
        .collect();
    names.sort();
    names
}

fn credential_files(dir: &Path) -> Vec<String> {
    entries(dir, |n| !n.starts_with('.'))
}

/// Every credential file parses as a record of the id its name stands for.
fn assert_all_files_parse(dir: &Path) -> usize {
    let files = credential_files(dir);
    for f in &files {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        StoredRecord::from_json(&bytes, "local", f, None).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    files.len()
}

#[cfg(unix)]
#[tokio::test]
async fn directory_is_0700_and_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("a").join("b").join("creds");
    let p = open(&base).await;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&base), 0o700, "created at construction, before any write");
    assert_eq!(mode(&tmp.path().join("a")), 0o700, "parents created private too");
    p.store(&id("secret"), data(1, 10), CredentialMetadata::new())
        .await
        .unwrap();
    for f in entries(&base, |_| true) {
        assert_eq!(mode(&base.join(&f)), 0o600, "{f}");
    }
}

#[tokio::test]
async fn nested_base_path_is_created_at_construction() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("deeply").join("nested").join("dir");
    open(&base).await;
    assert!(base.is_dir());
}

#[tokio::test]
async fn no_temp_file_is_left_after_1000_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    for i in 0..1000u32 {
        let k = id(&format!("k{}", i % 10));
        p.store(&k, data((i % 251) as u8, 64), CredentialMetadata::new())
            .await
            .unwrap();
    }
    assert!(entries(tmp.path(), |n| n.ends_with(".tmp")).is_empty());
    assert_eq!(credential_files(tmp.path()).len(), 10);
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap().len(), 10);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    {
        let p = open(tmp.path()).await;
        for i in 0..25u8 {
            let (k, d, m) = (
                id(&format!("Cred_{i}")),
                data(i, 100 + i as usize),
                tagged("i", &i.to_string()),
            );
            p.store(&k, d.clone(), m.clone()).await.unwrap();
            written.push((k, d, m));
        }
    }
    let p = open(tmp.path()).await;
    for (k, d, m) in written {
        assert_eq!(p.retrieve(&k).await.unwrap(), (d, m));
    }
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap().len(), 25);
}

#[tokio::test]
async fn a_corrupted_file_is_isolated() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    for name in ["good", "truncated", "garbage"] {
        p.store(&id(name), data(7, 200), tagged("env", "prod")).await.unwrap();
    }
    let truncated = p.file_path(&id("truncated"));
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(p.file_path(&id("garbage")), b"\x00\xffnot json at all").unwrap();

    for name in ["truncated", "garbage"] {
        match p.retrieve(&id(name)).await {
            Err(e @ StorageError::Corrupted { .. }) => {
                let file = p.file_path(&id(name)).display().to_string();
                assert!(e.to_string().contains(&file), "names the file: {e}");
            }
            other => panic!("expected Corrupted for {name}, got {other:?}"),
        }
    }
    assert_eq!(p.retrieve(&id("good")).await.unwrap().0, data(7, 200));
    // Listing by id still shows every file; listing by tag skips the damaged ones.
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap().len(), 3);
    assert_eq!(
        p.list(&CredentialFilter::new().tag("env", "prod")).await.unwrap(),
        vec![id("good")]
    );
    // Storing again repairs it.
    p.store(&id("garbage"), data(1, 1), CredentialMetadata::new())
        .await
        .unwrap();
    assert!(p.retrieve(&id("garbage")).await.is_ok());
}

#[tokio::test]
async fn a_file_from_a_newer_format_names_both_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    p.store(&id("future"), data(1, 8), CredentialMetadata::new())
        .await
        .unwrap();
    let path = p.file_path(&id("future"));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"format_version\":1", "\"format_version\":2");
    std::fs::write(&path, text).unwrap();
    let e = p.retrieve(&id("future")).await.unwrap_err().to_string();
    assert!(e.contains("format 2") && e.contains("up to format 1"), "{e}");
}

#[tokio::test]
async fn foreign_and_hidden_files_are_never_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    p.store(&id("mine"), data(1, 8), CredentialMetadata::new())
        .await
        .unwrap();
    for stranger in [
        "README.md",
        "notes.json",
        ".mine.enc.json.abc123.tmp",
        "MINE.enc.json",
        "x.y.z.enc.json",
    ] {
        std::fs::write(tmp.path().join(stranger), b"{}").unwrap();
    }
    std::fs::create_dir(tmp.path().join("subdir")).unwrap();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![id("mine")]);
}

#[tokio::test]
async fn temp_files_left_by_a_crash_are_removed_at_startup() {
    let tmp = tempfile::tempdir().unwrap();
    open(tmp.path()).await;
    std::fs::write(tmp.path().join(".k.enc.json.Xy12ab.tmp"), b"{\"format_ver").unwrap();
    open(tmp.path()).await;
    assert!(entries(tmp.path(), |n| n.ends_with(".tmp")).is_empty());
}

#[tokio::test]
async fn invalid_configs_are_rejected_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let field = |r: Result<LocalStorageProvider, StorageError>| match r {
        Err(StorageError::Config(e)) => (e.field().to_string(), e.to_string()),
        other => panic!("expected a config error, got {other:?}"),
    };

    let missing = tmp.path().join("missing");
    let (f, msg) = field(
        LocalStorageProvider::new(LocalStorageConfig {
            create_dir: false,
            ..LocalStorageConfig::new(&missing)
        })
        .await,
    );
    assert_eq!(f, "base_path");
    assert!(msg.contains("does not exist") && msg.contains("create_dir"), "{msg}");
    assert!(!missing.exists(), "nothing created");

    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (f, msg) = field(LocalStorageProvider::new(LocalStorageConfig::new(&file)).await);
    assert_eq!(f, "base_path");
    assert!(msg.contains("not a directory"), "{msg}");

    let (f, _) = field(LocalStorageProvider::new(LocalStorageConfig::new("relative/path")).await);
    assert_eq!(f, "base_path");
    let (f, _) = field(
        LocalStorageProvider::new(LocalStorageConfig {
            file_extension: "../x".into(),
            ..LocalStorageConfig::new(tmp.path())
        })
        .await,
    );
    assert_eq!(f, "file_extension");
}

#[tokio::test]
async fn payload_over_the_limit_is_too_large_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let p = LocalStorageProvider::new(LocalStorageConfig {
        max_payload_bytes: 4096,
        ..LocalStorageConfig::new(tmp.path())
    })
    .await
    .unwrap();
    match p.store(&id("big"), data(1, 4096), CredentialMetadata::new()).await {
        Err(StorageError::TooLarge { size, limit, .. }) => assert!(size > 4096 && limit == 4096),
        other => panic!("{other:?}"),
    }
    assert!(
        entries(tmp.path(), |n| !n.starts_with(".nebula-probe-")).is_empty(),
        "nothing written"
    );
}

async fn readers_never_see_partial_files(locking: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let p = Arc::new(
        LocalStorageProvider::new(LocalStorageConfig {
            enable_locking: locking,
            ..LocalStorageConfig::new(tmp.path())
        })
        .await
        .unwrap(),
    );
    let k = id("hot");
    p.store(&k, data(0, 50_000), tagged("fill", "0")).await.unwrap();
    let writer = {
        let (p, k) = (p.clone(), k.clone());
        tokio::spawn(async move {
            for i in 1..=300u32 {
                let fill = (i % 250) as u8;
                p.store(&k, data(fill, 50_000), tagged("fill", &fill.to_string()))
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let (d, m) = p.retrieve(&k).await.expect("every read parses");
        let fill: u8 = m.tags["fill"].parse().unwrap();
        assert!(
            d.ciphertext.iter().all(|b| *b == fill),
            "data and metadata from one write"
        );
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
    assert_eq!(assert_all_files_parse(tmp.path()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_partial_files_with_locking() {
    readers_never_see_partial_files(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_partial_files_without_locking() {
    readers_never_see_partial_files(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tasks_on_distinct_ids_and_on_one_id_leave_parseable_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Arc::new(open(tmp.path()).await);
    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            p.store(&id(&format!("distinct_{i}")), data(i, 300), CredentialMetadata::new())
                .await
                .unwrap();
            p.store(&id("shared"), data(i, 300), tagged("writer", &i.to_string()))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(assert_all_files_parse(tmp.path()), 51);
    let (d, m) = p.retrieve(&id("shared")).await.unwrap();
    assert_eq!(d, data(m.tags["writer"].parse().unwrap(), 300));
    assert!(entries(tmp.path(), |n| n.ends_with(".tmp")).is_empty());
}

#[tokio::test]
async fn list_sees_changes_made_by_other_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path()).await;
    let b = open(tmp.path()).await; // stands for another process: its own cache
    let prod = CredentialFilter::new().tag("env", "prod");
    a.store(&id("x"), data(1, 10), tagged("env", "prod")).await.unwrap();
    a.store(&id("y"), data(1, 10), tagged("env", "dev")).await.unwrap();
    assert_eq!(a.list(&prod).await.unwrap(), vec![id("x")]);
    assert_eq!(b.list(&prod).await.unwrap(), vec![id("x")]);

    b.store(&id("x"), data(2, 10), tagged("env", "dev")).await.unwrap();
    b.store(&id("y"), data(2, 10), tagged("env", "prod")).await.unwrap();
    assert_eq!(a.list(&prod).await.unwrap(), vec![id("y")], "a sees b's overwrites");

    b.delete(&id("y")).await.unwrap();
    assert!(a.list(&prod).await.unwrap().is_empty(), "a sees b's delete");

    // An edit in place by some other program, same size, is seen too.
    a.store(&id("z"), data(3, 10), tagged("env", "prod")).await.unwrap();
    assert_eq!(a.list(&prod).await.unwrap(), vec![id("z")]);
    let path = a.file_path(&id("z"));
    let edited = std::fs::read_to_string(&path).unwrap().replace("\"prod\"", "\"qa!!\"");
    std::fs::write(&path, edited).unwrap();
    assert!(a.list(&prod).await.unwrap().is_empty(), "in-place edit seen");
}
