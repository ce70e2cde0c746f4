//! Starting one native emulator: each process is recorded in the state file the moment it
//! is spawned, and everything started is stopped and forgotten if the start fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::paths::dir;
use crate::process::{Proc, spawn_logged};
use crate::runtime::Env;
use crate::shutdown;
use crate::state::{Running, Store};

/// An emulator being started; its start function spawns through it.
pub(crate) struct Launch {
    /// The emulator's name (its entry in the state file).
    name: &'static str,
    store: Store,
    log: PathBuf,
    procs: Vec<Proc>,
}

impl Launch {
    /// Where the emulator's output goes.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Spawns `cmd` into the log and records it in the state file at once. Refused once
    /// xtask is shutting down, so the signal handler never misses a process.
    pub(crate) fn spawn(&mut self, cmd: &mut Command) -> Result<Proc> {
        let (name, log, procs) = (self.name, &self.log, &mut self.procs);
        self.store.update(|state| {
            if shutdown::interrupted() {
                bail!("interrupted");
            }
            let proc = spawn_logged(cmd, log)?;
            procs.push(proc);
            let entry = state
                .emulators
                .entry(name.to_string())
                .or_insert_with(|| Running::starting(log));
            entry.procs.push(proc);
            Ok(proc)
        })
    }

    /// Waits until `ready()`; fails when `proc` dies or `timeout` passes.
    pub(crate) fn wait_ready(&self, what: &str, proc: Proc, timeout: Duration, ready: impl Fn() -> bool) -> Result<()> {
        crate::process::wait_ready(what, proc, &self.log, timeout, ready)
    }

    /// Stops every process spawned and removes the emulator's entry.
    fn abort(&self) {
        for p in &self.procs {
            if let Err(e) = p.stop() {
                eprintln!("    could not stop pid {p}: {e:#}");
            }
        }
        let name = self.name;
        if let Err(e) = self.store.update(|s| Ok(s.emulators.remove(name))) {
            eprintln!("    could not forget `{name}` in the state file: {e:#}");
        }
    }
}

/// Starts the emulator `name` natively with its start function, logging to
/// `target/emulators/logs/NAME.log`.
pub(crate) fn start(
    name: &'static str,
    store: &Store,
    start: impl FnOnce(&mut Launch) -> Result<Env>,
) -> Result<Running> {
    let log = dir("logs")?.join(format!("{name}.log"));
    std::fs::write(&log, b"").with_context(|| format!("cannot create {}", log.display()))?;
    launch(name, store, &log, start)
}

/// Runs `start` for `name`: its entry is recorded as starting first, then as ready with the
/// variables `start` returns; if `start` fails, what it spawned is stopped and the entry
/// removed.
fn launch(
    name: &'static str,
    store: &Store,
    log: &Path,
    start: impl FnOnce(&mut Launch) -> Result<Env>,
) -> Result<Running> {
    store.update(|s| Ok(s.emulators.insert(name.to_string(), Running::starting(log))))?;
    let mut launch = Launch {
        name,
        store: store.clone(),
        log: log.to_path_buf(),
        procs: Vec::new(),
    };
    let env = match start(&mut launch) {
        Ok(env) => env,
        Err(err) => {
            launch.abort();
            return Err(err);
        }
    };
    store.update(|s| {
        let entry = s
            .emulators
            .entry(name.to_string())
            .or_insert_with(|| Running::starting(log));
        entry.env = env;
        entry.ready = true;
        Ok(entry.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(name: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("xtask-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::in_dir(&dir);
        (dir, store)
    }

    #[test]
    fn a_start_that_never_becomes_ready_is_stopped_and_forgotten() {
        let (dir, store) = temp_store("not-ready");
        let e = "aws";
        let mut spawned = None;
        let err = launch(e, &store, &dir.join("aws.log"), |l| {
            let p = l.spawn(Command::new("sleep").arg("60"))?;
            spawned = Some(p);
            let recorded = store.load()?.get(e).map(|r| (r.procs.clone(), r.ready));
            assert_eq!(recorded, Some((vec![p], false)), "recorded at spawn, before readiness");
            l.wait_ready("sleep", p, Duration::from_millis(300), || false)?;
            Ok(Env::new())
        })
        .unwrap_err();
        assert!(err.to_string().contains("not ready after"), "{err}");
        assert!(!spawned.expect("spawned").alive(), "the process is stopped");
        assert!(store.load().unwrap().get(e).is_none(), "and not left in the state");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failure_after_readiness_stops_every_process() {
        let (dir, store) = temp_store("setup-fails");
        let e = "vault";
        let mut spawned = Vec::new();
        launch(e, &store, &dir.join("vault.log"), |l| {
            spawned.push(l.spawn(Command::new("sleep").arg("60"))?);
            spawned.push(l.spawn(Command::new("sh").args(["-c", "sleep 60"]))?);
            bail!("AppRole setup failed")
        })
        .unwrap_err();
        assert!(spawned.iter().all(|p| !p.alive()));
        assert!(store.load().unwrap().get(e).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_ready_start_is_recorded_with_its_variables() {
        let (dir, store) = temp_store("ready");
        let e = "aws";
        let running = launch(e, &store, &dir.join("aws.log"), |l| {
            let p = l.spawn(Command::new("sleep").arg("60"))?;
            l.wait_ready("sleep", p, Duration::from_secs(5), || true)?;
            Ok(Env::from([("NEBULA_TEST_AWS_ENDPOINT".into(), "http://x".into())]))
        })
        .unwrap();
        let state = store.load().unwrap();
        let recorded = state.get(e).unwrap();
        assert!(recorded.ready && running.ready);
        assert_eq!(recorded.env["NEBULA_TEST_AWS_ENDPOINT"], "http://x");
        assert_eq!(state.owned_by_me(), [e]);
        for p in &recorded.procs {
            p.stop().unwrap();
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
