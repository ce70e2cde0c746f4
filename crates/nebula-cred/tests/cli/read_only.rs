//! Read-only commands open the store read-only (defect 3) and never create a directory
//! (defect 5). The proof holds for root too: nothing under the store changes, not even a
//! modification time (a probe file created and removed moves the directory's), while the
//! directory also has no write permission (which stops everyone but root).

use predicates::prelude::*;

use crate::support::*;

#[cfg(unix)]
#[test]
fn read_only_commands_work_on_a_read_only_store_and_change_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.put("api", SECRET, &["--tag", "env=prod"]);
    f.put("db", "v", &[]);
    let store = f.path("store");
    let target = write_local_config(f.dir.path(), "target", "t.toml");
    for entry in std::fs::read_dir(&store).unwrap() {
        age(&entry.unwrap().path());
    }
    age(&store);
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = snapshot(&store);
    let config = f.config.to_str().unwrap().to_string();
    let runs: Vec<Vec<&str>> = vec![
        vec!["list"],
        vec!["list", "--json"],
        vec!["list", "--expired"],
        vec!["get", "api"],
        vec!["get", "api", "--metadata"],
        vec!["exists", "api"],
        vec!["rotate-key", "--dry-run"],
        vec!["config", "show"],
    ];
    let mut outs: Vec<(String, std::process::Output)> = runs
        .iter()
        .map(|args| (args.join(" "), f.cmd(args).output().unwrap()))
        .collect();
    outs.push((
        "migrate --from".into(),
        migrate(&f.config, &target, &["--verify"]).output().unwrap(),
    ));
    outs.push((
        "migrate from --config".into(),
        bare()
            .args(["--config", &config, "migrate", "--to", target.to_str().unwrap()])
            .output()
            .unwrap(),
    ));
    let after = snapshot(&store);
    let put = f.cmd(&["put", "new"]).write_stdin("v").output().unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    for (what, out) in &outs {
        assert!(out.status.success(), "{what}: {}", text(out));
    }
    assert_eq!(String::from_utf8_lossy(&outs[3].1.stdout), SECRET);
    assert_eq!(count_of(&text(&outs[8].1), "copied"), 2, "{}", text(&outs[8].1));
    assert_eq!(before, after, "a read-only command wrote to the store");
    if !is_root() {
        // A write needs write access: permission denied, 5, like any missing permission.
        assert_eq!(put.status.code(), Some(5), "{}", text(&put));
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::metadata(dir.path()).unwrap().uid() == 0
}

/// The implicit default location: under HOME, as the library's platform data directory.
fn implicit(home: &std::path::Path, args: &[&str]) -> assert_cmd::Command {
    let mut c = bare();
    c.env("HOME", home).env_remove("XDG_DATA_HOME").args(args);
    c
}

#[test]
fn without_configuration_the_cli_says_where_it_looked_and_creates_nothing() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join(".local/share");
    let dir = data.join("nebula-credential/credentials");
    let shown = dir.display().to_string();
    implicit(home.path(), &["list"])
        .assert()
        .success()
        .stderr(predicate::str::contains("hint: no configuration was given").and(predicate::str::contains(&shown)));
    implicit(home.path(), &["exists", "api"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(&shown));
    implicit(home.path(), &["get", "api", "--metadata"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(&shown));
    implicit(home.path(), &["delete", "api"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to delete"));
    implicit(home.path(), &["-v", "list"])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!("using local at {shown}")));
    implicit(home.path(), &["config", "show"]).assert().success().stdout(
        predicate::str::contains(format!("location: {shown}")).and(predicate::str::contains("does not exist yet")),
    );
    assert!(!data.exists(), "a read-only command created {}", data.display());

    // Writing creates it; the hint stays for empty results only.
    let key = home.path().join("k.key");
    keygen(&key);
    implicit(home.path(), &["--key-file", key.to_str().unwrap(), "put", "api"])
        .write_stdin("v")
        .assert()
        .success();
    assert!(dir.is_dir());
    implicit(home.path(), &["list"]).assert().success().stderr("");
    // doctor prints the resolved location.
    implicit(home.path(), &["doctor"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("using local at {shown}")));
    // With a configuration, no hint.
    let f = Fixture::new();
    f.cmd(&["list"]).assert().success().stderr("");
}

#[test]
fn a_missing_local_directory_is_named_local_in_errors_not_memory() {
    let home = tempfile::tempdir().unwrap();
    for args in [&["get", "api", "--metadata"][..], &["-v", "get", "api", "--metadata"]] {
        let out = implicit(home.path(), args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let said = text(&out);
        assert!(said.contains("not found on local"), "{said}");
        assert!(!said.contains("memory"), "{said}");
    }
    let f = Fixture::new();
    let out = f.cmd(&["get", "api", "--metadata"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("not found on local"), "{}", text(&out));
}
