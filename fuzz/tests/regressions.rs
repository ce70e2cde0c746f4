//! Replays every kept fuzz input through its target's check, without the fuzzer: the seeds
//! (`fuzz/seeds/<target>/`) and every crash input a fuzz run found
//! (`fuzz/regressions/<target>/`, kept by `cargo xtask fuzz`), so a fixed defect stays fixed.

use std::path::{Path, PathBuf};

use nebula_credential_fuzz::TARGETS;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_kept_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for (name, check) in TARGETS {
        let seeds = inputs(&root.join("seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{name}/ holds no seed input");
        for file in seeds.iter().chain(&inputs(&root.join("regressions").join(name))) {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{name} fails on the kept input {}", file.display());
            replayed += 1;
        }
    }
    println!("fuzz inputs replayed: {replayed}");
}

#[test]
fn every_directory_names_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for kind in ["seeds", "regressions"] {
        for dir in std::fs::read_dir(root.join(kind)).unwrap().flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            assert!(
                name.starts_with('.') || TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/{kind}/{name} names no target"
            );
        }
    }
}
