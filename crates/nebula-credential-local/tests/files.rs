//! What the local provider does on disk: permissions, temp files, restarts, corruption,
//! secrecy of unreadable files, Windows device names, configuration errors, and readers
//! racing writers.

use std::path::Path;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use nebula_credential_core::conformance::{bytes, data, id, meta, tagged};
use nebula_credential_core::{CredentialFilter, EncryptedData, RecordEnvelope, StorageError, StorageProvider};
use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};

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
        RecordEnvelope::from_json(&bytes, "local", f, None).unwrap_or_else(|e| panic!("{f}: {e}"));
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
    p.store(&id("secret"), &data(1), &meta()).await.unwrap();
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
        p.store(&k, &data((i % 251) as u8), &meta()).await.unwrap();
    }
    assert!(entries(tmp.path(), |n| n.ends_with(".tmp")).is_empty());
    assert_eq!(credential_files(tmp.path()).len(), 10);
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap().len(), 10);
}

#[tokio::test]
async fn data_and_revisions_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    {
        let p = open(tmp.path()).await;
        for i in 0..25u8 {
            let (k, d, m) = (
                id(&format!("Cred_{i}")),
                bytes(vec![i; 100 + i as usize]),
                tagged(&[("i", &i.to_string())]),
            );
            let revision = p.store(&k, &d, &m).await.unwrap();
            written.push((k, d, m, revision));
        }
    }
    let p = open(tmp.path()).await;
    for (k, d, m, revision) in written {
        let stored = p.retrieve(&k).await.unwrap();
        assert_eq!((stored.data, stored.metadata, stored.revision), (d, m, revision));
    }
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap().len(), 25);
}

#[tokio::test]
async fn a_corrupted_file_is_isolated() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    for name in ["good", "truncated", "garbage"] {
        p.store(&id(name), &data(7), &tagged(&[("env", "prod")])).await.unwrap();
    }
    let truncated = p.file_path(&id("truncated"));
    let content = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &content[..content.len() / 2]).unwrap();
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
    assert_eq!(p.retrieve(&id("good")).await.unwrap().data, data(7));
    // Listing by id still shows every file; listing by tag skips the damaged ones.
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap().len(), 3);
    assert_eq!(
        p.list(&CredentialFilter::new().tag("env", "prod")).await.unwrap(),
        vec![id("good")]
    );
    // Storing again repairs it.
    p.store(&id("garbage"), &data(1), &meta()).await.unwrap();
    assert!(p.retrieve(&id("garbage")).await.is_ok());
}

/// Everything this test binary logs. One global subscriber: a thread-local default misses
/// events logged on the blocking threads, and races other tests over callsite interest.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
    });
    // A callsite another test thread registered while the subscriber was being installed
    // can keep the interest it computed without it ("never"), and its events are lost:
    // settle every callsite's interest again now that the subscriber is in place.
    tracing::callsite::rebuild_interest_cache();
}

/// A file under a credential's name that holds something else (a PIN written by
/// another program) is reported without its content: not in errors, not in logs.
#[test]
fn a_foreign_file_never_puts_its_content_in_errors_or_logs() {
    const PIN: &str = "123456";
    capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let shown = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let p = open(tmp.path()).await;
            let mut shown = Vec::new();
            for (name, content) in [
                ("pin", PIN.to_string()),
                ("quoted", format!("\"{PIN}\"")),
                ("field", format!("{{\"metadata\":{{\"pin\":{PIN}}}}}")),
                (
                    "record",
                    format!("{{\"format_version\":1,\"id\":\"record\",\"pin\":\"{PIN}\"}}"),
                ),
            ] {
                std::fs::write(p.file_path(&id(name)), content).unwrap();
                let e = p.retrieve(&id(name)).await.unwrap_err();
                assert!(matches!(e, StorageError::Corrupted { .. }), "{e:?}");
                shown.push(format!("{e} {e:?}"));
            }
            // list with a tag filter reads each file and logs why it skips it.
            let listed = p.list(&CredentialFilter::new().tag("env", "prod")).await.unwrap();
            assert!(listed.is_empty());
            shown
        });
    let logs = String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned();
    let ours = tmp.path().display().to_string();
    assert!(
        logs.lines()
            .any(|l| l.contains("skipping an unreadable credential file") && l.contains(&ours)),
        "logs captured:\n{logs}"
    );
    for text in shown.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(PIN), "stored content leaked: {text}");
    }
}

#[tokio::test]
async fn a_file_from_a_newer_format_names_both_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    p.store(&id("future"), &data(1), &meta()).await.unwrap();
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
    p.store(&id("mine"), &data(1), &meta()).await.unwrap();
    for stranger in [
        "README.md",
        "notes.json",
        ".mine.enc.json.abc123.tmp",
        "MINE.enc.json",
        "x.y.z.enc.json",
        "nul.enc.json",
        "@mine.enc.json",
    ] {
        std::fs::write(tmp.path().join(stranger), b"{}").unwrap();
    }
    std::fs::create_dir(tmp.path().join("subdir")).unwrap();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![id("mine")]);
}

/// Ids that Windows reserves as device names are ordinary ids: stored under names that
/// are not device names, listed and read back as given.
#[tokio::test]
async fn windows_device_names_are_ordinary_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let p = open(tmp.path()).await;
    let ids: Vec<_> = [
        "con", "NUL", "Aux", "prn", "com1", "COM9", "lpt1", "Lpt9", "nul_", "conx",
    ]
    .into_iter()
    .map(id)
    .collect();
    for (i, k) in ids.iter().enumerate() {
        p.store(k, &data(i as u8), &meta()).await.unwrap();
    }
    for f in credential_files(tmp.path()) {
        let base = f.split('.').next().unwrap().to_ascii_lowercase();
        let device = matches!(base.as_str(), "con" | "prn" | "aux" | "nul")
            || (base.len() == 4
                && (base.starts_with("com") || base.starts_with("lpt"))
                && base.as_bytes()[3].is_ascii_digit());
        assert!(!device, "{f} is a Windows device name");
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), sorted);
    for (i, k) in ids.iter().enumerate() {
        assert_eq!(p.retrieve(k).await.unwrap().data, data(i as u8), "{k}");
    }
    assert_eq!(
        p.file_path(&id("api_key")).file_name().unwrap(),
        "api_key.enc.json",
        "other names are unchanged"
    );
}

fn set_age(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[tokio::test]
async fn temp_files_left_by_a_crash_long_ago_are_removed_at_startup() {
    let tmp = tempfile::tempdir().unwrap();
    open(tmp.path()).await;
    let temp = tmp.path().join(".k.enc.json.Xy12ab.tmp");
    std::fs::write(&temp, b"{\"format_ver").unwrap();
    set_age(&temp, Duration::from_secs(2 * 60 * 60));
    open(tmp.path()).await;
    assert!(entries(tmp.path(), |n| n.ends_with(".tmp")).is_empty());
}

/// A young temp file may belong to a live writer in another process, which may not
/// lock at all: opening a provider, locking or not, leaves it for that writer to rename.
#[tokio::test]
async fn a_live_writers_temp_file_survives_startup_whatever_its_locking() {
    let tmp = tempfile::tempdir().unwrap();
    let temp = tmp.path().join(".k.enc.json.Ab34cd.tmp");
    std::fs::write(&temp, b"{\"format_version\":1").unwrap();
    set_age(&temp, Duration::from_secs(5 * 60));
    for locking in [true, false] {
        LocalStorageProvider::new(LocalStorageConfig {
            enable_locking: locking,
            ..LocalStorageConfig::new(tmp.path())
        })
        .await
        .unwrap();
        assert!(temp.exists(), "removed at startup of a provider with locking {locking}");
    }
    // The writer can still finish: its rename lands.
    std::fs::rename(&temp, tmp.path().join("k.enc.json")).unwrap();
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
    match p.store(&id("big"), &bytes(vec![1; 4096]), &meta()).await {
        Err(StorageError::TooLarge { size, limit, .. }) => assert!(size > 4096 && limit == 4096),
        other => panic!("{other:?}"),
    }
    assert!(
        entries(tmp.path(), |n| !n.starts_with(".nebula-probe-")).is_empty(),
        "nothing written"
    );
}

fn filled(fill: u8) -> EncryptedData {
    bytes(vec![fill; 50_000])
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
    p.store(&k, &filled(0), &tagged(&[("fill", "0")])).await.unwrap();
    let writer = {
        let (p, k) = (p.clone(), k.clone());
        tokio::spawn(async move {
            for i in 1..=300u32 {
                let fill = (i % 250) as u8;
                p.store(&k, &filled(fill), &tagged(&[("fill", &fill.to_string())]))
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let stored = p.retrieve(&k).await.expect("every read parses");
        let fill: u8 = stored.metadata.tags["fill"].parse().unwrap();
        assert!(
            stored.data.ciphertext.iter().all(|b| *b == fill),
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
            p.store(&id(&format!("distinct_{i}")), &data(i), &meta()).await.unwrap();
            p.store(&id("shared"), &data(i), &tagged(&[("writer", &i.to_string())]))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(assert_all_files_parse(tmp.path()), 51);
    let stored = p.retrieve(&id("shared")).await.unwrap();
    assert_eq!(stored.data, data(stored.metadata.tags["writer"].parse().unwrap()));
    assert!(entries(tmp.path(), |n| n.ends_with(".tmp")).is_empty());
}

#[tokio::test]
async fn list_sees_changes_made_by_other_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path()).await;
    let b = open(tmp.path()).await; // stands for another process: its own cache
    let prod = CredentialFilter::new().tag("env", "prod");
    let (env_prod, env_dev) = (tagged(&[("env", "prod")]), tagged(&[("env", "dev")]));
    a.store(&id("x"), &data(1), &env_prod).await.unwrap();
    a.store(&id("y"), &data(1), &env_dev).await.unwrap();
    assert_eq!(a.list(&prod).await.unwrap(), vec![id("x")]);
    assert_eq!(b.list(&prod).await.unwrap(), vec![id("x")]);

    b.store(&id("x"), &data(2), &env_dev).await.unwrap();
    b.store(&id("y"), &data(2), &env_prod).await.unwrap();
    assert_eq!(a.list(&prod).await.unwrap(), vec![id("y")], "a sees b's overwrites");

    b.delete(&id("y")).await.unwrap();
    assert!(a.list(&prod).await.unwrap().is_empty(), "a sees b's delete");

    // An edit in place by some other program, same size, is seen too.
    a.store(&id("z"), &data(3), &env_prod).await.unwrap();
    assert_eq!(a.list(&prod).await.unwrap(), vec![id("z")]);
    let path = a.file_path(&id("z"));
    let edited = std::fs::read_to_string(&path).unwrap().replace("\"prod\"", "\"qa!!\"");
    std::fs::write(&path, edited).unwrap();
    assert!(a.list(&prod).await.unwrap().is_empty(), "in-place edit seen");
}
