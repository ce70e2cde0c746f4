//! `emulators up|down|status|env`, `test-integration` and `bench`: bring emulators up on
//! either runtime, hand their variables to cargo, and always stop what this run started.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::emulator::{Emulator, Env, Runtime};
use crate::state::{State, Store};
use crate::{docker, launch, shutdown};

/// Removes stale entries from the state file, saying which and why.
fn prune(store: &Store) -> Result<()> {
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
        match state.get(e) {
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
                launch::start(e, &store).with_context(|| format!("emulator `{e}` did not start"))?;
                check_exports(e, &store.load()?)?;
            }
        }
        Runtime::Docker if !missing.is_empty() => {
            eprintln!("==> starting with docker compose: {missing:?}");
            for (e, running) in docker::up(&missing)? {
                store.update(|s| Ok(s.emulators.insert(e.spec().name.to_string(), running)))?;
                check_exports(e, &store.load()?)?;
            }
        }
        Runtime::Docker => {}
    }
    Ok(())
}

/// Both runtimes must export every variable the table promises for `e`.
fn check_exports(e: Emulator, state: &State) -> Result<()> {
    let running = state.get(e);
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
        let Some(running) = store.load()?.get(e).cloned() else {
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
        store.update(|s| Ok(s.emulators.remove(e.spec().name)))?;
    }
    if !docker_services.is_empty() {
        docker::down(&docker_services)?;
        eprintln!("==> stopped with docker compose: {docker_services:?}");
    }
    Ok(())
}

/// Stops the emulators this xtask started (not those it found running).
pub(crate) fn stop_owned() -> Result<()> {
    down(&Store::new().load()?.owned_by_me())
}

/// Prints what runs, by emulator, after removing stale entries.
pub(crate) fn status(emulators: &[Emulator]) -> Result<()> {
    let store = Store::new();
    prune(&store)?;
    let state = store.load()?;
    for &e in emulators {
        match state.get(e) {
            None => println!("{e:<11} stopped"),
            Some(r) => {
                let health = match (r.ready, r.runtime) {
                    (false, _) => format!("starting (by xtask pid {})", r.owner),
                    (true, Runtime::Native) => "running".to_string(),
                    (true, Runtime::Docker) => "running (docker)".to_string(),
                };
                let pids: Vec<u32> = r.procs.iter().map(|p| p.pid).collect();
                let vars: Vec<&str> = r.env.keys().map(String::as_str).collect();
                println!("{e:<11} {health}, pids {pids:?}, sets {}", vars.join(" "));
                if let Some(log) = &r.log {
                    println!("{:<11} log {}", "", log.display());
                }
            }
        }
    }
    Ok(())
}

/// Prints `export NAME=value` for every running emulator (for `eval "$(cargo xtask emulators env)"`).
pub(crate) fn print_env() -> Result<()> {
    for (k, v) in Store::new().load()?.env() {
        println!("export {k}='{}'", v.replace('\'', "'\\''"));
    }
    Ok(())
}

/// Runs `body` with `emulators` up and their variables; afterwards stops the emulators
/// this run started (not those it found running), whatever happened. A signal meanwhile
/// is handled by [`shutdown`], which stops the same.
fn with_emulators<T>(emulators: &[Emulator], runtime: Runtime, body: impl FnOnce(Env) -> Result<T>) -> Result<T> {
    let result = up(emulators, runtime).and_then(|()| {
        let state = Store::new().load()?;
        let env = emulators
            .iter()
            .filter_map(|e| state.get(*e))
            .flat_map(|r| r.env.clone())
            .collect();
        body(env)
    });
    let stopped = stop_owned();
    let value = result?;
    stopped?;
    Ok(value)
}

/// `cargo test -p nebula-credential-tests` with the backends' features and variables.
pub(crate) fn test_integration(backends: &[Emulator], runtime: Runtime, extra: &[String]) -> Result<()> {
    let features: Vec<&str> = backends.iter().map(|e| e.spec().name).collect();
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
        let (Some(check), Some(running)) = (e.spec().native_checks, state.get(e)) else {
            continue;
        };
        if running.runtime == Runtime::Native {
            check(&running.env).with_context(|| format!("the checks of emulator `{e}` failed"))?;
        }
    }
    Ok(())
}

/// `cargo bench --bench NAME`, with the emulator (and runtime) it needs up, if any.
pub(crate) fn bench(name: &[&str], emulator: Option<(Emulator, Runtime)>, extra: &[String]) -> Result<()> {
    let name = name.first().copied().unwrap_or_default();
    let run = |env: Env| {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", "nebula-credential-benches", "--bench", name])
            .args(extra)
            .envs(env);
        run_cargo(&mut cmd)
    };
    match emulator {
        Some((e, runtime)) => with_emulators(&[e], runtime, run),
        None => run(Env::new()),
    }
}

/// Runs a cargo child to completion in its own process group; a signal meanwhile stops
/// the whole group (cargo leaves its test binaries running when it gets SIGTERM alone).
fn run_cargo(cmd: &mut Command) -> Result<()> {
    cmd.process_group(0);
    let child = shutdown::spawn_foreground(cmd).context("cannot run cargo")?;
    let status = shutdown::wait_foreground(child, |mut c| c.wait()).context("cannot wait for cargo")?;
    if !status.success() {
        bail!(
            "cargo {:?} failed ({status})",
            cmd.get_args().next().unwrap_or_default()
        );
    }
    Ok(())
}

/// The cargo that runs xtask, so toolchain overrides carry over.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}
