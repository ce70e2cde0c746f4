//! `put` and `get`: the exact bytes in and out, expiry, the wrong key, JSON, terminals, the
//! backend's size limit, and the memory provider's warning.

use predicates::prelude::*;

use crate::support::*;

#[test]
fn put_then_get_returns_the_exact_bytes_from_stdin_and_from_a_file() {
    let f = Fixture::new();
    f.cmd(&["put", "api_key", "--tag", "env=prod"])
        .write_stdin(SECRET)
        .assert()
        .success()
        .stdout("stored 'api_key' (version 1)\n");
    f.cmd(&["get", "api_key"]).assert().success().stdout(SECRET);

    let binary: Vec<u8> = (0u8..=255).chain([b'\n', 0, 0xff]).collect();
    std::fs::write(f.path("blob"), &binary).unwrap();
    let blob = f.path("blob");
    f.cmd(&["put", "Blob_1", "--from-file", blob.to_str().unwrap()])
        .assert()
        .success();
    let out = f.cmd(&["get", "Blob_1"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        out.stdout, binary,
        "binary values round-trip unchanged, newline included"
    );

    f.put("api_key", "second", &[]);
    f.cmd(&["get", "api_key", "--metadata"])
        .assert()
        .success()
        .stdout(predicate::str::contains("version:  2").and(predicate::str::contains("tags:     env=prod\n")));
}

#[test]
fn an_expired_credential_is_still_printed_but_with_a_warning() {
    let f = Fixture::new();
    // An expiry in the past is most likely a typo of the year: stored, with a warning.
    f.cmd(&["put", "old", "--expires", "2020-01-01T00:00:00Z"])
        .write_stdin("old-value")
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").and(predicate::str::contains("2020-01-01T00:00:00Z")));
    // Applications still read it (the library does not enforce expiry), so get prints it, on
    // stdout only, and says on stderr that it expired.
    f.cmd(&["get", "old"])
        .assert()
        .success()
        .stdout("old-value")
        .stderr(predicate::str::contains("'old' expired at 2020-01-01T00:00:00Z"));
    f.cmd(&["get", "old", "--metadata"])
        .assert()
        .success()
        .stderr(predicate::str::contains("expired"));
    f.cmd(&["put", "new", "--expires", "2999-01-01T00:00:00Z"])
        .write_stdin("v")
        .assert()
        .success()
        .stderr("");
    f.cmd(&["get", "new"]).assert().success().stderr("");
}

#[test]
fn get_with_the_wrong_key_says_which_key_to_give() {
    let f = Fixture::new();
    f.put("api_key", SECRET, &[]);
    let other = f.path("other.key");
    keygen(&other);
    let out = with_key(&f.config, "--key-file", &other, &["get", "api_key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(!said.contains(SECRET), "{said}");
    // Both key ids, and how to give a key to get (it has no --old-key-file).
    assert!(said.contains(&f.key().key_id().to_string()), "{said}");
    assert!(said.contains(&key_of(&other).key_id().to_string()), "{said}");
    assert!(
        said.contains("--key-file") && said.contains("NEBULA_CREDENTIAL_KEY"),
        "{said}"
    );
}

#[test]
fn get_json_carries_the_value_and_metadata() {
    let f = Fixture::new();
    f.put(
        "api_key",
        SECRET,
        &["--tag", "env=prod", "--expires", "2030-01-02T03:04:05Z"],
    );
    let out = f.cmd(&["get", "api_key", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "api_key");
    assert_eq!(v["value"], SECRET);
    assert_eq!(v["metadata"]["version"], 1);
    assert_eq!(v["metadata"]["tags"]["env"], "prod");
    assert_eq!(v["metadata"]["expires_at"], "2030-01-02T03:04:05.000Z");

    std::fs::write(f.path("bin"), [0xff, 0xfe, 0x00]).unwrap();
    let bin = f.path("bin");
    f.cmd(&["put", "bin", "--from-file", bin.to_str().unwrap()])
        .assert()
        .success();
    let out = f.cmd(&["get", "bin", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["value_base64"], "//4A");
    assert!(v.get("value").is_none());
}

#[test]
fn get_refuses_a_terminal_unless_revealed() {
    let f = Fixture::new();
    f.put("api_key", SECRET, &[]);
    let run = |extra: &str| {
        let line = format!(
            "{BIN} --config {} --key-file {} get api_key {extra}",
            f.config.display(),
            f.key.display()
        );
        on_terminal(&line, None)
    };
    let refused = run("");
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("refusing to print"), "{}", text(&refused));
    assert!(!text(&refused).contains(SECRET));
    let revealed = run("--reveal");
    assert!(revealed.status.success(), "{}", text(&revealed));
    assert!(text(&revealed).contains(SECRET));
}

#[test]
fn put_stops_reading_a_value_once_it_is_over_the_backend_limit() {
    use std::io::Write as _;
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
    let mut child = std::process::Command::new(BIN)
        .args([
            "--config",
            small.to_str().unwrap(),
            "--key-file",
            f.key.to_str().unwrap(),
        ])
        .args(["put", "huge"])
        .env_remove("NEBULA_CREDENTIAL_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Offer far more than the limit; put must give up (closing the pipe) long before the end.
    let mut stdin = child.stdin.take().unwrap();
    let offered = 32 << 20;
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        let mut written = 0;
        while written < offered && stdin.write_all(&chunk).is_ok() {
            written += chunk.len();
        }
        written
    });
    let out = child.wait_with_output().unwrap();
    let written = writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("2000"), "names the limit: {}", text(&out));
    assert!(written < offered, "read all {written} bytes offered before refusing");
    assert!(raw(&load_config(&small), "huge").is_none());
    // The same from a file.
    let file = std::fs::File::create(f.path("sparse")).unwrap();
    file.set_len(offered as u64).unwrap();
    let out = bare()
        .args([
            "--config",
            small.to_str().unwrap(),
            "--key-file",
            f.key.to_str().unwrap(),
        ])
        .args(["put", "huge", "--from-file", f.path("sparse").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("2000"), "{}", text(&out));
}

#[test]
fn writing_to_the_memory_provider_says_nothing_is_kept() {
    let memory = |args: &[&str]| {
        let mut c = bare();
        c.env("NEBULA_CREDENTIAL_PROVIDER", "memory")
            .env("NEBULA_CREDENTIAL_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .args(args);
        c
    };
    memory(&["put", "gone"])
        .write_stdin("v")
        .assert()
        .success()
        .stderr(predicate::str::contains("memory").and(predicate::str::contains("lost")));
    memory(&["exists", "gone"]).assert().code(3);
}
