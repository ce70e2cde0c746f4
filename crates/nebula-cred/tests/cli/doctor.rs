//! `doctor`: each step with its latency, and the failing step with the library's advice.

use predicates::prelude::*;

use crate::support::*;

#[test]
fn doctor_probes_each_step_with_its_latency() {
    let f = Fixture::new();
    let out = bare()
        .args(["--config", f.config.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8(out.stdout).unwrap();
    for step in ["config", "open", "check", "store", "read", "list", "delete"] {
        assert!(
            report.lines().any(|l| l.starts_with("ok") && l.contains(step)),
            "{step} missing: {report}"
        );
    }
    assert_eq!(
        report.matches(" ms ").count(),
        6,
        "a latency per probing step: {report}"
    );
    assert!(report.contains("conditional store yes"), "{report}");
    assert!(raw(&f.config(), "_nebula_cred_doctor_probe").is_none(), "probe deleted");

    // The environment instead of a file: memory, in one process.
    bare()
        .arg("doctor")
        .env("NEBULA_CREDENTIAL_PROVIDER", "memory")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("configuration from the environment")
                .and(predicate::str::contains("provider memory, valid")),
        );
}

#[test]
fn doctor_shows_the_failing_step_and_the_library_advice() {
    let f = Fixture::new();
    // A reserved id taken by a credential doctor did not write: never overwritten.
    f.put("_nebula_cred_doctor_probe", SECRET, &[]);
    let before = raw(&f.config(), "_nebula_cred_doctor_probe").unwrap();
    let out = bare()
        .args(["--config", f.config.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("FAIL  store"), "{}", text(&out));
    assert!(text(&out).contains("reserved"), "{}", text(&out));
    assert_eq!(raw(&f.config(), "_nebula_cred_doctor_probe").unwrap(), before);

    // A base path under a regular file: the config is valid, opening it fails.
    let file = f.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    let bad = f.path("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "provider = \"local\"\nbase_path = {:?}\n",
            file.join("sub").display().to_string()
        ),
    )
    .unwrap();
    let out = bare()
        .args(["--config", bad.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = text(&out);
    assert!(report.contains("ok    config"), "{report}");
    assert!(report.contains("FAIL  open") && report.contains("kind: "), "{report}");

    // An invalid config fails at the first step, naming the field.
    std::fs::write(&bad, "provider = \"local\"\nbase_path = \"relative/path\"\n").unwrap();
    let out = bare()
        .args(["--config", bad.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("FAIL  config") && text(&out).contains("base_path"),
        "{}",
        text(&out)
    );
}
