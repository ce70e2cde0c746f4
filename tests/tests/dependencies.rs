//! Dependency policy, checked against the lockfile.

#[test]
fn lockfile_has_no_unmaintained_crates() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).expect("Cargo.lock");
    assert!(lock.contains("name = \"nebula-credential-core\""), "not our lockfile");
    for banned in ["backoff", "instant", "atty", "dotenv"] {
        assert!(
            !lock.lines().any(|l| l == format!("name = \"{banned}\"")),
            "{banned} is unmaintained and must not be a dependency"
        );
    }
}
