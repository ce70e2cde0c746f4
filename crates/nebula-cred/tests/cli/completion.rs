//! `completion`: a script for each shell, naming the commands.

use crate::support::*;

#[test]
fn a_completion_script_is_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = bare().args(["completion", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.len() > 1000, "{shell}: {script}");
        for word in [
            "nebula-cred",
            "put",
            "rotate-key",
            "run",
            "export",
            "import",
            "completion",
            "no-masking",
        ] {
            assert!(script.contains(word), "{shell}: no {word:?}");
        }
    }
    bare()
        .args(["completion", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("possible values"));
}
