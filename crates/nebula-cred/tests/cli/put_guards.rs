//! `put`'s guards against losing data: another key than the record's or the store's is
//! refused (defect 1), a typed passphrase is confirmed, and replacing a value keeps its
//! tags and expiry (defect 2).

use predicates::prelude::*;

use crate::support::*;

#[test]
fn put_refuses_a_key_other_than_the_records_or_the_stores_naming_both_ids() {
    let f = Fixture::new();
    let other = f.path("other.key");
    keygen(&other);
    // An empty store takes any key.
    f.put("a", "value-a", &[]);
    let before = raw(&f.config(), "a").unwrap();
    let ours = f.key().key_id().to_string();
    let theirs = key_of(&other).key_id().to_string();
    let with_other = |args: &[&str]| with_key(&f.config, "--key-file", &other, args);

    // Replacing a record under another key.
    let out = with_other(&["put", "a"]).write_stdin("typo").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&ours) && said.contains(&theirs),
        "names both key ids: {said}"
    );
    assert!(said.contains("--new-key"), "{said}");
    assert_eq!(raw(&f.config(), "a").unwrap(), before, "the record was replaced");

    // A new id in a store whose records are under another key.
    let out = with_other(&["put", "b"]).write_stdin("v").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&ours) && text(&out).contains(&theirs),
        "{}",
        text(&out)
    );
    assert!(raw(&f.config(), "b").is_none());

    // Intended: --new-key.
    with_other(&["put", "b", "--new-key"])
        .write_stdin("v")
        .assert()
        .success();
    assert_eq!(raw(&f.config(), "b").unwrap().data.key_id, theirs);
    // Now the store holds both keys: a new id under either is accepted.
    with_other(&["put", "c"]).write_stdin("v").assert().success();
    f.put("d", "v", &[]);
    // The record's own key is what counts for an existing id.
    with_other(&["put", "b"]).write_stdin("v2").assert().success();
    f.cmd(&["put", "b"]).write_stdin("v3").assert().code(2);
}

#[test]
fn a_passphrase_typed_for_a_write_is_asked_twice_and_must_match() {
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
    let put = format!("{BIN} --config {} put typed @{}", config.display(), value.display());
    let out = on_terminal_answering(
        &put,
        &[
            ("passphrase: ", "Typed-Passphrase-42\n"),
            ("passphrase (again): ", "Typed-Passphrase-4\n"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("differ"), "{}", text(&out));
    assert!(!text(&out).contains("Typed-Passphrase"), "{}", text(&out));
    assert!(raw(&f.config(), "typed").is_none(), "stored after a mismatch");

    let out = on_terminal_answering(
        &put,
        &[
            ("passphrase: ", "Typed-Passphrase-42\n"),
            ("passphrase (again): ", "Typed-Passphrase-42\n"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // Reading asks once: a wrong passphrase cannot harm a read.
    let get = format!("{BIN} --config {} get typed --reveal", config.display());
    let out = on_terminal_answering(&get, &[("passphrase: ", "Typed-Passphrase-42\n")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("(again)"), "{}", text(&out));
}

#[test]
fn replacing_a_value_keeps_its_tags_and_expiry_unless_told_and_says_what_changed() {
    let f = Fixture::new();
    f.put("api", "v1", &["--tag", "env=prod", "--expires", "2999-01-01"]);
    let meta = || raw(&f.config(), "api").unwrap().metadata;

    f.cmd(&["put", "api"])
        .write_stdin("v2")
        .assert()
        .success()
        .stderr(predicate::str::contains("tags kept: env=prod").and(predicate::str::contains("expiry kept")));
    let m = meta();
    assert_eq!((m.version, m.tags.get("env").map(String::as_str)), (2, Some("prod")));
    assert_eq!(m.expires_at.unwrap().to_rfc3339(), "2999-01-01T00:00:00+00:00");

    // --tag adds to (or changes) the tags kept.
    f.cmd(&["put", "api", "--tag", "team=core"])
        .write_stdin("v3")
        .assert()
        .success()
        .stderr(predicate::str::contains("tags changed: env=prod -> env=prod,team=core"));
    assert_eq!(meta().tags.len(), 2);

    // --clear-tags drops them, --no-expiry the expiry.
    f.cmd(&["put", "api", "--clear-tags", "--tag", "env=dev", "--no-expiry"])
        .write_stdin("v4")
        .assert()
        .success()
        .stderr(
            predicate::str::contains("tags changed: env=prod,team=core -> env=dev").and(predicate::str::contains(
                "expiry changed: 2999-01-01T00:00:00Z -> never",
            )),
        );
    let m = meta();
    assert_eq!(m.tags.len(), 1);
    assert_eq!(m.expires_at, None);

    // A new expiry replaces the old one.
    f.cmd(&["put", "api", "--expires", "2998-06-01T00:00:00Z"])
        .write_stdin("v5")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "expiry changed: never -> 2998-06-01T00:00:00Z",
        ));
    f.cmd(&["get", "api"]).assert().success().stdout("v5");
    f.cmd(&["put", "api", "--expires", "1d", "--no-expiry"])
        .write_stdin("x")
        .assert()
        .code(2);
}
