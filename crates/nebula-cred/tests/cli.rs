//! The `nebula-cred` binary, run as a process against the local backend (and memory where
//! one process is enough): every command, its exit status, and that no secret reaches
//! stdout, stderr or the files unless asked for.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use assert_cmd::Command;
use nebula_credential::secrecy::{ExposeSecret, SecretString};
use nebula_credential::{
    CredentialId, CredentialStore, EncryptionKey, Keyring, StorageConfig, StorageProvider, Stored, Tags,
};
use predicates::prelude::*;

const SECRET: &str = "hunter2-Very-Secret-Value";
const BIN: &str = env!("CARGO_BIN_EXE_nebula-cred");

/// A local store in a temporary directory, its config file and a key file.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    key: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = write_local_config(dir.path(), "store", "c.toml");
        let key = dir.path().join("k.key");
        Command::new(BIN)
            .arg("keygen")
            .arg("--out")
            .arg(&key)
            .assert()
            .success();
        Fixture { dir, config, key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `nebula-cred --config C --key-file K ARGS…`, with no key or provider in the environment.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bare();
        c.arg("--config")
            .arg(&self.config)
            .arg("--key-file")
            .arg(&self.key)
            .args(args);
        c
    }

    fn put(&self, id: &str, value: &str, extra: &[&str]) {
        let mut args = vec!["put", id];
        args.extend_from_slice(extra);
        self.cmd(&args).write_stdin(value).assert().success();
    }

    fn key(&self) -> EncryptionKey {
        key_of(&self.key)
    }

    fn config(&self) -> StorageConfig {
        load_config(&self.config)
    }
}

/// `nebula-cred keygen --out PATH`, which must succeed.
fn keygen(path: &Path) {
    bare().arg("keygen").arg("--out").arg(path).assert().success();
}

/// `nebula-cred --config CONFIG KEY_FLAG KEY ARGS…` (`--key-file` or `--passphrase-file`).
fn with_key(config: &Path, key_flag: &str, key: &Path, args: &[&str]) -> Command {
    let mut c = bare();
    c.arg("--config").arg(config).arg(key_flag).arg(key).args(args);
    c
}

/// `nebula-cred migrate --from FROM --to TO EXTRA…`.
fn migrate(from: &Path, to: &Path, extra: &[&str]) -> Command {
    let mut c = bare();
    c.arg("migrate").arg("--from").arg(from).arg("--to").arg(to).args(extra);
    c
}

/// The binary with the variables it reads removed.
fn bare() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "NEBULA_CREDENTIAL_KEY",
        "NEBULA_CREDENTIAL_SALT",
        "NEBULA_CREDENTIAL_PROVIDER",
        "NEBULA_CREDENTIAL_DIR",
        "NEBULA_LOCAL_BASE_PATH",
    ] {
        c.env_remove(var);
    }
    c
}

fn write_local_config(dir: &Path, store: &str, name: &str) -> PathBuf {
    let path = dir.join(name);
    let base = dir.join(store);
    std::fs::write(
        &path,
        format!("provider = \"local\"\nbase_path = {:?}\n", base.display().to_string()),
    )
    .unwrap();
    path
}

fn key_of(path: &Path) -> EncryptionKey {
    EncryptionKey::from_base64(&SecretString::from(std::fs::read_to_string(path).unwrap())).unwrap()
}

fn load_config(path: &Path) -> StorageConfig {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn provider(config: &StorageConfig) -> Arc<dyn StorageProvider> {
    block_on(nebula_credential::open(config)).unwrap()
}

fn raw(config: &StorageConfig, id: &str) -> Option<Stored> {
    let id: CredentialId = id.parse().unwrap();
    match block_on(provider(config).retrieve(&id)) {
        Ok(s) => Some(s),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("{e}"),
    }
}

/// Runs `line` through `script`, which gives it a pseudo-terminal as stdin, stdout and
/// stderr. With `answer = Some((prompt, typed))`, `typed` goes to that terminal once
/// `prompt` has been shown (and a moment more, for the prompt to turn echo off).
fn on_terminal(line: &str, answer: Option<(&str, &str)>) -> Output {
    use std::io::{Read, Write};
    use std::sync::Mutex;
    let mut child = std::process::Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .env_remove("NEBULA_CREDENTIAL_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs the command on a pseudo-terminal");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                seen.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        })
    };
    if let Some((prompt, typed)) = answer {
        let started = std::time::Instant::now();
        while !contains(&seen.lock().unwrap(), prompt) {
            assert!(started.elapsed().as_secs() < 60, "no prompt {prompt:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        stdin.write_all(typed.as_bytes()).unwrap();
    }
    drop(stdin);
    let mut out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    out.stdout = std::mem::take(&mut seen.lock().unwrap());
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir`, concatenated, to prove nothing is stored in clear.
fn all_file_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(all_file_bytes(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

/// The number on the summary line `label` of `migrate`.
fn count_of(summary: &str, label: &str) -> usize {
    summary
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("  ")?.strip_prefix(label)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no line {label:?} in:\n{summary}"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn put_then_get_returns_the_exact_bytes_from_stdin_and_from_a_file() {
    let f = Fixture::new();
    f.cmd(&["put", "api_key", "--tag", "env=prod"])
        .write_stdin(SECRET)
        .assert()
        .success()
        .stdout("stored 'api_key' (version 1)\n");
    f.cmd(&["get", "api_key"]).assert().success().stdout(SECRET);

    let binary: Vec<u8> = (0u8..=255).chain([b'\n', 0, 0xff]).collect();
    std::fs::write(f.path("blob"), &binary).unwrap();
    let blob = f.path("blob");
    f.cmd(&["put", "Blob_1", "--from-file", blob.to_str().unwrap()])
        .assert()
        .success();
    let out = f.cmd(&["get", "Blob_1"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        out.stdout, binary,
        "binary values round-trip unchanged, newline included"
    );

    f.put("api_key", "second", &[]);
    f.cmd(&["get", "api_key", "--metadata"])
        .assert()
        .success()
        .stdout(predicate::str::contains("version:  2").and(predicate::str::contains("tags:     \n")));
}

#[test]
fn an_expired_credential_is_still_printed_but_with_a_warning() {
    let f = Fixture::new();
    // An expiry in the past is most likely a typo of the year: stored, with a warning.
    f.cmd(&["put", "old", "--expires", "2020-01-01T00:00:00Z"])
        .write_stdin("old-value")
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").and(predicate::str::contains("2020-01-01T00:00:00Z")));
    // Applications still read it (the library does not enforce expiry), so get prints it, on
    // stdout only, and says on stderr that it expired.
    f.cmd(&["get", "old"])
        .assert()
        .success()
        .stdout("old-value")
        .stderr(predicate::str::contains("'old' expired at 2020-01-01T00:00:00Z"));
    f.cmd(&["get", "old", "--metadata"])
        .assert()
        .success()
        .stderr(predicate::str::contains("expired"));
    f.cmd(&["put", "new", "--expires", "2999-01-01T00:00:00Z"])
        .write_stdin("v")
        .assert()
        .success()
        .stderr("");
    f.cmd(&["get", "new"]).assert().success().stderr("");
}

#[test]
fn get_with_the_wrong_key_says_which_key_to_give() {
    let f = Fixture::new();
    f.put("api_key", SECRET, &[]);
    let other = f.path("other.key");
    keygen(&other);
    let out = with_key(&f.config, "--key-file", &other, &["get", "api_key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(!said.contains(SECRET), "{said}");
    // Both key ids, and how to give a key to get (it has no --old-key-file).
    assert!(said.contains(&f.key().key_id().to_string()), "{said}");
    assert!(said.contains(&key_of(&other).key_id().to_string()), "{said}");
    assert!(
        said.contains("--key-file") && said.contains("NEBULA_CREDENTIAL_KEY"),
        "{said}"
    );
}

#[test]
fn get_json_carries_the_value_and_metadata() {
    let f = Fixture::new();
    f.put(
        "api_key",
        SECRET,
        &["--tag", "env=prod", "--expires", "2030-01-02T03:04:05Z"],
    );
    let out = f.cmd(&["get", "api_key", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "api_key");
    assert_eq!(v["value"], SECRET);
    assert_eq!(v["metadata"]["version"], 1);
    assert_eq!(v["metadata"]["tags"]["env"], "prod");
    assert_eq!(v["metadata"]["expires_at"], "2030-01-02T03:04:05Z");

    std::fs::write(f.path("bin"), [0xff, 0xfe, 0x00]).unwrap();
    let bin = f.path("bin");
    f.cmd(&["put", "bin", "--from-file", bin.to_str().unwrap()])
        .assert()
        .success();
    let out = f.cmd(&["get", "bin", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["value_base64"], "//4A");
    assert!(v.get("value").is_none());
}

#[test]
fn get_refuses_a_terminal_unless_revealed() {
    let f = Fixture::new();
    f.put("api_key", SECRET, &[]);
    let run = |extra: &str| {
        let line = format!(
            "{BIN} --config {} --key-file {} get api_key {extra}",
            f.config.display(),
            f.key.display()
        );
        on_terminal(&line, None)
    };
    let refused = run("");
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("refusing to print"), "{}", text(&refused));
    assert!(!text(&refused).contains(SECRET));
    let revealed = run("--reveal");
    assert!(revealed.status.success(), "{}", text(&revealed));
    assert!(text(&revealed).contains(SECRET));
}

#[test]
fn list_prints_a_table_json_lines_or_ids_and_filters() {
    let f = Fixture::new();
    f.put("db_main", "a", &["--tag", "env=prod", "--tag", "team=core"]);
    f.put("db_replica", "b", &["--tag", "env=dev"]);
    f.put("api_key", "c", &["--tag", "env=prod"]);

    let out = f.cmd(&["list"]).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("VERSION") && lines[0].contains("TAGS"));
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].starts_with("api_key") && lines[2].contains("env=prod,team=core"),
        "{table}"
    );

    let out = f.cmd(&["list", "--tag", "env=prod", "--json"]).output().unwrap();
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["api_key", "db_main"]);
    assert_eq!(rows[1]["tags"]["team"], "core");
    assert_eq!(rows[1]["version"], 1);

    f.cmd(&["list", "--prefix", "db_", "--ids-only"])
        .assert()
        .success()
        .stdout("db_main\ndb_replica\n");
    f.cmd(&["list", "--prefix", "db_", "--tag", "env=dev", "-q"])
        .assert()
        .success()
        .stdout("db_replica\n");
    f.cmd(&["list", "--tag", "bad key=x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid tag"));
}

#[test]
fn a_corrupted_record_is_reported_and_the_others_still_listed_and_migrated() {
    let f = Fixture::new();
    for id in ["good_a", "broken", "good_b"] {
        f.put(id, SECRET, &["--tag", "env=prod"]);
    }
    std::fs::write(f.path("store").join("broken.enc.json"), "{ not json").unwrap();
    let out = f.cmd(&["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        stdout.contains("good_a") && stdout.contains("good_b") && !stdout.contains("broken"),
        "{stdout}"
    );
    assert!(
        text(&out).contains("cannot read 'broken'") && text(&out).contains("corrupted"),
        "{}",
        text(&out)
    );

    let to = write_local_config(f.dir.path(), "target", "t.toml");
    let out = migrate(&f.config, &to, &["--verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let summary = text(&out);
    assert_eq!(
        (count_of(&summary, "copied"), count_of(&summary, "failed")),
        (2, 1),
        "{summary}"
    );
    assert!(
        summary.contains("  broken: ") && summary.contains("[corrupted]"),
        "{summary}"
    );
    assert!(summary.contains("run the same command again"), "{summary}");
    assert!(!summary.contains(SECRET));
}

#[test]
fn tags_written_by_another_tool_cannot_drive_the_terminal() {
    // Another writer of the backend (here: a hand-edited file) put escape sequences in a tag.
    let f = Fixture::new();
    f.put("shared", "v", &["--tag", "owner=ops"]);
    let file = f.path("store").join("shared.enc.json");
    let record = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        record.replace("\"ops\"", "\"\\u001b[2J\\u001b]0;pwned\\u0007\\r\\nfake\""),
    )
    .unwrap();
    for args in [&["list"][..], &["get", "shared", "--metadata"]] {
        let out = f.cmd(args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            !out.stdout.iter().any(|b| b.is_ascii_control() && *b != b'\n'),
            "{args:?}: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(text(&out).contains("owner=\\u{1b}[2J"), "{args:?}: {}", text(&out));
    }
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
fn put_stops_reading_a_value_once_it_is_over_the_backend_limit() {
    use std::io::Write as _;
    let f = Fixture::new();
    let small = f.path("small.toml");
    std::fs::write(
        &small,
        format!(
            "provider = \"local\"\nbase_path = {:?}\nmax_payload_bytes = 2000\n",
            f.path("small").display().to_string()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(BIN)
        .args([
            "--config",
            small.to_str().unwrap(),
            "--key-file",
            f.key.to_str().unwrap(),
        ])
        .args(["put", "huge"])
        .env_remove("NEBULA_CREDENTIAL_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Offer far more than the limit; put must give up (closing the pipe) long before the end.
    let mut stdin = child.stdin.take().unwrap();
    let offered = 32 << 20;
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        let mut written = 0;
        while written < offered && stdin.write_all(&chunk).is_ok() {
            written += chunk.len();
        }
        written
    });
    let out = child.wait_with_output().unwrap();
    let written = writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("2000"), "names the limit: {}", text(&out));
    assert!(written < offered, "read all {written} bytes offered before refusing");
    assert!(raw(&load_config(&small), "huge").is_none());
    // The same from a file.
    let file = std::fs::File::create(f.path("sparse")).unwrap();
    file.set_len(offered as u64).unwrap();
    let out = bare()
        .args([
            "--config",
            small.to_str().unwrap(),
            "--key-file",
            f.key.to_str().unwrap(),
        ])
        .args(["put", "huge", "--from-file", f.path("sparse").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("2000"), "{}", text(&out));
}

#[test]
fn writing_to_the_memory_provider_says_nothing_is_kept() {
    let memory = |args: &[&str]| {
        let mut c = bare();
        c.env("NEBULA_CREDENTIAL_PROVIDER", "memory")
            .env("NEBULA_CREDENTIAL_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .args(args);
        c
    };
    memory(&["put", "gone"])
        .write_stdin("v")
        .assert()
        .success()
        .stderr(predicate::str::contains("memory").and(predicate::str::contains("lost")));
    memory(&["exists", "gone"]).assert().code(3);
}

#[test]
fn exists_and_delete_report_by_exit_status() {
    let f = Fixture::new();
    f.put("api_key", SECRET, &[]);
    f.cmd(&["exists", "api_key"]).assert().code(0);
    f.cmd(&["exists", "Api_Key"])
        .assert()
        .code(3)
        .stdout("'Api_Key' does not exist\n")
        .stderr("");
    f.cmd(&["delete", "api_key"])
        .assert()
        .success()
        .stdout("deleted 'api_key'\n");
    f.cmd(&["exists", "api_key"]).assert().code(3);
    f.cmd(&["delete", "api_key"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to delete"));
    f.cmd(&["get", "api_key"]).assert().code(3);
}

#[test]
fn bad_usage_exits_2_with_what_to_do() {
    let f = Fixture::new();
    f.cmd(&["get", "../etc/passwd"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid credential id"));
    f.cmd(&["put", "x", "--tag", "novalue"])
        .write_stdin("v")
        .assert()
        .code(2);
    f.cmd(&["put", "x", "--expires", "tomorrow"])
        .write_stdin("v")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("RFC 3339"));
    f.cmd(&["put", "x"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("empty"));
    f.cmd(&["frobnicate"]).assert().code(2);
    // A dry run writes nothing, so there is nothing to read back: refused, not ignored.
    migrate(&f.config, &f.path("t.toml"), &["--dry-run", "--verify"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
    bare()
        .args(["--config", "/nonexistent/c.toml", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the configuration file"));
}

#[test]
fn a_value_given_as_an_argument_is_refused_and_never_echoed() {
    let f = Fixture::new();
    let out = f.cmd(&["put", "api_key", SECRET]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("stdin"), "{}", text(&out));
    assert!(!text(&out).contains(SECRET), "{}", text(&out));
    assert!(raw(&f.config(), "api_key").is_none(), "nothing stored");
}

#[test]
fn a_value_argument_is_never_echoed_whatever_it_looks_like() {
    // A PEM block, a value starting with '-', a value of several words, or one followed by
    // options: clap would quote any of these back as "unexpected argument".
    let f = Fixture::new();
    let cases: [&[&str]; 5] = [
        &["put", "api_key", "-----BEGIN-hunter2"],
        &["put", "api_key", "-hunter2"],
        &["put", "api_key", "hunter2", "second-hunter2"],
        &["put", "api_key", "--tag", "env=prod", "hunter2", "--from-file", "x"],
        &["put", "api_key", "--", "--hunter2"],
    ];
    for args in cases {
        let out = f.cmd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("hunter2"), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("stdin"), "{args:?}: {}", text(&out));
    }
    assert!(raw(&f.config(), "api_key").is_none(), "nothing stored");
    // Options before the id and after it still work.
    f.cmd(&["put", "api_key", "--tag", "env=prod"])
        .write_stdin("v")
        .assert()
        .success();
}

#[test]
fn secrets_never_appear_in_output_files_or_errors_unless_asked() {
    let f = Fixture::new();
    f.put("api_key", SECRET, &["--tag", "env=prod"]);
    let target = write_local_config(f.dir.path(), "target", "t.toml");
    let new_key = f.path("new.key");
    keygen(&new_key);
    let key_text = std::fs::read_to_string(&f.key).unwrap();
    let key_text = key_text.trim();
    let runs: Vec<Vec<&str>> = vec![
        vec!["list"],
        vec!["list", "--json"],
        vec!["get", "api_key", "--metadata"],
        vec!["get", "api_key", "--metadata", "--json"],
        vec!["exists", "api_key"],
        vec!["doctor"],
        vec![
            "migrate",
            "--from",
            f.config.to_str().unwrap(),
            "--to",
            target.to_str().unwrap(),
            "--verify",
        ],
        vec!["--help"],
    ];
    for args in &runs {
        let out = f.cmd(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains(SECRET), "{args:?} printed the secret");
        assert!(!text(&out).contains(key_text), "{args:?} printed the key");
    }
    assert!(
        !contains(&all_file_bytes(f.dir.path()), SECRET),
        "stored in clear somewhere"
    );

    // Errors: a wrong key, a key in the wrong format, a broken config.
    let wrong = f.path("wrong.key");
    keygen(&wrong);
    let out = with_key(&f.config, "--key-file", &wrong, &["get", "api_key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not in the keyring"), "{}", text(&out));
    let out = bare()
        .args(["--config", f.config.to_str().unwrap(), "get", "api_key"])
        .env("NEBULA_CREDENTIAL_KEY", SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out).contains(SECRET), "{}", text(&out));
    let broken = f.path("broken.toml");
    std::fs::write(&broken, format!("provider = \"local\"\ntoken = \"{SECRET}\n")).unwrap();
    let out = bare()
        .args(["--config", broken.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("line 2"), "{}", text(&out));
    assert!(!text(&out).contains(SECRET), "{}", text(&out));
    let out = f
        .cmd(&["rotate-key", "--new-key-file", new_key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(SECRET) && !text(&out).contains(key_text));
    assert!(!text(&out).contains(std::fs::read_to_string(&new_key).unwrap().trim()));
}

#[test]
fn the_key_comes_from_the_environment_a_file_or_a_passphrase_with_the_configured_salt() {
    let f = Fixture::new();
    let key_b64 = std::fs::read_to_string(&f.key).unwrap();
    bare()
        .args(["--config", f.config.to_str().unwrap(), "put", "from_env"])
        .env("NEBULA_CREDENTIAL_KEY", key_b64.trim())
        .write_stdin("v1")
        .assert()
        .success();
    f.cmd(&["get", "from_env"]).assert().success().stdout("v1");

    bare()
        .args(["--config", f.config.to_str().unwrap(), "put", "nokey"])
        .write_stdin("v")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NEBULA_CREDENTIAL_KEY").and(predicate::str::contains("--key-file")));

    // A passphrase: the salt lives in the config's [key] table.
    let salt_out = bare().args(["keygen", "--salt"]).output().unwrap();
    let salt = String::from_utf8(salt_out.stdout).unwrap().trim().to_string();
    let with_salt = f.path("salted.toml");
    std::fs::write(
        &with_salt,
        format!(
            "{}\n[key]\npassphrase_salt = \"{salt}\"\n",
            std::fs::read_to_string(&f.config).unwrap()
        ),
    )
    .unwrap();
    let pass = f.path("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let by_pass = |args: &[&str]| with_key(&with_salt, "--passphrase-file", &pass, args);
    by_pass(&["put", "by_pass"]).write_stdin("pv").assert().success();
    by_pass(&["get", "by_pass"]).assert().success().stdout("pv");
    // The library derives the same key from the same passphrase and salt.
    let derived = EncryptionKey::from_passphrase(
        &SecretString::from("correct horse battery staple".to_string()),
        &base64_decode(&salt),
    )
    .unwrap();
    let store = CredentialStore::new(provider(&f.config()), Keyring::new(derived));
    let got = block_on(store.get(&"by_pass".parse().unwrap())).unwrap();
    assert_eq!(got.expose_secret(), b"pv");
    // Without the salt the passphrase is refused, saying where the salt goes.
    with_key(&f.config, "--passphrase-file", &pass, &["get", "by_pass"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("passphrase_salt"));
    // An explicit --passphrase-file wins over a key left in the environment…
    by_pass(&["put", "explicit"])
        .env("NEBULA_CREDENTIAL_KEY", key_b64.trim())
        .write_stdin("ev")
        .assert()
        .success();
    by_pass(&["get", "explicit"]).assert().success().stdout("ev");
    // …and two explicit keys are refused rather than one silently ignored.
    by_pass(&["--key-file", f.key.to_str().unwrap(), "get", "explicit"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn the_passphrase_prompt_does_not_echo() {
    let f = Fixture::new();
    let salt = String::from_utf8(bare().args(["keygen", "--salt"]).output().unwrap().stdout).unwrap();
    let config = f.path("pp.toml");
    std::fs::write(
        &config,
        format!(
            "{}[key]\npassphrase_salt = \"{}\"\n",
            std::fs::read_to_string(&f.config).unwrap(),
            salt.trim()
        ),
    )
    .unwrap();
    let value = f.path("value");
    std::fs::write(&value, "v").unwrap();
    let line = format!(
        "{BIN} --config {} put typed --from-file {}",
        config.display(),
        value.display()
    );
    let out = on_terminal(&line, Some(("passphrase: ", "Typed-Passphrase-42\n")));
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("passphrase:") && shown.contains("stored 'typed'"),
        "{shown}"
    );
    assert!(
        !shown.contains("Typed-Passphrase-42"),
        "the passphrase was echoed: {shown}"
    );
    let pass = f.path("pass");
    std::fs::write(&pass, "Typed-Passphrase-42\n").unwrap();
    with_key(&config, "--passphrase-file", &pass, &["get", "typed"])
        .assert()
        .success()
        .stdout("v");
}

#[test]
fn ctrl_c_at_a_hidden_prompt_gives_the_terminal_its_echo_back() {
    let f = Fixture::new();
    // The shell traps (rather than ignores) SIGINT, so it survives to report the terminal
    // state while nebula-cred gets the default disposition.
    let line = format!(
        "trap 'echo interrupted' INT; {BIN} --config {} --key-file {} put typed; echo status=$?; stty -a",
        f.config.display(),
        f.key.display()
    );
    let out = on_terminal(&line, Some(("(input hidden): ", "\x03")));
    let shown = text(&out);
    assert!(shown.contains("status=130"), "{shown}");
    let modes = &shown[shown.find("status=130").unwrap()..];
    assert!(
        modes.contains(" echo ") && !modes.contains("-echo "),
        "echo left off after Ctrl-C: {shown}"
    );
    assert!(raw(&f.config(), "typed").is_none());
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn rotate_key_re_encrypts_everything_under_the_new_key() {
    let f = Fixture::new();
    for id in ["a", "b", "c"] {
        f.put(id, &format!("value-{id}"), &["--tag", "env=prod"]);
    }
    let before = raw(&f.config(), "b").unwrap();
    let new_key = f.path("new.key");
    keygen(&new_key);
    f.cmd(&["rotate-key", "--new-key-file", new_key.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains(": 3\n").and(predicate::str::contains("failed: 0")));
    let after = raw(&f.config(), "b").unwrap();
    assert_eq!(after.data.key_id, key_of(&new_key).key_id());
    assert_eq!(
        after.metadata, before.metadata,
        "metadata kept: the value did not change"
    );
    let with_new = |args: &[&str]| with_key(&f.config, "--key-file", &new_key, args);
    with_new(&["get", "b"]).assert().success().stdout("value-b");
    f.cmd(&["get", "b"]).assert().code(1);
    // Running it again finishes nothing more; the same key twice is refused.
    f.cmd(&["rotate-key", "--new-key-file", new_key.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("already under it: 3"));
    with_new(&["rotate-key", "--new-key-file", new_key.to_str().unwrap()])
        .assert()
        .code(2);
}

#[test]
fn an_interrupted_rotation_can_be_finished_with_the_new_key_already_in_use() {
    // Half rotated: `a` and `b` still under the old key, `c` already under the new one, and
    // the operator has switched to the new key.
    let f = Fixture::new();
    f.put("a", "value-a", &[]);
    f.put("b", "value-b", &[]);
    let new_key = f.path("new.key");
    keygen(&new_key);
    let new = new_key.to_str().unwrap();
    let with_new = |args: &[&str]| with_key(&f.config, "--key-file", &new_key, args);
    with_new(&["put", "c"]).write_stdin("value-c").assert().success();
    // Without the old key there is nothing to rotate from: say how to finish.
    with_new(&["rotate-key", "--new-key-file", new])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--old-key-file"));
    with_new(&[
        "rotate-key",
        "--new-key-file",
        new,
        "--old-key-file",
        f.key.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains(": 2\n").and(predicate::str::contains("already under it: 1")));
    for id in ["a", "b", "c"] {
        assert_eq!(raw(&f.config(), id).unwrap().data.key_id, key_of(&new_key).key_id());
        with_new(&["get", id]).assert().success().stdout(format!("value-{id}"));
    }
}

#[test]
fn rotate_key_never_undoes_a_write_made_while_it_runs() {
    const TOTAL: usize = 300;
    let f = Fixture::new();
    let old = f.key();
    let seeded = CredentialStore::new(provider(&f.config()), Keyring::new(old.clone()));
    let ids: Vec<CredentialId> = (0..TOTAL).map(|i| format!("r{i:03}").parse().unwrap()).collect();
    block_on(async {
        for id in &ids {
            seeded.put(id, b"original", Tags::new()).await.unwrap();
        }
    });
    let new_key = f.path("new.key");
    keygen(&new_key);
    let new = key_of(&new_key);
    let rotation = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&f.config)
        .arg("--key-file")
        .arg(&f.key)
        .arg("rotate-key")
        .arg("--new-key-file")
        .arg(&new_key)
        .env_remove("NEBULA_CREDENTIAL_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // An application already on the new key rewrites every third credential meanwhile,
    // from the last one down, so its writes cross the rotation's ascending pass.
    let live = CredentialStore::new(provider(&f.config()), Keyring::new(new.clone()).with_old_key(old));
    block_on(async {
        for id in ids.iter().step_by(3).rev() {
            live.put(id, b"rewritten", Tags::new()).await.unwrap();
        }
    });
    let out = rotation.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("{}", text(&out));
    let after = CredentialStore::new(provider(&f.config()), Keyring::new(new.clone()));
    block_on(async {
        for (i, id) in ids.iter().enumerate() {
            let value = after.get(id).await.unwrap();
            let expected: &[u8] = if i % 3 == 0 { b"rewritten" } else { b"original" };
            assert_eq!(value.expose_secret(), expected, "{id}");
        }
    });
    for id in &ids {
        assert_eq!(raw(&f.config(), id.as_str()).unwrap().data.key_id, new.key_id());
    }
}

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

#[test]
fn doctor_probes_each_step_with_its_latency() {
    let f = Fixture::new();
    let out = bare()
        .args(["--config", f.config.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8(out.stdout).unwrap();
    for step in ["config", "open", "check", "store", "read", "list", "delete"] {
        assert!(
            report.lines().any(|l| l.starts_with("ok") && l.contains(step)),
            "{step} missing: {report}"
        );
    }
    assert_eq!(
        report.matches(" ms ").count(),
        6,
        "a latency per probing step: {report}"
    );
    assert!(report.contains("conditional store yes"), "{report}");
    assert!(raw(&f.config(), "_nebula_cred_doctor_probe").is_none(), "probe deleted");

    // The environment instead of a file: memory, in one process.
    bare()
        .arg("doctor")
        .env("NEBULA_CREDENTIAL_PROVIDER", "memory")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("configuration from the environment")
                .and(predicate::str::contains("provider memory, valid")),
        );
}

#[test]
fn doctor_shows_the_failing_step_and_the_library_advice() {
    let f = Fixture::new();
    // A reserved id taken by a credential doctor did not write: never overwritten.
    f.put("_nebula_cred_doctor_probe", SECRET, &[]);
    let before = raw(&f.config(), "_nebula_cred_doctor_probe").unwrap();
    let out = bare()
        .args(["--config", f.config.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("FAIL  store"), "{}", text(&out));
    assert!(text(&out).contains("reserved"), "{}", text(&out));
    assert_eq!(raw(&f.config(), "_nebula_cred_doctor_probe").unwrap(), before);

    // A base path under a regular file: the config is valid, opening it fails.
    let file = f.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    let bad = f.path("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "provider = \"local\"\nbase_path = {:?}\n",
            file.join("sub").display().to_string()
        ),
    )
    .unwrap();
    let out = bare()
        .args(["--config", bad.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = text(&out);
    assert!(report.contains("ok    config"), "{report}");
    assert!(report.contains("FAIL  open") && report.contains("kind: "), "{report}");

    // An invalid config fails at the first step, naming the field.
    std::fs::write(&bad, "provider = \"local\"\nbase_path = \"relative/path\"\n").unwrap();
    let out = bare()
        .args(["--config", bad.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("FAIL  config") && text(&out).contains("base_path"),
        "{}",
        text(&out)
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in [
        "put",
        "get",
        "list",
        "exists",
        "delete",
        "rotate-key",
        "migrate",
        "doctor",
        "keygen",
    ] {
        bare()
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    bare()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit status:").and(predicate::str::contains("3  not found")));
}

#[cfg(unix)]
#[test]
fn keygen_writes_a_private_key_file_and_never_replaces_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let out = bare()
        .args(["keygen", "--out", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = key_of(&path);
    assert!(text(&out).contains(key.key_id()));
    assert!(!text(&out).contains(key.to_base64().expose_secret()));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    bare()
        .args(["keygen", "--out", path.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("never replaces"));
    assert_eq!(key_of(&path).key_id(), key.key_id());
    bare().arg("keygen").assert().code(2);
}
