//! Prerequisites: programs that must be installed, in at least the version the build needs.

use std::fmt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// A dotted version (`1.24.0`, `3.11`), compared part by part; missing parts count as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version([u32; 3]);

impl Version {
    /// `major.minor.patch`.
    pub(crate) const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version([major, minor, patch])
    }

    /// Parses `1.24.0`, `1.24`, or `1.22rc1` (only leading digits of a part count).
    pub(crate) fn parse(text: &str) -> Option<Version> {
        let mut parts = [0; 3];
        let mut count = 0;
        for (slot, part) in parts.iter_mut().zip(text.split('.')) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            *slot = digits.parse().ok()?;
            count += 1;
        }
        (count >= 2).then_some(Version(parts))
    }

    /// The first word of a version banner that is a version, once a leading name is cut
    /// off: `go version go1.26.8 linux/amd64` → 1.26.8, `Python 3.11.7` → 3.11.7.
    pub(crate) fn find(banner: &str) -> Option<Version> {
        banner
            .split_whitespace()
            .find_map(|word| Version::parse(word.trim_start_matches(|c: char| c.is_ascii_alphabetic())))
    }

    /// The `go` directive of a go.mod file: the least Go version that builds the module.
    pub(crate) fn go_directive(go_mod: &str) -> Option<Version> {
        go_mod
            .lines()
            .find_map(|line| line.trim().strip_prefix("go "))
            .and_then(|v| Version::parse(v.trim()))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.0;
        write!(f, "{major}.{minor}.{patch}")
    }
}

/// Checks that `program` can be run (`program` with the `probe` arguments).
pub(crate) fn require(program: &str, probe: &[&str], install_hint: &str) -> Result<()> {
    banner(program, probe, install_hint).map(drop)
}

/// What `program probe…` prints on stdout and stderr.
fn banner(program: &str, probe: &[&str], install_hint: &str) -> Result<String> {
    match Command::new(program).args(probe).stdin(Stdio::null()).output() {
        Ok(out) => Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => bail!("prerequisite `{program}` is missing or cannot run ({e}); {install_hint}"),
    }
}

/// Checks that `program probe…` reports at least version `needed`; `name` is how the
/// message calls it ("Go 1.21.5 found, 1.24.0+ needed: …").
pub(crate) fn require_version(
    name: &str,
    program: &str,
    probe: &[&str],
    needed: Version,
    install_hint: &str,
) -> Result<Version> {
    let text = banner(program, probe, install_hint)?;
    let found = Version::find(&text)
        .with_context(|| format!("cannot read the version of `{program}` from {:?}", text.trim()))?;
    check_version(name, found, needed, install_hint)?;
    Ok(found)
}

fn check_version(name: &str, found: Version, needed: Version, install_hint: &str) -> Result<()> {
    if found < needed {
        bail!("{name} {found} found, {needed}+ needed: {install_hint}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_banners_and_go_mod() {
        assert_eq!(
            Version::find("go version go1.26.8 linux/amd64"),
            Some(Version::new(1, 26, 8))
        );
        assert_eq!(Version::find("Python 3.11.7\n"), Some(Version::new(3, 11, 7)));
        assert_eq!(
            Version::find("go version go1.22rc1 linux/amd64"),
            Some(Version::new(1, 22, 0))
        );
        assert_eq!(Version::find("no version here 7"), None);
        let go_mod = "module nebula-credential/kube-apiserver-dev\n\ngo 1.24.0\n\nrequire (\n)\n";
        assert_eq!(Version::go_directive(go_mod), Some(Version::new(1, 24, 0)));
        assert_eq!(Version::go_directive("module x\n"), None);
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(Version::new(1, 9, 0) < Version::new(1, 10, 0));
        assert!(Version::parse("1.24").unwrap() == Version::new(1, 24, 0));
        assert!(Version::new(3, 8, 10) < Version::new(3, 9, 0));
        assert!(check_version("Go", Version::new(1, 26, 8), Version::new(1, 24, 0), "install").is_ok());
        assert!(check_version("Go", Version::new(1, 24, 0), Version::new(1, 24, 0), "install").is_ok());
        let e = check_version(
            "Go",
            Version::new(1, 21, 5),
            Version::new(1, 24, 0),
            "install Go 1.24.0+",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "Go 1.21.5 found, 1.24.0+ needed: install Go 1.24.0+");
    }

    #[test]
    fn the_kube_apiserver_go_mod_has_a_go_directive() {
        let go_mod = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../test-servers/kube-apiserver/go.mod"
        ))
        .unwrap();
        assert!(Version::go_directive(&go_mod).is_some());
    }

    #[test]
    fn a_missing_prerequisite_is_named() {
        let e = require("definitely-not-installed-xyz", &["--version"], "install it").unwrap_err();
        assert!(e.to_string().contains("`definitely-not-installed-xyz`"), "{e}");
        let e = require_version("X", "definitely-not-installed-xyz", &[], Version::new(1, 0, 0), "hint").unwrap_err();
        assert!(e.to_string().contains("hint"), "{e}");
    }
}
