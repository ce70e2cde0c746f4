//! Running programs to completion: in their own process group, stopped with xtask on a
//! signal (see [`crate::shutdown`]), retried when a registry or network hiccups.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::shutdown;

/// The cargo that runs xtask, so toolchain overrides carry over.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs a cargo child to completion in its own process group, its output going to the
/// terminal; a signal meanwhile stops the whole group (cargo leaves its test binaries
/// running when it gets SIGTERM alone).
pub(crate) fn run_cargo(cmd: &mut Command) -> Result<()> {
    cmd.process_group(0);
    let child = shutdown::spawn_foreground(cmd).context("cannot run cargo; is Rust installed and on PATH?")?;
    let status = shutdown::wait_foreground(child, |mut c| c.wait()).context("cannot wait for cargo")?;
    if !status.success() {
        bail!(
            "cargo {:?} failed ({status})",
            cmd.get_args().next().unwrap_or_default()
        );
    }
    Ok(())
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
