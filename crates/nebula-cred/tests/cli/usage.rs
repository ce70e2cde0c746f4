//! Bad usage (exit status 2 with what to do) and `--help` of every command.

use predicates::prelude::*;

use crate::support::*;

#[test]
fn bad_usage_exits_2_with_what_to_do() {
    let f = Fixture::new();
    f.cmd(&["get", "../etc/passwd"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid credential id"));
    f.cmd(&["put", "x", "--tag", "novalue"])
        .write_stdin("v")
        .assert()
        .code(2);
    f.cmd(&["put", "x", "--expires", "tomorrow"])
        .write_stdin("v")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("RFC 3339"));
    f.cmd(&["put", "x"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("empty"));
    f.cmd(&["frobnicate"]).assert().code(2);
    // A dry run writes nothing, so there is nothing to read back: refused, not ignored.
    migrate(&f.config, &f.path("t.toml"), &["--dry-run", "--verify"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
    bare()
        .args(["--config", "/nonexistent/c.toml", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the configuration file"));
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in [
        "put",
        "get",
        "list",
        "exists",
        "delete",
        "rotate-key",
        "migrate",
        "doctor",
        "keygen",
    ] {
        bare()
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    bare()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit status:").and(predicate::str::contains("3  not found")));
}
