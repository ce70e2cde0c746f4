//! Where things are: the workspace, cargo's `target/`, and xtask's `target/emulators/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `test-servers/NAME`: the test servers this workspace builds or patches for its emulators.
pub(crate) fn test_server(name: &str) -> PathBuf {
    workspace_root().join("test-servers").join(name)
}

/// Cargo's `target/`, honouring `CARGO_TARGET_DIR`.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `target/emulators/`.
pub(crate) fn emulators_dir() -> PathBuf {
    target_dir().join("emulators")
}

/// A directory under `target/emulators/`, created if missing.
pub(crate) fn dir(name: &str) -> Result<PathBuf> {
    let d = emulators_dir().join(name);
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}
