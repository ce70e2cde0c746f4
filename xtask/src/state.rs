//! Paths under `target/emulators/` and the state file that lets `down` and `status` find
//! what an earlier `up` started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::emulator::{Emulator, Runtime};

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `target/emulators/`, honouring `CARGO_TARGET_DIR`.
pub(crate) fn emulators_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("emulators")
}

/// A directory under `target/emulators/`, created if missing.
pub(crate) fn dir(name: &str) -> Result<PathBuf> {
    let d = emulators_dir().join(name);
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}

/// One running emulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Running {
    pub(crate) runtime: Runtime,
    /// Processes started by xtask (native runtime); stopped by pid, nothing else.
    pub(crate) pids: Vec<u32>,
    /// The variables tests read.
    pub(crate) env: BTreeMap<String, String>,
    /// Where its log goes.
    pub(crate) log: Option<PathBuf>,
}

/// Everything running, by emulator name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) emulators: BTreeMap<String, Running>,
}

impl State {
    fn path() -> PathBuf {
        emulators_dir().join("state.json")
    }

    pub(crate) fn load() -> Result<State> {
        match std::fs::read(Self::path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is damaged; delete it after stopping emulators by hand",
                    Self::path().display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", Self::path().display())),
        }
    }

    pub(crate) fn save(&self) -> Result<()> {
        let path = Self::path();
        std::fs::create_dir_all(emulators_dir())?;
        let temp = path.with_extension("json.tmp");
        std::fs::write(&temp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&temp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    pub(crate) fn get(&self, e: Emulator) -> Option<&Running> {
        self.emulators.get(e.spec().name)
    }

    /// Records `running` for `e` and saves at once, so a crash right after still leaves
    /// a state `down` can use.
    pub(crate) fn put(&mut self, e: Emulator, running: Running) -> Result<()> {
        self.emulators.insert(e.spec().name.to_string(), running);
        self.save()
    }

    pub(crate) fn remove(&mut self, e: Emulator) -> Result<Option<Running>> {
        let r = self.emulators.remove(e.spec().name);
        self.save()?;
        Ok(r)
    }

    /// The variables of every running emulator.
    pub(crate) fn env(&self) -> BTreeMap<String, String> {
        self.emulators.values().flat_map(|r| r.env.clone()).collect()
    }
}
