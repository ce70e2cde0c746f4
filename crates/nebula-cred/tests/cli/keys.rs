//! Where the key comes from (environment, file, passphrase with the configured salt), the
//! hidden passphrase prompt, and `keygen`.

use nebula_credential::secrecy::{ExposeSecret, SecretString};
use nebula_credential::{CredentialStore, EncryptionKey, Keyring};
use predicates::prelude::*;

use crate::support::*;

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
    // Deliberately another key than the store's (from_env is under the key file's key).
    by_pass(&["put", "by_pass", "--new-key"])
        .write_stdin("pv")
        .assert()
        .success();
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
    let out = on_terminal_answering(
        &line,
        &[
            ("passphrase: ", "Typed-Passphrase-42\n"),
            ("passphrase (again): ", "Typed-Passphrase-42\n"),
        ],
    );
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
