//! Processes: finding free ports, starting servers in their own process group with logs,
//! waiting for health with a deadline, and stopping exactly the pids we started.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::shutdown;

/// A free TCP port on 127.0.0.1 (the OS picks; taken again by the server right after).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

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

/// The status code of `GET path` on 127.0.0.1:`port` (plain HTTP), if it answered.
pub(crate) fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The body of `GET path` on 127.0.0.1:`port` (plain HTTP, status 200 required).
pub(crate) fn http_get_bytes(port: u16, path: &str) -> Result<Vec<u8>> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("cannot connect to port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        bail!("GET {path} answered {}", head.lines().next().unwrap_or_default());
    }
    if head.contains("transfer-encoding: chunked") {
        bail!("GET {path} answered with a chunked body, which this client does not read");
    }
    Ok(response[split + 4..].to_vec())
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

/// Runs `cmd` to completion in its own process group, failing with its output when it
/// fails. A signal to xtask meanwhile stops it (see [`crate::shutdown`]).
pub(crate) fn run_checked(cmd: &mut Command, what: &str) -> Result<String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child =
        shutdown::spawn_foreground(cmd).with_context(|| format!("cannot run {what} ({:?})", cmd.get_program()))?;
    let out = shutdown::wait_foreground(child, std::process::Child::wait_with_output)
        .with_context(|| format!("cannot wait for {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Marks an error that trying again cannot fix (a registry's definite "not found", a
/// compile error); [`with_retries`] gives up at once on it.
#[derive(Debug)]
pub(crate) struct Permanent(pub(crate) String);

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Permanent {}

/// Marks `error` as [`Permanent`], keeping its message and adding `why` in front.
pub(crate) fn permanent(error: anyhow::Error, why: &str) -> anyhow::Error {
    error.context(Permanent(why.to_string()))
}

/// Runs `attempt` up to 3 times, 5 s apart, so a passing registry or network hiccup does
/// not fail CI. A [`Permanent`] error ends the attempts at once.
pub(crate) fn with_retries<T>(what: &str, attempt: impl FnMut() -> Result<T>) -> Result<T> {
    retry(what, Duration::from_secs(5), attempt)
}

fn retry<T>(what: &str, pause: Duration, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut last = None;
    for n in 1..=3 {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if e.downcast_ref::<Permanent>().is_some() => return Err(e),
            Err(e) => {
                eprintln!("    {what}: attempt {n} of 3 failed: {e:#}");
                last = Some(e);
                if n < 3 {
                    sleep(pause);
                }
            }
        }
    }
    Err(last.expect("three attempts")).with_context(|| format!("{what} failed 3 times"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_reads_the_status_line() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        });
        assert_eq!(http_status(port, "/health"), Some(204));
        server.join().unwrap();
        assert_eq!(http_status(free_port().unwrap(), "/"), None);
    }

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

    #[test]
    fn permanent_errors_are_not_retried_and_transient_ones_are() {
        let mut calls = 0;
        let e = retry("build", Duration::ZERO, || -> Result<()> {
            calls += 1;
            Err(permanent(anyhow::anyhow!("error[E0425]"), "does not compile"))
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(format!("{e:#}").contains("error[E0425]"), "{e:#}");
        let mut calls = 0;
        let v = retry("download", Duration::ZERO, || {
            calls += 1;
            if calls < 3 {
                bail!("connection reset")
            } else {
                Ok(calls)
            }
        })
        .unwrap();
        assert_eq!((v, calls), (3, 3));
        let mut calls = 0;
        let e = retry("download", Duration::ZERO, || -> Result<()> {
            calls += 1;
            bail!("connection reset")
        })
        .unwrap_err();
        assert_eq!(calls, 3);
        assert!(format!("{e:#}").contains("failed 3 times"));
    }
}
