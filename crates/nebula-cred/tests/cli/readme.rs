//! The README's session works as written: its first `sh` block, run with this binary in
//! place of `cargo run -q -p nebula-cred --`, prints what the `text` block after it shows,
//! up to what differs by run (times, dates, key ids, latencies, the temporary directory).

use crate::support::*;

/// The first fenced block of `kind` in `text` after `from`, and where it ends.
fn block<'a>(text: &'a str, from: usize, kind: &str) -> (&'a str, usize) {
    let open = format!("```{kind}\n");
    let start = from + text[from..].find(&open).unwrap_or_else(|| panic!("no {kind} block")) + open.len();
    let len = text[start..].find("```").unwrap();
    (&text[start..start + len], start + len + 3)
}

/// `line` with each run of hex digits holding a digit (numbers, times, key ids) as `#`
/// and whitespace collapsed (latency columns change width).
fn normalized(line: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_readme_session_prints_what_the_readme_shows() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let session = readme.find("## A session").expect("a session section");
    let (script, end) = block(&readme, session, "sh");
    let (expected, _) = block(&readme, end, "text");
    let tmp = tempfile::tempdir().unwrap();
    let script = script.replace("cargo run -q -p nebula-cred --", BIN);
    let mut command = std::process::Command::new("bash");
    for var in VARS {
        command.env_remove(var);
    }
    let out = command
        .arg("-c")
        .arg(format!("{{\n{script}\n}} 2>&1"))
        .env("TMPDIR", tmp.path())
        .env("XDG_CONFIG_HOME", NO_CONFIG_HOME)
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    // `mktemp -d` names the directory tmp.XXXXXXXXXX under TMPDIR.
    let prefix = format!("{}/tmp.", tmp.path().display());
    let mut printed_d = String::new();
    let mut rest = printed.as_str();
    while let Some(at) = rest.find(&prefix) {
        printed_d.push_str(&rest[..at]);
        printed_d.push_str("$D");
        rest = &rest[at + prefix.len() + 10..];
    }
    printed_d.push_str(rest);
    let got: Vec<String> = printed_d.lines().map(normalized).collect();
    let want: Vec<String> = expected.lines().map(normalized).collect();
    assert!(want.len() > 40, "the session's output block is missing: {expected}");
    assert_ne!(
        normalized("key id 45c2b1805a576b88 (expired)"),
        normalized("key id never (expired)")
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {} differs; the whole output:\n{printed_d}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "the whole output:\n{printed_d}");
}
