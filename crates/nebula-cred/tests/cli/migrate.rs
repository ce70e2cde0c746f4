//! `migrate`: verbatim, idempotent copies, selection, size limits of the target, the
//! progress bar, and an interrupted run finished by a second one.

use std::path::Path;

use nebula_credential::{CredentialId, CredentialStore, Keyring, StorageProvider, Tags};
use predicates::prelude::*;

use crate::support::*;

#[test]
fn migrate_copies_verbatim_refuses_to_overwrite_and_is_idempotent() {
    let f = Fixture::new();
    f.put(
        "db_main",
        "m",
        &["--tag", "env=prod", "--expires", "2030-01-01T00:00:00Z"],
    );
    f.put("db_replica", "r", &["--tag", "env=dev"]);
    f.put("Api_Key", SECRET, &["--tag", "env=prod"]);
    let to = write_local_config(f.dir.path(), "target", "t.toml");
    let target = load_config(&to);
    let migrate = |extra: &[&str]| migrate(&f.config, &to, extra);

    // A different record already on the target under one id.
    with_key(&to, "--key-file", &f.key, &["put", "db_replica"])
        .write_stdin("someone else's")
        .assert()
        .success();
    let theirs = raw(&target, "db_replica").unwrap();

    let dry = migrate(&["--dry-run"]).output().unwrap();
    assert_eq!(dry.status.code(), Some(4), "{}", text(&dry));
    assert!(text(&dry).contains("dry run, nothing written"), "{}", text(&dry));
    assert_eq!(
        (
            count_of(&text(&dry), "copied"),
            count_of(&text(&dry), "not overwritten")
        ),
        (2, 1)
    );
    assert!(raw(&target, "db_main").is_none(), "a dry run writes nothing");

    let first = migrate(&["--verify"]).output().unwrap();
    assert_eq!(first.status.code(), Some(4), "not overwritten → 4: {}", text(&first));
    let summary = text(&first);
    assert!(count_of(&summary, "copied") == 2, "{summary}");
    assert!(count_of(&summary, "not overwritten") == 1, "{summary}");
    assert!(count_of(&summary, "verified") == 2, "{summary}");
    for id in ["db_main", "Api_Key"] {
        let (a, b) = (raw(&f.config(), id).unwrap(), raw(&target, id).unwrap());
        assert_eq!((a.data, a.metadata), (b.data, b.metadata), "{id} copied verbatim");
    }
    assert_eq!(
        raw(&target, "db_replica").unwrap(),
        theirs,
        "the target's own record is left alone"
    );

    let again = migrate(&[]).output().unwrap();
    assert!(count_of(&text(&again), "copied") == 0, "{}", text(&again));
    assert!(count_of(&text(&again), "already present") == 2, "{}", text(&again));

    let third = migrate(&["--overwrite", "--verify"]).output().unwrap();
    assert!(third.status.success(), "{}", text(&third));
    assert_eq!(count_of(&text(&third), "overwritten"), 1, "{}", text(&third));
    let (a, b) = (
        raw(&f.config(), "db_replica").unwrap(),
        raw(&target, "db_replica").unwrap(),
    );
    assert_eq!((a.data, a.metadata), (b.data, b.metadata));
    // Same key, same id: the copy decrypts on the target.
    with_key(&to, "--key-file", &f.key, &["get", "Api_Key"])
        .assert()
        .success()
        .stdout(SECRET);
    let last = migrate(&[]).output().unwrap();
    assert!(last.status.success(), "{}", text(&last));
    assert_eq!(count_of(&text(&last), "already present"), 3, "{}", text(&last));
}

#[test]
fn migrate_selects_by_prefix_or_tag_and_refuses_the_same_storage() {
    let f = Fixture::new();
    f.put("db_main", "m", &["--tag", "env=prod"]);
    f.put("db_replica", "r", &["--tag", "env=dev"]);
    f.put("api_key", "a", &["--tag", "env=prod"]);
    let to = write_local_config(f.dir.path(), "target", "t.toml");
    migrate(&f.config, &to, &["--prefix", "db_", "--tag", "env=prod"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 credential(s) selected"));
    let ids = block_on(provider(&load_config(&to)).list(&Default::default())).unwrap();
    assert_eq!(ids, vec!["db_main".parse::<CredentialId>().unwrap()]);
    // A target without conditional stores: copied, with a note on what that risks.
    let unlocked = f.path("unlocked.toml");
    std::fs::write(
        &unlocked,
        format!(
            "provider = \"local\"\nbase_path = {:?}\nenable_locking = false\n",
            f.path("unlocked").display().to_string()
        ),
    )
    .unwrap();
    let out = migrate(&f.config, &unlocked, &["--verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count_of(&text(&out), "copied"), 3);
    assert!(text(&out).contains("cannot store conditionally"), "{}", text(&out));
    migrate(&f.config, &f.config, &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("same storage"));
    migrate(&f.config, &to, &["--jobs", "0"]).assert().code(2);
}

#[test]
fn migrate_into_memory_verifies_every_record_fits() {
    let f = Fixture::new();
    for i in 0..5 {
        f.put(&format!("k{i}"), "v", &[]);
    }
    let memory = f.path("m.toml");
    std::fs::write(&memory, "provider = \"memory\"\n").unwrap();
    let out = migrate(&f.config, &memory, &["--verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        (count_of(&text(&out), "copied"), count_of(&text(&out), "verified")),
        (5, 5)
    );
}

#[test]
fn a_record_too_large_for_the_target_fails_naming_both_sizes() {
    let f = Fixture::new();
    std::fs::write(f.path("big"), vec![b'x'; 4000]).unwrap();
    f.cmd(&["put", "big", "--from-file", f.path("big").to_str().unwrap()])
        .assert()
        .success();
    f.put("small", "s", &[]);
    let to = f.path("small.toml");
    std::fs::write(
        &to,
        format!(
            "provider = \"local\"\nbase_path = {:?}\nmax_payload_bytes = 2000\n",
            f.path("target").display().to_string()
        ),
    )
    .unwrap();
    // A dry run predicts it; the real run fails the same way and copies the rest.
    for extra in [&["--dry-run"][..], &[]] {
        let out = migrate(&f.config, &to, extra).output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{}", text(&out));
        let summary = text(&out);
        assert_eq!(
            (count_of(&summary, "copied"), count_of(&summary, "failed")),
            (1, 1),
            "{summary}"
        );
        assert!(
            summary.contains("  big: ") && summary.contains("2000-byte limit") && summary.contains("[too_large]"),
            "{summary}"
        );
    }
    assert!(raw(&load_config(&to), "big").is_none());
}

#[test]
fn the_progress_bar_shows_only_on_a_terminal() {
    let f = Fixture::new();
    for i in 0..20 {
        f.put(&format!("k{i}"), "v", &[]);
    }
    let to = write_local_config(f.dir.path(), "target", "t.toml");
    let piped = migrate(&f.config, &to, &["--dry-run"]).output().unwrap();
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "no progress when stderr is not a terminal: {}",
        text(&piped)
    );
    assert!(!piped.stdout.contains(&b'\r'));
    let line = format!("{BIN} migrate --from {} --to {}", f.config.display(), to.display());
    let on_tty = on_terminal(&line, None);
    assert!(on_tty.status.success(), "{}", text(&on_tty));
    let shown = text(&on_tty);
    assert!(shown.contains("\r\x1b[2K[") && shown.contains("20/20"), "{shown:?}");
    assert_eq!(count_of(&shown, "copied"), 20, "{shown}");
}

/// Ids of the interrupted-migration test: lowercase, so each file is `ID.enc.json`.
fn bulk_id(i: usize) -> String {
    format!("bulk_{i:04}")
}

#[cfg(unix)]
#[test]
fn an_interrupted_migration_is_finished_by_a_second_run_copying_nothing_twice() {
    use std::os::unix::fs::MetadataExt;
    const TOTAL: usize = 400;
    let f = Fixture::new();
    let source = f.config();
    let store = CredentialStore::new(provider(&source), Keyring::new(f.key()));
    block_on(async {
        for i in 0..TOTAL {
            let tags = Tags::from([("n".to_string(), i.to_string())]);
            store
                .put(&bulk_id(i).parse().unwrap(), format!("v{i}").as_bytes(), tags)
                .await
                .unwrap();
        }
    });
    let to = write_local_config(f.dir.path(), "target", "t.toml");
    let target_dir = f.path("target");
    let target = load_config(&to);
    let args = [
        "migrate",
        "--from",
        f.config.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--jobs",
        "1",
    ];
    let records = |dir: &Path| -> Vec<(String, u64)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<(String, u64)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".enc.json"))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().ino(),
                )
            })
            .collect();
        v.sort();
        v
    };

    let mut child = std::process::Command::new(BIN)
        .args(args)
        .env_remove("NEBULA_CREDENTIAL_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while records(&target_dir).len() < TOTAL / 10 {
        assert!(started.elapsed().as_secs() < 120, "the migration never got going");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup, no summary
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed before it finished");
    let copied_first = records(&target_dir);
    assert!(
        copied_first.len() >= TOTAL / 10 && copied_first.len() < TOTAL,
        "killed half-way: {} of {TOTAL} on the target",
        copied_first.len()
    );

    let second = bare().args(args).arg("--verify").output().unwrap();
    assert!(second.status.success(), "{}", text(&second));
    let summary = text(&second);
    let first_n = copied_first.len();
    assert_eq!(count_of(&summary, "copied"), TOTAL - first_n, "{summary}");
    assert_eq!(count_of(&summary, "already present"), first_n, "{summary}");
    assert_eq!(count_of(&summary, "verified"), TOTAL, "{summary}");
    assert_eq!(count_of(&summary, "failed"), 0, "{summary}");

    // Nothing copied twice: the files of the first run were not rewritten (same inodes).
    let after = records(&target_dir);
    assert_eq!(after.len(), TOTAL, "nothing lost");
    for (name, inode) in &copied_first {
        let now = after.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(now.1, *inode, "{name} was written again");
    }
    // Nothing lost: every record byte-identical on the target.
    for i in 0..TOTAL {
        let (a, b) = (raw(&source, &bulk_id(i)).unwrap(), raw(&target, &bulk_id(i)).unwrap());
        assert_eq!((a.data, a.metadata), (b.data, b.metadata), "{}", bulk_id(i));
    }
}
