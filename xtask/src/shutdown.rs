//! Quitting on SIGINT, SIGTERM or SIGHUP: stop the child running in the foreground and
//! every emulator this xtask started, then exit.

use std::io;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result};

use crate::process::Proc;

/// Set by the handler, which then owns the shutdown.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The child xtask waits for (cargo, go build, pip), stopped by the handler.
static FOREGROUND: Mutex<Option<Proc>> = Mutex::new(None);

/// Installs the handler, which calls `stop` to stop what this run started; once per process.
pub(crate) fn install(stop: fn() -> Result<()>) -> Result<()> {
    ctrlc::set_handler(move || {
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\n==> interrupted: stopping what this run started");
        let foreground = *FOREGROUND.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = foreground {
            let _ = child.stop();
        }
        if let Err(e) = stop() {
            eprintln!("    could not stop everything: {e:#}");
        }
        std::process::exit(130);
    })
    .context("cannot install the signal handler")
}

/// Whether a signal asked xtask to quit.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Blocks for good once interrupted, leaving the handler to stop things and exit.
pub(crate) fn halt_if_interrupted() {
    while interrupted() {
        std::thread::park();
    }
}

/// Spawns `cmd` as the foreground child; refused once a signal arrived.
pub(crate) fn spawn_foreground(cmd: &mut Command) -> io::Result<Child> {
    let mut slot = FOREGROUND.lock().unwrap_or_else(PoisonError::into_inner);
    if interrupted() {
        return Err(io::Error::other("interrupted"));
    }
    let child = cmd.spawn()?;
    *slot = Proc::of(child.id());
    Ok(child)
}

/// Waits for the foreground `child` with `wait`, then clears it.
pub(crate) fn wait_foreground<T>(child: Child, wait: impl FnOnce(Child) -> io::Result<T>) -> io::Result<T> {
    let result = wait(child);
    *FOREGROUND.lock().unwrap_or_else(PoisonError::into_inner) = None;
    halt_if_interrupted();
    result
}
