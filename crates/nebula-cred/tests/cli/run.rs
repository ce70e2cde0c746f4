//! `run` (unix: signals, sh, perl): values reach the child's environment (never argv),
//! masked in its output unless `--no-masking`, even when split across writes; exit status
//! and signals are passed on; a bad selection is refused before the child starts.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use predicates::prelude::*;

use crate::support::*;

const MASK: &str = "<concealed by nebula-cred>";

/// A store with `api_key` (SECRET) and `db-url`, both tagged `app=web`.
fn store() -> Fixture {
    let f = Fixture::new();
    f.put("api_key", SECRET, &["--tag", "app=web"]);
    f.put("db-url", "postgres://u:pw-Value-9@db/app", &["--tag", "app=web"]);
    f
}

/// `nebula-cred … run RUN_ARGS… -- sh -c SCRIPT`.
fn run_sh(f: &Fixture, run_args: &[&str], script: &str) -> assert_cmd::Command {
    let mut args = vec!["run"];
    args.extend_from_slice(run_args);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    f.cmd(&args)
}

#[test]
fn the_child_gets_the_values_in_its_environment_and_its_output_is_masked() {
    let f = store();
    let seen = f.path("seen");
    let script = format!(
        "printf '%s|%s' \"$API_KEY\" \"$DB_URL\" > '{}'; echo \"token=$API_KEY url=$DB_URL\"; \
         echo \"err $API_KEY\" >&2; echo \"args: $*\"",
        seen.display()
    );
    let out = run_sh(&f, &["--tag", "app=web"], &script).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The child saw the real values (a file is not masked)...
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("{SECRET}|postgres://u:pw-Value-9@db/app")
    );
    // ...while its stdout and stderr show the mask in their place.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stdout, format!("token={MASK} url={MASK}\nargs: \n"));
    assert_eq!(stderr, format!("err {MASK}\n"));

    // An explicit --id names the variable; a bare one uses the id in UPPER_SNAKE_CASE.
    let script = "echo \"${TOKEN:-unset} ${API_KEY:-unset} ${DB_URL:-unset}\"";
    run_sh(&f, &["--id", "api_key=TOKEN", "--id", "db-url"], script)
        .assert()
        .success()
        .stdout(format!("{MASK} unset {MASK}\n"));
}

#[test]
fn the_child_does_not_inherit_the_key() {
    let f = store();
    let key = std::fs::read_to_string(&f.key).unwrap();
    bare()
        .env("NEBULA_CREDENTIAL_KEY", key.trim())
        .args(["--config", f.config.to_str().unwrap()])
        .args(["run", "--id", "api_key", "--no-masking", "--", "sh", "-c"])
        .arg("echo \"${NEBULA_CREDENTIAL_KEY:-no key} ${API_KEY:+value}\"")
        .assert()
        .success()
        .stdout("no key value\n");
}

#[test]
fn no_masking_passes_the_output_through() {
    let f = store();
    run_sh(
        &f,
        &["--id", "api_key", "--no-masking"],
        "echo \"$API_KEY\"; echo \"$API_KEY\" >&2",
    )
    .assert()
    .success()
    .stdout(format!("{SECRET}\n"))
    .stderr(format!("{SECRET}\n"));
}

#[test]
fn a_value_written_in_two_halves_is_still_masked() {
    let f = store();
    // The halves are separate writes with a pause between: the first half is held back as a
    // possible beginning of the value until the second decides it.
    let script = "printf 'before '; printf '%s' \"$API_KEY\" | cut -c1-10 | tr -d '\\n'; sleep 0.3; \
                  printf '%s' \"$API_KEY\" | cut -c11- | tr -d '\\n'; printf ' after\\n'; \
                  printf '%s' \"$API_KEY\" | cut -c1-10 | tr -d '\\n' >&2";
    run_sh(&f, &["--id", "api_key"], script)
        .assert()
        .success()
        .stdout(format!("before {MASK} after\n"))
        // A beginning left at the end of the stream was not the value: it is emitted.
        .stderr(&SECRET[..10]);
}

#[test]
fn output_is_passed_on_as_it_is_written() {
    let f = store();
    let go = f.path("go");
    // The child says "ready" and waits for the test to answer: were "ready" held back for a
    // buffer to fill, neither side would move (until the child gives up after a minute).
    let script = format!(
        "printf 'ready: '; i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; \
         [ -e '{}' ]",
        go.display(),
        go.display()
    );
    let mut child = std::process::Command::new(BIN)
        .args([
            "--config",
            f.config.to_str().unwrap(),
            "--key-file",
            f.key.to_str().unwrap(),
        ])
        .args(["run", "--id", "api_key", "--", "sh", "-c", &script])
        .env_remove("NEBULA_CREDENTIAL_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"ready: ") {
        use std::io::Read;
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "output held back: {seen:?}");
        seen.push(byte[0]);
    }
    std::fs::write(&go, "").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn the_exit_status_is_the_childs() {
    let f = store();
    run_sh(&f, &["--id", "api_key"], "exit 42").assert().code(42);
    run_sh(&f, &["--id", "api_key", "--no-masking"], "exit 3")
        .assert()
        .code(3);
    // Ended by signal N: 128+N, as shells report it.
    run_sh(&f, &["--id", "api_key"], "kill -TERM $$")
        .assert()
        .code(128 + 15);
    run_sh(&f, &["--id", "api_key", "--no-masking"], "kill -KILL $$")
        .assert()
        .code(128 + 9);
    f.cmd(&["run", "--id", "api_key", "--", "/nonexistent/program"])
        .assert()
        .code(127)
        .stderr(predicate::str::contains("cannot start /nonexistent/program"));
}

/// Starts `run` in its own process group (so no terminal sends it signals), waits for the
/// child's "ready", sends `signal` to nebula-cred only, and returns its exit status and
/// what the child's trap wrote.
fn signal_run(signal: &str, extra: &[&str]) -> (Option<i32>, String) {
    let f = store();
    let mark = f.path("mark");
    let script = format!(
        "trap 'echo \"got {signal}\" > \"{}\"; exit 7' {signal}; echo ready; while :; do sleep 0.05; done",
        mark.display()
    );
    let mut child = std::process::Command::new(BIN)
        .args([
            "--config",
            f.config.to_str().unwrap(),
            "--key-file",
            f.key.to_str().unwrap(),
        ])
        .arg("run")
        .args(["--id", "api_key"])
        .args(extra)
        .args(["--", "sh", "-c", &script])
        .env_remove("NEBULA_CREDENTIAL_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    (status.code(), std::fs::read_to_string(&mark).unwrap_or_default())
}

#[test]
fn sigterm_reaches_the_child_and_its_status_comes_back() {
    assert_eq!(signal_run("TERM", &[]), (Some(7), "got TERM\n".into()));
    assert_eq!(signal_run("TERM", &["--no-masking"]), (Some(7), "got TERM\n".into()));
}

#[test]
fn sigint_sighup_and_sigquit_reach_the_child() {
    for signal in ["INT", "HUP", "QUIT"] {
        assert_eq!(
            signal_run(signal, &[]),
            (Some(7), format!("got {signal}\n")),
            "{signal}"
        );
    }
}

#[test]
fn a_bad_selection_is_refused_before_the_child_starts() {
    let f = store();
    f.put("db_url", "other", &["--tag", "app=web"]);
    f.put("9lives", "cat", &["--tag", "odd=yes"]);
    let mark = f.path("started");
    let script = format!("touch '{}'", mark.display());
    let check = |run_args: &[&str], code: i32, said: &[&str]| {
        let out = run_sh(&f, run_args, &script).output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(code), "{run_args:?}: {all}");
        assert!(!mark.exists(), "{run_args:?} started the child");
        for s in said {
            assert!(all.contains(s), "{run_args:?}: {s:?} not in {all}");
        }
        assert!(!all.contains(SECRET) && !all.contains("pw-Value"), "{all}");
    };
    // db-url and db_url both map to DB_URL.
    check(&["--tag", "app=web"], 2, &["DB_URL", "'db-url' and 'db_url'"]);
    check(&["--id", "api_key=X", "--id", "db_url=X"], 2, &["X would get"]);
    // 9LIVES is not a variable name; PATH and LD_PRELOAD are not to be replaced.
    check(
        &["--tag", "odd=yes"],
        2,
        &["'9lives' -> 9LIVES", "--id 9lives=OTHER_NAME"],
    );
    check(&["--id", "api_key=PATH"], 2, &["PATH", "depends on"]);
    check(&["--id", "api_key=LD_PRELOAD"], 2, &["LD_PRELOAD"]);
    check(&["--id", "api_key=A-B"], 2, &["not a valid variable name"]);
    // Missing credentials, an empty selection, no selection at all.
    check(&["--id", "api_key", "--id", "nope"], 3, &["nope"]);
    check(&["--tag", "app=none"], 3, &["no credential matches --tag app=none"]);
    check(&[], 2, &["--id", "--tag", "--prefix"]);
    // The wrong key: nothing decrypts, nothing starts.
    let other = f.path("other.key");
    keygen(&other);
    let out = with_key(
        &f.config,
        "--key-file",
        &other,
        &["run", "--id", "api_key", "--", "sh", "-c", &script],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!mark.exists());
}

#[test]
fn a_ctrl_c_typed_at_the_terminal_reaches_the_child_once() {
    let f = store();
    let mark = f.path("count");
    // The child (perl, whose handler counts each delivery) counts SIGINTs; after the first
    // it waits a moment for a second copy, which a forwarding nebula-cred would send on top
    // of the terminal's own. (The kernel may merge a copy sent at once with the first, so
    // a double send shows here only when it comes late; it is never counted when absent.)
    let child = r#"$n = 0; $SIG{INT} = sub { $n++ }; $| = 1; print "ready\n";
        select(undef, undef, undef, 0.05) while $n == 0;
        select(undef, undef, undef, 0.05) for 1 .. 10;
        open(my $f, ">", $ARGV[0]) or die; print $f "$n\n";"#;
    // `exec`: the shell must not stay in the terminal's foreground group, where the
    // Ctrl-C would end it (and with it the session) before nebula-cred reports.
    let line = format!(
        "exec {BIN} --config {} --key-file {} run --id api_key -- perl -e '{child}' {}",
        f.config.display(),
        f.key.display(),
        mark.display()
    );
    let out = on_terminal(&line, Some(("ready", "\x03")));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "1\n", "{}", text(&out));
}

#[test]
fn binary_values_reach_the_environment_and_nul_is_refused() {
    let f = store();
    let bytes = [0xffu8, 0xfe, b'\n', b'x'];
    std::fs::write(f.path("bin"), bytes).unwrap();
    let bin = f.path("bin");
    f.cmd(&["put", "blob", "--from-file", bin.to_str().unwrap()])
        .assert()
        .success();
    let seen = f.path("seen");
    let script = format!("printf '%s' \"$BLOB\" > '{}'; printf '%s' \"$BLOB\"", seen.display());
    run_sh(&f, &["--id", "blob"], &script).assert().success().stdout(MASK);
    assert_eq!(std::fs::read(&seen).unwrap(), bytes);

    std::fs::write(f.path("nul"), b"a\0b").unwrap();
    let nul = f.path("nul");
    f.cmd(&["put", "nul", "--from-file", nul.to_str().unwrap()])
        .assert()
        .success();
    let mark = f.path("started");
    run_sh(&f, &["--id", "nul"], &format!("touch '{}'", mark.display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'nul' holds a NUL byte"));
    assert!(!mark.exists());
}

#[test]
fn overlapping_values_and_a_value_printed_without_its_line_break_stay_masked() {
    let f = Fixture::new();
    f.put("a", "xab", &[]);
    f.put("b", "abcdef-Secret", &[]);
    // Piped with echo: stored with its line break (put warns), printed by `$(…)` without it.
    f.put("nl", "line-Secret-7\n", &[]);
    let script = "printf '[xabcdef-Secret]\\n'; printf '[%s]\\n' \"$(printenv NL)\"";
    let out = run_sh(&f, &["--id", "a=A", "--id", "b=B", "--id", "nl=NL"], script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, format!("[{MASK}]\n[{MASK}]\n"));
    assert!(!stdout.contains("Secret"), "{stdout}");
}
