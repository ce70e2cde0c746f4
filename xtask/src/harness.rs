//! Emulators for a run: bring them up on either runtime (recording each in the state file),
//! hand their variables to cargo, and always stop what this run started. The commands
//! (`emulators`, `test-integration`, `bench`, `ci`) are built on these.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use crate::compose;
use crate::emulators::Emulator;
use crate::launch;
use crate::process::Proc;
use crate::run::{cargo, run_cargo};
use crate::runtime::{Env, Runtime};
use crate::state::{Running, State, Store};

/// Removes stale entries from the state file, saying which and why.
pub(crate) fn prune(store: &Store) -> Result<()> {
    for (name, why) in store.prune()? {
        eprintln!("==> {name}: removed a stale entry ({why})");
    }
    Ok(())
}

/// Starts `emulators` (reusing ones already running); each native process is recorded in
/// the state file as it is spawned.
pub(crate) fn up(emulators: &[Emulator], runtime: Runtime) -> Result<()> {
    let store = Store::new();
    prune(&store)?;
    let state = store.load()?;
    let mut missing = Vec::new();
    for &e in emulators {
        match state.get(e.name()) {
            None => missing.push(e),
            Some(r) if r.ready => eprintln!("==> {e}: already running ({}), reused", r.runtime),
            Some(r) => bail!(
                "emulator `{e}` is being started by xtask pid {}; wait for it, or stop it with `cargo xtask emulators down {e}`",
                r.owner
            ),
        }
    }
    match runtime {
        Runtime::Native => {
            for e in missing {
                eprintln!("==> {e}: starting {}", e.spec().native);
                launch::start(e.name(), &store, e.spec().start)
                    .with_context(|| format!("emulator `{e}` did not start"))?;
                check_exports(e, &store.load()?)?;
            }
        }
        Runtime::Docker if !missing.is_empty() => {
            eprintln!("==> starting with docker compose: {missing:?}");
            for (e, running) in docker_up(&missing)? {
                store.update(|s| Ok(s.emulators.insert(e.name().to_string(), running)))?;
                check_exports(e, &store.load()?)?;
            }
        }
        Runtime::Docker => {}
    }
    Ok(())
}

/// Starts the compose services of `emulators`, then reads each one's variables.
fn docker_up(emulators: &[Emulator]) -> Result<BTreeMap<Emulator, Running>> {
    let services: Vec<&str> = emulators.iter().map(|e| e.spec().docker_service).collect();
    compose::up(&services)?;
    let mut out = BTreeMap::new();
    for &e in emulators {
        let env = (e.spec().docker_env)(e.spec())?;
        out.insert(
            e,
            Running {
                runtime: Runtime::Docker,
                procs: Vec::new(),
                owner: Proc::me(),
                ready: true,
                env,
                log: None,
            },
        );
    }
    Ok(out)
}

/// Both runtimes must export every variable the table promises for `e`.
fn check_exports(e: Emulator, state: &State) -> Result<()> {
    let running = state.get(e.name());
    let env = running.map(|r| &r.env);
    let runtime = running.map_or(Runtime::Native, |r| r.runtime);
    let missing: Vec<&str> = e
        .spec()
        .exports(runtime)
        .filter(|v| !env.is_some_and(|env| env.contains_key(*v)))
        .collect();
    if !missing.is_empty() {
        bail!("emulator `{e}` started but did not export {missing:?}; this is a bug in xtask");
    }
    Ok(())
}

/// Stops `emulators` (only what xtask recorded starting) and forgets them.
pub(crate) fn down(emulators: &[Emulator]) -> Result<()> {
    let store = Store::new();
    let mut docker_services = Vec::new();
    for &e in emulators {
        let Some(running) = store.load()?.get(e.name()).cloned() else {
            continue;
        };
        match running.runtime {
            Runtime::Native => {
                for p in &running.procs {
                    p.stop()?;
                }
                let pids: Vec<u32> = running.procs.iter().map(|p| p.pid).collect();
                eprintln!("==> {e}: stopped (pid {pids:?})");
            }
            Runtime::Docker => docker_services.push(e),
        }
        store.update(|s| Ok(s.emulators.remove(e.name())))?;
    }
    if !docker_services.is_empty() {
        let services: Vec<&str> = docker_services.iter().map(|e| e.spec().docker_service).collect();
        compose::down(&services)?;
        eprintln!("==> stopped with docker compose: {docker_services:?}");
    }
    Ok(())
}

/// Stops the emulators this xtask started (not those it found running); the shutdown
/// handler's stop callback.
pub(crate) fn stop_owned() -> Result<()> {
    let state = Store::new().load()?;
    let owned: Vec<Emulator> = Emulator::all()
        .filter(|e| state.owned_by_me().contains(&e.name()))
        .collect();
    down(&owned)
}

/// Runs `body` with `emulators` up and their variables; afterwards stops the emulators
/// this run started (not those it found running), whatever happened. A signal meanwhile
/// is handled by [`crate::shutdown`], which stops the same.
pub(crate) fn with_emulators<T>(
    emulators: &[Emulator],
    runtime: Runtime,
    body: impl FnOnce(Env) -> Result<T>,
) -> Result<T> {
    let result = up(emulators, runtime).and_then(|()| {
        let state = Store::new().load()?;
        let env = emulators
            .iter()
            .filter_map(|e| state.get(e.name()))
            .flat_map(|r| r.env.clone())
            .collect();
        body(env)
    });
    let stopped = stop_owned();
    let value = result?;
    stopped?;
    Ok(value)
}

/// The backends to test when none are named: every backend the runtime can run here
/// (saying which it leaves out, and why).
pub(crate) fn default_backends(runtime: Runtime) -> Vec<Emulator> {
    Emulator::all()
        .filter(|e| runtime == Runtime::Docker || runs_natively_in_ci(*e))
        .collect()
}

/// Whether `ci` and `test-integration` run `e` by default on the native runtime; says why
/// not when it does not.
fn runs_natively_in_ci(e: Emulator) -> bool {
    let Some(why) = e.spec().ci_native_skip else {
        return true;
    };
    eprintln!(
        "==> {e}: left out on the native runtime ({why}); `--backend {e}` asks for it anyway, \
         `--runtime docker` runs it where Docker is available"
    );
    false
}

/// `cargo test -p nebula-credential-tests` with the backends' features and variables, then
/// the extra checks of those running natively; emulators up for the run, stopped after.
pub(crate) fn integration_tests(backends: &[Emulator], runtime: Runtime, extra: &[String]) -> Result<()> {
    let features: Vec<&str> = backends.iter().map(|e| e.name()).collect();
    eprintln!(
        "==> integration tests: {} on the {runtime} runtime",
        features.join(", ")
    );
    with_emulators(backends, runtime, |env| {
        let mut cmd = cargo();
        cmd.args([
            "test",
            "-p",
            "nebula-credential-tests",
            "--features",
            &features.join(","),
        ])
        .args(extra)
        .envs(env);
        run_cargo(&mut cmd).context("integration tests failed; emulator logs are in target/emulators/logs/")?;
        run_native_checks(backends)
    })
}

/// Runs the table's extra checks of every backend running natively, with its variables.
fn run_native_checks(backends: &[Emulator]) -> Result<()> {
    let state = Store::new().load()?;
    for &e in backends {
        let (Some(check), Some(running)) = (e.spec().native_checks, state.get(e.name())) else {
            continue;
        };
        if running.runtime == Runtime::Native {
            check(&running.env).with_context(|| format!("the checks of emulator `{e}` failed"))?;
        }
    }
    Ok(())
}
