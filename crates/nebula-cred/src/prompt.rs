//! Hidden prompts (the value of `put`, a passphrase) that give the terminal its echo back
//! when interrupted: rpassword turns echo off, and Ctrl-C would otherwise end the process
//! before it turns it on again, leaving the operator's shell typing blind.

use std::sync::Mutex;

/// The terminal modes to restore on Ctrl-C while a prompt is shown, if any.
#[cfg(unix)]
static SAVED: Mutex<Option<(std::fs::File, rustix::termios::Termios)>> = Mutex::new(None);
#[cfg(not(unix))]
static SAVED: Mutex<Option<()>> = Mutex::new(None);

/// Exit status of a process ended by Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: i32 = 130;

/// Shows `prompt` on the terminal and reads a line without echo.
pub(crate) fn hidden(prompt: &str) -> std::io::Result<String> {
    guard();
    let typed = rpassword::prompt_password(prompt);
    *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    typed
}

/// Saves the terminal's modes and, once per process, installs a Ctrl-C handler that puts
/// them back before exiting with status 130.
fn guard() {
    #[cfg(unix)]
    {
        let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty");
        if let Ok(tty) = tty
            && let Ok(modes) = rustix::termios::tcgetattr(&tty)
        {
            *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some((tty, modes));
        }
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Fails only when a handler exists already; the prompt still works without it.
        let _ = ctrlc::set_handler(|| {
            #[cfg(unix)]
            if let Some((tty, modes)) = SAVED.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                let _ = rustix::termios::tcsetattr(tty, rustix::termios::OptionalActions::Now, modes);
            }
            eprintln!();
            std::process::exit(INTERRUPTED);
        });
    });
}
