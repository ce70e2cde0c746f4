//! `rotate-key`: re-encrypts everything, can be finished after an interruption, and never
//! undoes a concurrent write.

use nebula_credential::secrecy::ExposeSecret;
use nebula_credential::{CredentialId, CredentialStore, Keyring, Tags};
use predicates::prelude::*;

use crate::support::*;

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
    // Another key than the store's: refused unless --new-key says it is intended.
    with_new(&["put", "c"]).write_stdin("value-c").assert().code(2);
    with_new(&["put", "c", "--new-key"])
        .write_stdin("value-c")
        .assert()
        .success();
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
    let live = CredentialStore::new(
        provider(&f.config()),
        Keyring::new(new.clone()).with_old_key(old).unwrap(),
    );
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
fn rotate_key_dry_run_counts_per_key_id_and_the_safe_order_is_printed() {
    let f = Fixture::new();
    f.put("a", "value-a", &[]);
    f.put("b", "value-b", &[]);
    let new_key = f.path("new.key");
    keygen(&new_key);
    let new = new_key.to_str().unwrap();
    with_key(&f.config, "--key-file", &new_key, &["put", "c", "--new-key"])
        .write_stdin("value-c")
        .assert()
        .success();
    let before: Vec<_> = ["a", "b", "c"].iter().map(|id| raw(&f.config(), id).unwrap()).collect();
    let (old_id, new_id) = (f.key().key_id().to_string(), key_of(&new_key).key_id().to_string());
    // No key needed to count.
    let out = bare()
        .args([
            "--config",
            f.config.to_str().unwrap(),
            "rotate-key",
            "--dry-run",
            "--new-key-file",
            new,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    let count = |id: &str| {
        said.lines()
            .find(|l| l.trim_start().starts_with(id))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no count for {id}: {said}"))
    };
    assert_eq!((count(&old_id), count(&new_id)), (2, 1), "{said}");
    assert!(
        said.contains(&format!("would re-encrypt under key {new_id}: 2")),
        "{said}"
    );
    let after: Vec<_> = ["a", "b", "c"].iter().map(|id| raw(&f.config(), id).unwrap()).collect();
    assert_eq!(before, after, "a dry run wrote");

    // The real run ends with the safe order; --help says it too.
    f.cmd(&["rotate-key", "--new-key-file", new, "--old-key-file", new])
        .assert()
        .success()
        .stderr(predicate::str::contains("additional").and(predicate::str::contains("only key")));
    bare()
        .args(["rotate-key", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("additional (old) key").and(predicate::str::contains("--dry-run")));
}
