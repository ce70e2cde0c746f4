//! One JSON shape with fixed timestamp precision (defect 7), and expiry and keys in view
//! (feature 4): `list --expired`, `--expiring-within`, the EXPIRES mark, the KEY column,
//! `list --key-id`, the key id in `get --metadata`.

use predicates::prelude::*;

use crate::support::*;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_fixed_time(v: &serde_json::Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    s.len() == 24
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            13 | 16 => *c == b':',
            10 | 19 | 23 => true,
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn get_and_list_print_one_json_shape_with_millisecond_timestamps() {
    let f = Fixture::new();
    f.put(
        "api",
        SECRET,
        &["--tag", "env=prod", "--expires", "2999-01-02T03:04:05Z"],
    );
    f.put("plain", "v", &[]);
    let json = |args: &[&str]| -> serde_json::Value {
        let out = f.cmd(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let with_value = json(&["get", "api", "--json"]);
    let metadata = json(&["get", "api", "--metadata", "--json"]);
    let listed = json(&["list", "--json"]);
    let listed = listed.as_array().expect("list --json prints one array");
    assert_eq!(listed.len(), 2);
    assert_eq!(with_value["value"], SECRET);
    assert!(metadata.get("value").is_none() && listed[0].get("value").is_none());
    // The same metadata object everywhere.
    assert_eq!(with_value["metadata"], metadata["metadata"]);
    assert_eq!(listed[0], metadata);
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&metadata["metadata"]),
        [
            "created_at",
            "expired",
            "expires_at",
            "key_id",
            "tags",
            "updated_at",
            "version"
        ]
    );
    assert_eq!(
        keys(&listed[1]["metadata"]),
        keys(&metadata["metadata"]),
        "no expiry: the same fields"
    );
    assert_eq!(listed[1]["metadata"]["expires_at"], serde_json::Value::Null);
    for record in listed {
        let m = &record["metadata"];
        assert!(
            is_fixed_time(&m["created_at"]) && is_fixed_time(&m["updated_at"]),
            "{m}"
        );
        assert_eq!(m["key_id"], f.key().key_id());
    }
    assert_eq!(metadata["metadata"]["expires_at"], "2999-01-02T03:04:05.000Z");
    assert_eq!(metadata["metadata"]["expired"], false);
    // Nothing listed is still one array.
    f.cmd(&["list", "--json", "--prefix", "zzz"])
        .assert()
        .success()
        .stdout("[]\n");
}

#[test]
fn expiries_and_keys_are_in_view_and_selectable() {
    let f = Fixture::new();
    f.put("old", "v", &["--expires", "2020-01-01"]);
    f.put("soon", "v", &["--expires", "7d"]);
    f.put("later", "v", &["--expires", "60d"]);
    f.put("never", "v", &[]);
    let other = f.path("other.key");
    keygen(&other);
    with_key(&f.config, "--key-file", &other, &["put", "mixed", "--new-key"])
        .write_stdin("v")
        .assert()
        .success();
    let ids = |args: &[&str]| {
        let out = f.cmd(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(ids(&["list", "-q", "--expired"]), "old\n");
    assert_eq!(ids(&["list", "-q", "--expiring-within", "14d"]), "old\nsoon\n");
    assert_eq!(ids(&["list", "-q", "--expiring-within", "90d"]), "later\nold\nsoon\n");
    let theirs = key_of(&other).key_id().to_string();
    assert_eq!(ids(&["list", "-q", "--key-id", &theirs]), "mixed\n");
    let table = ids(&["list"]);
    let header = table.lines().next().unwrap();
    assert!(header.contains("EXPIRES") && header.contains("KEY"), "{table}");
    let line = |id: &str| table.lines().find(|l| l.starts_with(id)).unwrap().to_string();
    assert!(line("old").contains("2020-01-01T00:00:00Z (expired)"), "{table}");
    assert!(!line("soon").contains("expired"), "{table}");
    assert!(line("mixed").contains(&theirs), "{table}");
    assert!(line("never").contains(f.key().key_id()), "{table}");
    f.cmd(&["get", "mixed", "--metadata"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("key id:   {theirs}")));
    f.cmd(&["list", "--expiring-within", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("14d"));
}
