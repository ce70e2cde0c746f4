//! `list`: its formats and filters, a corrupted record among good ones, and tags that
//! cannot drive the terminal.

use predicates::prelude::*;

use crate::support::*;

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
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["api_key", "db_main"]);
    assert_eq!(rows[1]["metadata"]["tags"]["team"], "core");
    assert_eq!(rows[1]["metadata"]["version"], 1);

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
