//! `export` and `import` (unix: file modes): a round trip into a fresh store keeps values,
//! tags and expiry; files are created 0600 and never replaced without `--force`; values
//! reach a terminal only with `--reveal`; import is conditional (`--dry-run`,
//! `--overwrite`) and refuses a key other than the store's.

use std::os::unix::fs::PermissionsExt;

use predicates::prelude::*;

use crate::support::*;

const MULTILINE: &str = "-----BEGIN KEY-----\nabc \"quoted\" $HOME \\n it's\n-----END KEY-----\n";

/// A store with text, multi-line and binary values, tags and expiry.
fn seeded() -> Fixture {
    let f = Fixture::new();
    f.put("api_key", SECRET, &["--tag", "env=prod", "--tag", "team=core"]);
    f.put("tls_key", MULTILINE, &["--expires", "2999-01-01T00:00:00.123Z"]);
    std::fs::write(f.path("blob"), [0u8, 0xff, b'\n', 7]).unwrap();
    let blob = f.path("blob");
    f.cmd(&[
        "put",
        "blob",
        "--from-file",
        blob.to_str().unwrap(),
        "--tag",
        "kind=bin",
    ])
    .assert()
    .success();
    f
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn export_to(f: &Fixture, format: &str, name: &str) -> std::path::PathBuf {
    let path = f.path(name);
    f.cmd(&["export", "--format", format, "--output", path.to_str().unwrap()])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("exported").and(predicate::str::contains("0600")));
    path
}

#[test]
fn a_jsonl_round_trip_into_a_fresh_store_keeps_values_tags_and_expiry() {
    let a = seeded();
    let file = export_to(&a, "jsonl", "backup.jsonl");
    assert_eq!(mode(&file), 0o600);
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 3, "{exported}");
    assert!(
        exported.contains("\"expires\":\"2999-01-01T00:00:00.123Z\""),
        "{exported}"
    );
    assert!(
        exported.contains("\"value_base64\""),
        "binary values as base64: {exported}"
    );

    // A fresh store under another key.
    let b = Fixture::new();
    let out = b.cmd(&["import", file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(SECRET));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert_eq!(count_of(&summary, "imported"), 3, "{summary}");
    assert_eq!(count_of(&summary, "failed"), 0, "{summary}");

    // Exported again, the new store gives the same file: same ids, values, tags, expiry.
    let again = export_to(&b, "jsonl", "again.jsonl");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), exported);
    b.cmd(&["get", "tls_key"]).assert().success().stdout(MULTILINE);
    let blob = b.cmd(&["get", "blob"]).output().unwrap();
    assert_eq!(blob.stdout, [0u8, 0xff, b'\n', 7]);

    // Importing the same file again writes nothing: everything is already present.
    let out = b.cmd(&["import", file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert_eq!(count_of(&summary, "already present"), 3, "{summary}");
    b.cmd(&["get", "api_key", "--metadata"])
        .assert()
        .stdout(predicate::str::contains("version:  1"));
}

#[test]
fn export_pipes_into_import_from_stdin() {
    let a = seeded();
    let exported = a.cmd(&["export", "--format", "jsonl"]).output().unwrap();
    assert!(exported.status.success(), "{}", text(&exported));
    let b = Fixture::new();
    let out = b
        .cmd(&["import", "-"])
        .write_stdin(exported.stdout.clone())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("import stdin -> local: 3 credential(s)")
    );
    let again = b.cmd(&["export", "--format", "jsonl"]).output().unwrap();
    assert_eq!(again.stdout, exported.stdout);
}

#[test]
fn a_dry_run_changes_nothing() {
    let a = seeded();
    let file = export_to(&a, "jsonl", "backup.jsonl");
    let b = Fixture::new();
    let out = b
        .cmd(&["import", file.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.starts_with("dry run, nothing written"), "{summary}");
    assert_eq!(count_of(&summary, "imported"), 3, "{summary}");
    b.cmd(&["list", "--ids-only"]).assert().success().stdout("");
}

#[test]
fn import_leaves_different_records_alone_unless_overwrite() {
    let f = seeded();
    let file = f.path("changed.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"api_key\",\"value\":\"new-value\",\"tags\":{\"env\":\"prod\",\"team\":\"core\"}}\n\
         {\"id\":\"fresh\",\"value\":\"fresh-value\"}\n",
    )
    .unwrap();
    let out = f.cmd(&["import", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert_eq!(count_of(&summary, "not overwritten"), 1, "{summary}");
    assert_eq!(count_of(&summary, "imported"), 1, "{summary}");
    f.cmd(&["get", "api_key"]).assert().stdout(SECRET);

    // A dry run with --overwrite says what it would replace, and replaces nothing.
    let out = f
        .cmd(&["import", file.to_str().unwrap(), "--overwrite", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count_of(&String::from_utf8(out.stdout).unwrap(), "overwritten"), 1);
    f.cmd(&["get", "api_key"]).assert().stdout(SECRET);

    let out = f
        .cmd(&["import", file.to_str().unwrap(), "--overwrite"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert_eq!(count_of(&summary, "overwritten"), 1, "{summary}");
    assert_eq!(count_of(&summary, "already present"), 1, "{summary}");
    f.cmd(&["get", "api_key"]).assert().stdout("new-value");
    f.cmd(&["get", "api_key", "--metadata"])
        .assert()
        .stdout(predicate::str::contains("version:  2").and(predicate::str::contains("env=prod,team=core")));
}

#[test]
fn dotenv_round_trips_values_under_variable_names() {
    let f = Fixture::new();
    f.put("api_key", SECRET, &[]);
    f.put("tls-key", MULTILINE, &[]);
    let file = export_to(&f, "dotenv", "app.env");
    assert_eq!(mode(&file), 0o600);
    let text_file = std::fs::read_to_string(&file).unwrap();
    assert!(text_file.contains(&format!("API_KEY='{SECRET}'\n")), "{text_file}");
    assert!(
        text_file.starts_with("API_KEY=") && text_file.contains("\nTLS_KEY=\""),
        "{text_file}"
    );

    let b = Fixture::new();
    let out = b
        .cmd(&["import", file.to_str().unwrap(), "--tag", "from=dotenv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    b.cmd(&["get", "api_key"]).assert().success().stdout(SECRET);
    b.cmd(&["get", "tls_key"]).assert().success().stdout(MULTILINE);
    b.cmd(&["get", "tls_key", "--metadata"])
        .assert()
        .stdout(predicate::str::contains("from=dotenv"));

    // A binary value has no dotenv form: refused, naming the id, no file left behind.
    std::fs::write(f.path("blob"), [0u8, 1]).unwrap();
    let blob = f.path("blob");
    f.cmd(&["put", "blob", "--from-file", blob.to_str().unwrap()])
        .assert()
        .success();
    let refused = f.path("refused.env");
    f.cmd(&["export", "--format", "dotenv", "--output", refused.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'blob'").and(predicate::str::contains("--format jsonl")));
    assert!(!refused.exists());
}

#[test]
fn export_never_replaces_a_file_without_force_and_makes_it_private() {
    let f = seeded();
    let file = f.path("out.jsonl");
    std::fs::write(&file, "keep me").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    f.cmd(&["export", "--format", "jsonl", "--output", file.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    f.cmd(&[
        "export",
        "--format",
        "jsonl",
        "--output",
        file.to_str().unwrap(),
        "--force",
    ])
    .assert()
    .success();
    assert_eq!(mode(&file), 0o600, "replaced with a private file");
    assert!(std::fs::read_to_string(&file).unwrap().contains(SECRET));
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn export_prints_values_to_a_terminal_only_with_reveal() {
    let f = seeded();
    let base = format!(
        "{BIN} --config {} --key-file {} export --format jsonl --tag env=prod",
        f.config.display(),
        f.key.display()
    );
    let out = on_terminal(&base, None);
    let said = text(&out);
    assert!(!said.contains(SECRET), "{said}");
    assert!(said.contains("--reveal"), "{said}");
    let out = on_terminal(&format!("{base} --reveal"), None);
    assert!(text(&out).contains(SECRET));
    // A pipe is consent enough, as for `get`.
    f.cmd(&["export", "--format", "jsonl", "--tag", "env=prod"])
        .assert()
        .success()
        .stdout(predicate::str::contains(SECRET));
}

#[test]
fn import_refuses_a_key_other_than_the_stores_and_bad_files() {
    let a = seeded();
    let file = export_to(&a, "jsonl", "backup.jsonl");
    // A store with records under its own key, imported into with another key.
    let b = Fixture::new();
    b.put("existing", "value", &[]);
    let out = with_key(&b.config, "--key-file", &a.key, &["import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&a.key().key_id().to_string()) && said.contains(&b.key().key_id().to_string()),
        "{said}"
    );
    b.cmd(&["list", "--ids-only"]).assert().stdout("existing\n");

    // A bad file is refused whole, by line, without quoting it.
    let bad = b.path("bad.jsonl");
    std::fs::write(
        &bad,
        format!("{{\"id\":\"ok\",\"value\":\"x\"}}\n{{\"id\":\"a\",\"value\":\"{SECRET}\"\n"),
    )
    .unwrap();
    let out = b.cmd(&["import", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("line 2") && !text(&out).contains(SECRET),
        "{}",
        text(&out)
    );
    b.cmd(&["list", "--ids-only"]).assert().stdout("existing\n");
}

#[test]
fn quiet_writes_print_no_summary_but_still_print_errors() {
    let f = Fixture::new();
    f.cmd(&["--quiet", "put", "api_key"])
        .write_stdin(SECRET)
        .assert()
        .success()
        .stdout("")
        .stderr("");
    f.cmd(&["put", "api_key2", "--quiet"])
        .write_stdin(SECRET)
        .assert()
        .success()
        .stdout("");
    let file = f.path("in.jsonl");
    std::fs::write(&file, "{\"id\":\"x\",\"value\":\"y\"}\n").unwrap();
    f.cmd(&["import", file.to_str().unwrap(), "--quiet"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    f.cmd(&["delete", "x", "--quiet"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    f.cmd(&["put", "empty", "--quiet"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("empty"));
    // A conflicting import still says which ids were left alone.
    std::fs::write(&file, "{\"id\":\"api_key\",\"value\":\"other\"}\n").unwrap();
    f.cmd(&["import", file.to_str().unwrap(), "--quiet"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains("not overwritten:\n  api_key"));
}

#[test]
fn a_dotenv_export_sourced_by_a_shell_runs_nothing_and_gives_the_value() {
    let f = Fixture::new();
    let pwned = f.path("pwned");
    // A quote forces double quotes, where `$(…)` and `…` would run in a shell.
    let value = format!("it's $(touch {p}) `touch {p}` $HOME \\ end", p = pwned.display());
    f.put("nasty", &value, &[]);
    let env = f.path("out.env");
    f.cmd(&["export", "--format", "dotenv", "--output", env.to_str().unwrap()])
        .assert()
        .success();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("set -a; . \"$1\"; printf '%s' \"$NASTY\"")
        .arg("sh")
        .arg(&env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!pwned.exists(), "sourcing the export ran a command from a value");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), value);
    // And it still imports as the same value.
    let g = Fixture::new();
    std::fs::copy(&f.key, &g.key).unwrap();
    g.cmd(&["import", "--format", "dotenv", env.to_str().unwrap()])
        .assert()
        .success();
    g.cmd(&["get", "nasty"]).assert().success().stdout(value);
}
