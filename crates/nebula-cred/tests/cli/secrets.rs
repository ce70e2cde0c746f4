//! No secret reaches stdout, stderr or the files unless asked for, and a value is never
//! taken from the command line.

use crate::support::*;

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
        vec!["--help"],
    ];
    let migrated = migrate(&f.config, &target, &["--verify"]).output().unwrap();
    for (args, out) in runs
        .iter()
        .map(|args| (args.clone(), f.cmd(args).output().unwrap()))
        .chain([(vec!["migrate"], migrated)])
    {
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
