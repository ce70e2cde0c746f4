//! `emulators up|down|status|env`, `test-integration` and `bench`: bring emulators up on
//! either runtime, hand their variables to cargo, and always stop what this run started.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

use crate::emulator::{Emulator, Runtime};
use crate::process::alive;
use crate::state::State;
use crate::{docker, native};

/// Starts `emulators` (reusing ones already running) and records each in the state file
/// as soon as it runs.
pub(crate) fn up(emulators: &[Emulator], runtime: Runtime) -> Result<()> {
    let mut state = State::load()?;
    let missing: Vec<Emulator> = emulators
        .iter()
        .copied()
        .filter(|e| match state.get(*e) {
            Some(r) if r.runtime == Runtime::Native && r.pids.iter().all(|p| alive(*p)) => {
                eprintln!("==> {e}: already running (native), reused");
                false
            }
            Some(r) if r.runtime == Runtime::Docker => {
                eprintln!("==> {e}: already running (docker), reused");
                false
            }
            _ => true,
        })
        .collect();
    match runtime {
        Runtime::Native => {
            for e in missing {
                eprintln!("==> {e}: starting {}", e.spec().native);
                let running = native::start(e).with_context(|| format!("emulator `{e}` did not start"))?;
                state.put(e, running)?;
                check_exports(e, &state)?;
            }
        }
        Runtime::Docker if !missing.is_empty() => {
            eprintln!("==> starting with docker compose: {missing:?}");
            for (e, running) in docker::up(&missing)? {
                state.put(e, running)?;
                check_exports(e, &state)?;
            }
        }
        Runtime::Docker => {}
    }
    Ok(())
}

/// Both runtimes must export every variable the table promises for `e`.
fn check_exports(e: Emulator, state: &State) -> Result<()> {
    let env = state.get(e).map(|r| &r.env);
    let missing: Vec<&str> = e
        .spec()
        .env
        .iter()
        .copied()
        .filter(|v| !env.is_some_and(|env| env.contains_key(*v)))
        .collect();
    if !missing.is_empty() {
        bail!("emulator `{e}` started but did not export {missing:?}; this is a bug in xtask");
    }
    Ok(())
}

/// Stops `emulators` (only what xtask recorded starting) and forgets them.
pub(crate) fn down(emulators: &[Emulator]) -> Result<()> {
    let mut state = State::load()?;
    let mut docker_services = Vec::new();
    for &e in emulators {
        let Some(running) = state.get(e).cloned() else {
            continue;
        };
        match running.runtime {
            Runtime::Native => {
                for pid in &running.pids {
                    crate::process::stop(*pid)?;
                }
                eprintln!("==> {e}: stopped (pid {:?})", running.pids);
            }
            Runtime::Docker => docker_services.push(e),
        }
        state.remove(e)?;
    }
    if !docker_services.is_empty() {
        docker::down(&docker_services)?;
        eprintln!("==> stopped with docker compose: {docker_services:?}");
    }
    Ok(())
}

/// Prints what runs, by emulator.
pub(crate) fn status(emulators: &[Emulator]) -> Result<()> {
    let state = State::load()?;
    for &e in emulators {
        match state.get(e) {
            None => println!("{e:<11} stopped"),
            Some(r) => {
                let health = match r.runtime {
                    Runtime::Native if r.pids.iter().all(|p| alive(*p)) => "running",
                    Runtime::Native => "DEAD (recorded but not running; run `cargo xtask emulators down`)",
                    Runtime::Docker => "running (docker)",
                };
                let vars: Vec<&str> = r.env.keys().map(String::as_str).collect();
                println!("{e:<11} {health}, pids {:?}, sets {}", r.pids, vars.join(" "));
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
    for (k, v) in State::load()?.env() {
        println!("export {k}='{}'", v.replace('\'', "'\\''"));
    }
    Ok(())
}

/// Emulators recorded now that were not recorded in `before`: what this run started.
fn started_since(before: &BTreeSet<String>) -> Result<Vec<Emulator>> {
    let state = State::load()?;
    Ok(Emulator::all()
        .filter(|e| state.get(*e).is_some() && !before.contains(e.spec().name))
        .collect())
}

/// Runs `body` with `emulators` up and their variables; afterwards stops the emulators
/// this run started (not those it found running), whatever happened, also on Ctrl-C.
fn with_emulators<T>(
    emulators: &[Emulator],
    runtime: Runtime,
    body: impl FnOnce(BTreeMap<String, String>) -> Result<T>,
) -> Result<T> {
    let before: BTreeSet<String> = State::load()?.emulators.keys().cloned().collect();
    {
        let before = before.clone();
        ctrlc::set_handler(move || {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("\n==> interrupted: stopping the emulators this run started");
            let child = CARGO_CHILD.load(Ordering::SeqCst);
            if child != 0 {
                let _ = crate::process::stop(child);
            }
            if let Err(e) = started_since(&before).and_then(|list| down(&list)) {
                eprintln!("    could not stop everything: {e:#}");
            }
            std::process::exit(130);
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    let result = up(emulators, runtime).and_then(|()| {
        let state = State::load()?;
        let env = emulators
            .iter()
            .filter_map(|e| state.get(*e))
            .flat_map(|r| r.env.clone())
            .collect();
        body(env)
    });
    let stopped = started_since(&before).and_then(|list| down(&list));
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
        run_cargo(&mut cmd).context("integration tests failed; emulator logs are in target/emulators/logs/")
    })
}

/// `cargo bench --bench NAME`, with the emulator (and runtime) it needs up, if any.
pub(crate) fn bench(name: &[&str], emulator: Option<(Emulator, Runtime)>, extra: &[String]) -> Result<()> {
    let name = name.first().copied().unwrap_or_default();
    let run = |env: BTreeMap<String, String>| {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", "nebula-credential-benches", "--bench", name])
            .args(extra)
            .envs(env);
        run_cargo(&mut cmd)
    };
    match emulator {
        Some((e, runtime)) => with_emulators(&[e], runtime, run),
        None => run(BTreeMap::new()),
    }
}

/// The pid of the cargo child running tests or benches, for the Ctrl-C handler.
static CARGO_CHILD: AtomicU32 = AtomicU32::new(0);
/// Set by the Ctrl-C handler, which then owns the shutdown.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs a cargo child to completion; a Ctrl-C meanwhile stops it too.
fn run_cargo(cmd: &mut Command) -> Result<()> {
    let mut child = cmd.spawn().context("cannot run cargo")?;
    CARGO_CHILD.store(child.id(), Ordering::SeqCst);
    let status = child.wait();
    CARGO_CHILD.store(0, Ordering::SeqCst);
    while INTERRUPTED.load(Ordering::SeqCst) {
        // The handler is stopping everything and will exit the process.
        std::thread::park();
    }
    let status = status.context("cannot wait for cargo")?;
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
