//! `cargo xtask emulators up|down|status|env`.

use anyhow::Result;

use crate::emulators::Emulator;
use crate::harness;
use crate::runtime::Runtime;
use crate::state::Store;

/// `emulators up`: starts `named` (all when empty) and leaves them running.
pub(crate) fn up(named: &[Emulator], runtime: Runtime) -> Result<()> {
    harness::up(&Emulator::these_or_all(named), runtime)?;
    eprintln!("==> running; `eval \"$(cargo xtask emulators env)\"` exports their variables");
    Ok(())
}

/// `emulators down`: stops `named` (all when empty), only what xtask started.
pub(crate) fn down(named: &[Emulator]) -> Result<()> {
    harness::down(&Emulator::these_or_all(named))
}

/// `emulators status`: what runs, by emulator, after removing stale entries.
pub(crate) fn status(named: &[Emulator]) -> Result<()> {
    let store = Store::new();
    harness::prune(&store)?;
    let state = store.load()?;
    for e in Emulator::these_or_all(named) {
        match state.get(e.name()) {
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

/// `emulators env`: `export NAME=value` for every running emulator (for
/// `eval "$(cargo xtask emulators env)"`).
pub(crate) fn env() -> Result<()> {
    for (k, v) in Store::new().load()?.env() {
        println!("export {k}='{}'", v.replace('\'', "'\\''"));
    }
    Ok(())
}
