//! What the command tests share: the binary, a local store with its key ([`Fixture`]),
//! commands with a clean environment, a pseudo-terminal, and readers of what was stored.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use assert_cmd::Command;
use nebula_credential::secrecy::SecretString;
use nebula_credential::{CredentialId, EncryptionKey, StorageConfig, StorageProvider, Stored};

pub(crate) const SECRET: &str = "hunter2-Very-Secret-Value";
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_nebula-cred");

/// A local store in a temporary directory, its config file and a key file.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    pub(crate) key: PathBuf,
}

impl Fixture {
    pub(crate) fn new() -> Self {
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

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `nebula-cred --config C --key-file K ARGS…`, with no key or provider in the environment.
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bare();
        c.arg("--config")
            .arg(&self.config)
            .arg("--key-file")
            .arg(&self.key)
            .args(args);
        c
    }

    pub(crate) fn put(&self, id: &str, value: &str, extra: &[&str]) {
        let mut args = vec!["put", id];
        args.extend_from_slice(extra);
        self.cmd(&args).write_stdin(value).assert().success();
    }

    pub(crate) fn key(&self) -> EncryptionKey {
        key_of(&self.key)
    }

    pub(crate) fn config(&self) -> StorageConfig {
        load_config(&self.config)
    }
}

/// `nebula-cred keygen --out PATH`, which must succeed.
pub(crate) fn keygen(path: &Path) {
    bare().arg("keygen").arg("--out").arg(path).assert().success();
}

/// `nebula-cred --config CONFIG KEY_FLAG KEY ARGS…` (`--key-file` or `--passphrase-file`).
pub(crate) fn with_key(config: &Path, key_flag: &str, key: &Path, args: &[&str]) -> Command {
    let mut c = bare();
    c.arg("--config").arg(config).arg(key_flag).arg(key).args(args);
    c
}

/// `nebula-cred migrate --from FROM --to TO EXTRA…`.
pub(crate) fn migrate(from: &Path, to: &Path, extra: &[&str]) -> Command {
    let mut c = bare();
    c.arg("migrate").arg("--from").arg(from).arg("--to").arg(to).args(extra);
    c
}

/// The variables the binary reads, removed by [`bare`].
pub(crate) const VARS: [&str; 7] = [
    "NEBULA_CREDENTIAL_KEY",
    "NEBULA_CREDENTIAL_SALT",
    "NEBULA_CREDENTIAL_PROVIDER",
    "NEBULA_CREDENTIAL_DIR",
    "NEBULA_LOCAL_BASE_PATH",
    "NEBULA_CRED_CONFIG",
    "NEBULA_CRED_PROFILE",
];

/// A configuration directory that does not exist, so no default file of the machine
/// running the tests is read.
pub(crate) const NO_CONFIG_HOME: &str = "/nonexistent/nebula-cred-tests/config";

/// The binary with the variables it reads removed (and no default configuration file).
pub(crate) fn bare() -> Command {
    let mut c = Command::new(BIN);
    for var in VARS {
        c.env_remove(var);
    }
    c.env("XDG_CONFIG_HOME", NO_CONFIG_HOME);
    c
}

pub(crate) fn write_local_config(dir: &Path, store: &str, name: &str) -> PathBuf {
    let path = dir.join(name);
    let base = dir.join(store);
    std::fs::write(
        &path,
        format!("provider = \"local\"\nbase_path = {:?}\n", base.display().to_string()),
    )
    .unwrap();
    path
}

pub(crate) fn key_of(path: &Path) -> EncryptionKey {
    EncryptionKey::from_base64(&SecretString::from(std::fs::read_to_string(path).unwrap())).unwrap()
}

pub(crate) fn load_config(path: &Path) -> StorageConfig {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub(crate) fn provider(config: &StorageConfig) -> Arc<dyn StorageProvider> {
    block_on(nebula_credential::open(config)).unwrap()
}

pub(crate) fn raw(config: &StorageConfig, id: &str) -> Option<Stored> {
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
pub(crate) fn on_terminal(line: &str, answer: Option<(&str, &str)>) -> Output {
    on_terminal_answering(line, answer.as_slice())
}

/// Like [`on_terminal`], answering each `(prompt, typed)` in turn: `typed` goes to the
/// terminal once `prompt` has been shown after the previous answer.
pub(crate) fn on_terminal_answering(line: &str, answers: &[(&str, &str)]) -> Output {
    use std::io::{Read, Write};
    use std::sync::Mutex;
    let mut command = std::process::Command::new("script");
    for var in VARS {
        command.env_remove(var);
    }
    // `script` runs the line with `$SHELL -c`: pin it, so the line meets the same shell
    // (dash, which does not exec a lone command) wherever the tests run.
    let mut child = command
        .args(["-qec", line, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .env("XDG_CONFIG_HOME", NO_CONFIG_HOME)
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
    let mut from = 0;
    for (prompt, typed) in answers {
        let started = std::time::Instant::now();
        loop {
            let shown = seen.lock().unwrap();
            if let Some(at) = find(&shown[from..], prompt) {
                from += at + prompt.len();
                break;
            }
            drop(shown);
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

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir`, concatenated, to prove nothing is stored in clear.
pub(crate) fn all_file_bytes(dir: &Path) -> Vec<u8> {
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
pub(crate) fn count_of(summary: &str, label: &str) -> usize {
    summary
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("  ")?.strip_prefix(label)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no line {label:?} in:\n{summary}"))
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    find(haystack, needle).is_some()
}

/// Where `needle` first starts in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &str) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle.as_bytes())
}

/// Every entry under `dir` with its modification time, and the directory's own: equal
/// snapshots mean nothing was created, removed or written there, whoever the user
/// (root ignores permission bits, not modification times).
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut entries = vec![(dir.to_path_buf(), std::fs::metadata(dir).unwrap().modified().unwrap())];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            entries.extend(snapshot(&path));
        } else {
            entries.push((path.clone(), std::fs::metadata(&path).unwrap().modified().unwrap()));
        }
    }
    entries.sort();
    entries
}

/// Sets the modification time of `path` (file or directory) an hour back, so any later
/// change shows in a [`snapshot`] whatever the file system's time resolution.
pub(crate) fn age(path: &Path) {
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(path).unwrap().set_modified(past).unwrap();
}

/// Decodes standard base64 (a salt or a key as the CLI prints it).
pub(crate) fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
