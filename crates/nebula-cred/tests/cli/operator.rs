//! The smaller operator mistakes of defect 8: `-` and `@FILE` values, a trailing line
//! break, `get --reveal` on a terminal, doctor's config error once, migrate and the
//! global options, exit statuses per cause, the value limit, expiry forms.

use predicates::prelude::*;

use crate::support::*;

#[test]
fn dash_and_at_file_are_the_stdin_and_file_markers() {
    let f = Fixture::new();
    f.cmd(&["put", "a", "-"]).write_stdin("from-stdin").assert().success();
    f.cmd(&["get", "a"]).assert().success().stdout("from-stdin");
    std::fs::write(f.path("v.txt"), "from-file").unwrap();
    let at = format!("@{}", f.path("v.txt").display());
    f.cmd(&["put", "b", &at]).assert().success();
    f.cmd(&["get", "b"]).assert().success().stdout("from-file");
    // Options may follow the marker.
    f.cmd(&["put", "c", &at, "--tag", "env=prod", "--expires", "90d"])
        .assert()
        .success();
    f.cmd(&["get", "c", "--metadata"])
        .assert()
        .success()
        .stdout(predicate::str::contains("env=prod"));
    f.cmd(&["put", "d", "-", "--trim"])
        .write_stdin("v\n")
        .assert()
        .success();
    f.cmd(&["get", "d"]).assert().success().stdout("v");
    // A value after a marker is still never echoed.
    let out = f.cmd(&["put", "e", "-", "hunter2"]).write_stdin("v").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    let out = f
        .cmd(&["put", "e", "-", "--hunter2"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    // Twice, or with --from-file too: refused.
    f.cmd(&["put", "c", "-", &at]).write_stdin("v").assert().code(2);
    f.cmd(&["put", "c", &at, "--from-file", f.path("v.txt").to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("once"));
    // A missing value file is a usage error, like a missing config or key file.
    f.cmd(&["put", "c", "@/nonexistent/value"]).assert().code(2);
}

#[test]
fn a_trailing_line_break_is_kept_with_a_warning_or_trimmed() {
    let f = Fixture::new();
    f.cmd(&["put", "nl"])
        .write_stdin("token\n")
        .assert()
        .success()
        .stderr(predicate::str::contains("ends with a line break").and(predicate::str::contains("--trim")));
    f.cmd(&["get", "nl"]).assert().success().stdout("token\n");
    f.cmd(&["put", "nl", "--trim"])
        .write_stdin("token\r\n")
        .assert()
        .success()
        .stderr("");
    f.cmd(&["get", "nl"]).assert().success().stdout("token");
    f.cmd(&["put", "x", "--trim"])
        .write_stdin("\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("empty"));
}

#[test]
fn get_reveal_on_a_terminal_ends_the_line() {
    let f = Fixture::new();
    f.put("api", SECRET, &[]);
    let line = format!(
        "{BIN} --config {} --key-file {} get api --reveal; printf 'after'",
        f.config.display(),
        f.key.display()
    );
    let out = on_terminal(&line, None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("{SECRET}\r\nafter")), "{:?}", text(&out));
    // Redirected, the bytes stay exact.
    f.cmd(&["get", "api"]).assert().success().stdout(SECRET);
}

#[test]
fn doctor_reports_a_config_error_once() {
    let f = Fixture::new();
    let bad = f.path("bad.toml");
    std::fs::write(&bad, "provider = \"local\"\nbase_path = \"relative/path\"\nextra = 1\n").unwrap();
    let out = bare()
        .args(["--config", bad.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(text(&out).matches("extra").count(), 1, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "{}", text(&out));
}

#[test]
fn migrate_takes_the_global_config_as_source_and_refuses_a_key() {
    let f = Fixture::new();
    f.put("a", SECRET, &[]);
    let to = write_local_config(f.dir.path(), "target", "t.toml");
    let config = f.config.to_str().unwrap();
    let key = f.key.to_str().unwrap();
    bare()
        .args([
            "--key-file",
            key,
            "migrate",
            "--from",
            config,
            "--to",
            to.to_str().unwrap(),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs no key").and(predicate::str::contains("--key-file")));
    bare()
        .args([
            "--config",
            config,
            "migrate",
            "--from",
            config,
            "--to",
            to.to_str().unwrap(),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not both"));
    bare()
        .args(["migrate", "--to", to.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs a source"));
    let out = bare()
        .args(["--config", config, "migrate", "--to", to.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count_of(&text(&out), "copied"), 1);
    assert!(raw(&load_config(&to), "a").is_some());
}

#[test]
fn the_same_cause_gives_the_same_exit_status() {
    let f = Fixture::new();
    // A file named on the command line that cannot be read: 2, whichever file.
    for args in [
        vec!["--config", "/nonexistent/c.toml", "list"],
        vec![
            "--config",
            f.config.to_str().unwrap(),
            "--key-file",
            "/nonexistent/k",
            "get",
            "x",
        ],
        vec![
            "--config",
            f.config.to_str().unwrap(),
            "--passphrase-file",
            "/nonexistent/p",
            "get",
            "x",
        ],
        vec![
            "--config",
            f.config.to_str().unwrap(),
            "--key-file",
            f.key.to_str().unwrap(),
            "put",
            "x",
            "--from-file",
            "/nonexistent/v",
        ],
    ] {
        let out = bare().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("/nonexistent/"), "{args:?}: {}", text(&out));
    }
    // The status table is in --help.
    bare()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit status:").and(predicate::str::contains("5  permission denied")));
}

#[test]
fn the_size_error_names_the_value_limit() {
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
    let put = |value: &str| {
        with_key(&small, "--key-file", &f.key, &["put", "v"])
            .write_stdin(value.to_string())
            .output()
            .unwrap()
    };
    // Smaller than the record limit, larger than the value limit.
    let out = put(&"x".repeat(1800));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    let limit: usize = said
        .split("stores values up to ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no value limit in {said}"));
    assert!(limit < 2000 * 3 / 4 && limit > 1000, "{said}");
    assert!(said.contains("1800 bytes") && said.contains("2000"), "{said}");
    // The limit is exact: it fits, one more byte does not.
    assert!(put(&"x".repeat(limit)).status.success());
    assert_eq!(put(&"x".repeat(limit + 1)).status.code(), Some(1));
}

#[test]
fn expires_takes_a_date_or_a_duration() {
    let f = Fixture::new();
    f.put("d", "v", &["--expires", "2999-12-31"]);
    let m = raw(&f.config(), "d").unwrap().metadata;
    assert_eq!(m.expires_at.unwrap().to_rfc3339(), "2999-12-31T00:00:00+00:00");
    let before = chrono::Utc::now();
    f.put("r", "v", &["--expires", "30d"]);
    let at = raw(&f.config(), "r").unwrap().metadata.expires_at.unwrap();
    let days = (at - before).num_hours() as f64 / 24.0;
    assert!((29.9..=30.1).contains(&days), "{at}");
    f.cmd(&["put", "x", "--expires", "30 days"])
        .write_stdin("v")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("90d"));
}

#[test]
fn an_unreadable_at_file_is_not_named_since_it_may_be_a_secret_typed_after_a_stray_at() {
    let f = Fixture::new();
    // `put db @hunter2...`: the operator meant the value, not a file of that name.
    let out = f.cmd(&["-v", "put", "db", &format!("@{SECRET}")]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains(SECRET), "{}", text(&out));
    assert!(text(&out).contains("after @"), "{}", text(&out));
    // --from-file names a file for sure: its path is said.
    f.cmd(&["put", "db", "--from-file", "/nonexistent/value-file"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/value-file"));
}

#[test]
fn global_options_after_the_stdin_marker_are_options_not_values() {
    let f = Fixture::new();
    // `put ID --quiet -` worked; `put ID - --quiet` was refused as a value argument.
    f.cmd(&["put", "q", "-", "--quiet"])
        .write_stdin("v1")
        .assert()
        .success()
        .stdout("")
        .stderr("");
    f.cmd(&["put", "q", "-", "-v", "--tag", "a=b"])
        .write_stdin("v2")
        .assert()
        .success()
        .stderr(predicate::str::contains("using local at"));
    // A key file given after the marker is the one used (here: the wrong key, refused).
    let other = f.path("other.key");
    keygen(&other);
    f.cmd(&["put", "q", "-", "--key-file", other.to_str().unwrap()])
        .write_stdin("v3")
        .assert()
        .code(2);
    f.cmd(&["get", "q"]).assert().success().stdout("v2");
    // Anything else after the marker is still refused unseen.
    let out = f
        .cmd(&["put", "q", "-", "--quiet", "hunter2-typed"])
        .write_stdin("v4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out).contains("hunter2-typed"), "{}", text(&out));
}
