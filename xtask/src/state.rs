//! The state file (`target/emulators/state.json`) that lets `down` and `status` find what an
//! earlier `up` started, by emulator name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::paths::emulators_dir;
use crate::process::Proc;
use crate::runtime::{Env, Runtime};

/// One emulator xtask started (or is starting).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Running {
    pub(crate) runtime: Runtime,
    /// Processes started for it (native runtime), recorded as each is spawned; stopped by
    /// pid and start time, nothing else.
    #[serde(default)]
    pub(crate) procs: Vec<Proc>,
    /// The xtask that started it.
    pub(crate) owner: Proc,
    /// Whether it became ready; until then `env` is empty.
    #[serde(default)]
    pub(crate) ready: bool,
    /// The variables tests read.
    pub(crate) env: Env,
    /// Where its log goes.
    pub(crate) log: Option<PathBuf>,
}

impl Running {
    /// A native emulator this xtask is starting, with no process yet.
    pub(crate) fn starting(log: &Path) -> Running {
        Running {
            runtime: Runtime::Native,
            procs: Vec::new(),
            owner: Proc::me(),
            ready: false,
            env: Env::new(),
            log: Some(log.to_path_buf()),
        }
    }

    /// Why the entry no longer describes something running, if it does not: a process
    /// died or its pid now belongs to another process, or the xtask that was starting it
    /// is gone before it became ready.
    pub(crate) fn stale(&self) -> Option<String> {
        if let Some(p) = self.procs.iter().find(|p| !p.alive()) {
            return Some(format!("pid {p} is no longer the process xtask started"));
        }
        (!self.ready && !self.owner.alive()).then(|| format!("xtask pid {} stopped before it became ready", self.owner))
    }
}

/// Everything running, by emulator name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) emulators: BTreeMap<String, Running>,
}

impl State {
    /// The entry of the emulator called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Running> {
        self.emulators.get(name)
    }

    /// The variables of every ready emulator.
    pub(crate) fn env(&self) -> Env {
        self.emulators
            .values()
            .filter(|r| r.ready)
            .flat_map(|r| r.env.clone())
            .collect()
    }

    /// Names of the emulators the running xtask started.
    pub(crate) fn owned_by_me(&self) -> Vec<&str> {
        let me = Proc::me();
        self.emulators
            .iter()
            .filter(|(_, r)| r.owner == me)
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// Serialises reads and writes of the state file between the threads of this xtask (the
/// signal handler runs on its own thread).
static LOCK: Mutex<()> = Mutex::new(());

/// The state file (`target/emulators/state.json` unless a test picks another).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    path: PathBuf,
}

impl Store {
    /// The project's state file.
    pub(crate) fn new() -> Store {
        Store::in_dir(&emulators_dir())
    }

    /// `state.json` in `dir`.
    pub(crate) fn in_dir(dir: &Path) -> Store {
        Store {
            path: dir.join("state.json"),
        }
    }

    pub(crate) fn load(&self) -> Result<State> {
        let _lock = lock();
        self.read()
    }

    /// Reads, changes and writes the state in one step, so a crash right after still
    /// leaves a state `down` can use.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let _lock = lock();
        let mut state = self.read()?;
        let value = change(&mut state)?;
        self.write(&state)?;
        Ok(value)
    }

    /// Removes stale entries (see [`Running::stale`]) and stops what is left of them;
    /// returns each removed emulator's name and why it was stale.
    pub(crate) fn prune(&self) -> Result<Vec<(String, String)>> {
        let removed = self.update(|state| {
            let stale: Vec<(String, String)> = state
                .emulators
                .iter()
                .filter_map(|(name, r)| r.stale().map(|why| (name.clone(), why)))
                .collect();
            Ok(stale
                .into_iter()
                .filter_map(|(name, why)| state.emulators.remove(&name).map(|r| (name, why, r)))
                .collect::<Vec<_>>())
        })?;
        for (_, _, running) in &removed {
            for p in &running.procs {
                p.stop()?;
            }
        }
        Ok(removed.into_iter().map(|(name, why, _)| (name, why)).collect())
    }

    fn read(&self) -> Result<State> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is damaged; delete it after stopping emulators by hand",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    fn write(&self, state: &State) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temp = self.path.with_extension("json.tmp");
        std::fs::write(&temp, serde_json::to_vec_pretty(state)?)?;
        std::fs::rename(&temp, &self.path).with_context(|| format!("cannot write {}", self.path.display()))
    }
}

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::process::spawn_logged;

    #[test]
    fn stale_entries_are_removed_and_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("xtask-test-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::in_dir(&dir);
        let log = dir.join("x.log");
        let sleep = || spawn_logged(Command::new("sleep").arg("60"), &log).unwrap();
        let (live, orphan, exited) = (sleep(), sleep(), sleep());
        exited.stop().unwrap();
        let reused = Proc {
            started: Proc::me().started + 1,
            ..Proc::me()
        };
        let gone_owner = Proc {
            started: 0,
            ..Proc::me()
        };
        let entry = |procs: Vec<Proc>, owner: Proc, ready: bool| Running {
            procs,
            owner,
            ready,
            ..Running::starting(&log)
        };
        store
            .update(|s| {
                let mut put = |name: &str, r| s.emulators.insert(name.to_string(), r);
                put("aws", entry(vec![live], Proc::me(), true));
                put("vault", entry(vec![exited], Proc::me(), true));
                put("azure", entry(vec![reused], Proc::me(), true));
                put("kubernetes", entry(vec![orphan], gone_owner, false));
                Ok(())
            })
            .unwrap();
        let removed: Vec<String> = store.prune().unwrap().into_iter().map(|(name, _)| name).collect();
        assert_eq!(removed, ["azure", "kubernetes", "vault"]);
        let left: Vec<String> = store.load().unwrap().emulators.into_keys().collect();
        assert_eq!(left, ["aws"]);
        assert!(live.alive());
        assert!(!orphan.alive(), "a never-ready emulator whose xtask is gone is stopped");
        assert!(Proc::me().alive(), "a reused pid is not signalled");
        live.stop().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
