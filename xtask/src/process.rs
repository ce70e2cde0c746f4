//! Processes: starting servers in their own process group with logs, waiting for health
//! with a deadline, and stopping exactly the pids we started.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

/// A process xtask started: its pid and its start time (field 22 of `/proc/PID/stat`), so a
/// pid reused by another process is never taken for ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) started: u64,
}

/// State letter and start time of `pid`, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

impl Proc {
    /// The process that has `pid` now, if any.
    pub(crate) fn of(pid: u32) -> Option<Proc> {
        stat(pid).map(|(_, started)| Proc { pid, started })
    }

    /// This xtask.
    pub(crate) fn me() -> Proc {
        Proc::of(std::process::id()).expect("/proc/self/stat is readable")
    }

    /// Whether it still runs and is still the same process (zombies count as gone).
    pub(crate) fn alive(self) -> bool {
        matches!(stat(self.pid), Some((state, started)) if started == self.started && !matches!(state, 'Z' | 'X'))
    }

    /// Sends `signal` to its process group when it leads one (as everything [`spawn_logged`]
    /// starts does), else to it alone.
    fn signal(self, signal: Signal) {
        let Some(pid) = Pid::from_raw(self.pid as i32) else {
            return;
        };
        if rustix::process::kill_process_group(pid, signal).is_err() {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// Waits up to `timeout` for it to be gone, reaping it if it is our child.
    fn gone_within(self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            reap(self.pid);
            if !self.alive() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Stops it: SIGTERM, up to 15 s of grace, then SIGKILL. Gone already (or the pid now
    /// belongs to another process) is fine.
    pub(crate) fn stop(self) -> Result<()> {
        if !self.alive() {
            return Ok(());
        }
        self.signal(Signal::TERM);
        if self.gone_within(Duration::from_secs(15)) {
            return Ok(());
        }
        self.signal(Signal::KILL);
        if !self.gone_within(Duration::from_secs(2)) {
            bail!("pid {} survived SIGKILL", self.pid);
        }
        Ok(())
    }
}

impl std::fmt::Display for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.pid)
    }
}

/// Starts `cmd` in its own process group (so a Ctrl-C in the terminal reaches xtask, which
/// stops it, rather than killing it half-way), with stdout and stderr appended to `log`.
pub(crate) fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Proc> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    // Not reaped yet, so its /proc entry exists even if it already exited.
    Proc::of(child.id()).with_context(|| format!("cannot read /proc/{}/stat", child.id()))
}

/// Reaps `pid` if it is an exited child of this process, so it does not linger as a
/// zombie. Not a child (started by an earlier xtask) is fine: its parent was init.
fn reap(pid: u32) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
    }
}

/// Waits until `ready()` is true, failing when `pid` dies or `timeout` passes; either way
/// the error carries the tail of `log`.
pub(crate) fn wait_ready(
    what: &str,
    proc: Proc,
    log: &Path,
    timeout: Duration,
    ready: impl Fn() -> bool,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if ready() {
            eprintln!("    {what} ready after {:.1} s", start.elapsed().as_secs_f64());
            return Ok(());
        }
        reap(proc.pid);
        if !proc.alive() {
            bail!(
                "{what} exited during startup; last lines of {}:\n{}",
                log.display(),
                tail(log, 30)
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "{what} not ready after {} s; last lines of {}:\n{}",
                timeout.as_secs(),
                log.display(),
                tail(log, 30)
            );
        }
        sleep(Duration::from_millis(200));
    }
}

/// The last `lines` lines of a log file.
pub(crate) fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_ends_a_started_process_and_its_log_is_kept() {
        let dir = std::env::temp_dir().join(format!("xtask-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("sleep.log");
        let proc = spawn_logged(Command::new("sleep").arg("30"), &log).unwrap();
        assert!(proc.alive());
        proc.stop().unwrap();
        assert!(!proc.alive());
        assert!(log.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_pid_with_another_start_time_is_not_ours() {
        let dir = std::env::temp_dir().join(format!("xtask-test-reuse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let proc = spawn_logged(Command::new("sleep").arg("30"), &dir.join("sleep.log")).unwrap();
        let reused = Proc {
            started: proc.started + 1,
            ..proc
        };
        assert!(proc.alive());
        assert!(!reused.alive(), "same pid, other start time: another process");
        reused.stop().unwrap();
        assert!(proc.alive(), "stop must not signal a process that is not ours");
        proc.stop().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn start_time_is_read_even_with_spaces_and_parens_in_the_name() {
        let dir = std::env::temp_dir().join(format!("xtask-test-comm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let odd = dir.join("x) (y z");
        std::os::unix::fs::symlink("/bin/sleep", &odd).unwrap();
        let proc = spawn_logged(Command::new(&odd).arg("30"), &dir.join("log")).unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", proc.pid)).unwrap();
        assert!(comm.contains(") ("), "{comm}");
        assert!(proc.alive());
        assert!(proc.started >= Proc::me().started, "a child starts after its parent");
        proc.stop().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
