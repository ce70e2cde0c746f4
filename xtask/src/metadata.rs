//! The workspace as `cargo metadata --no-deps` describes it: its packages, what they
//! publish, their `rust-version`, features and targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::paths::workspace_root;
use crate::run::cargo;

/// The workspace's packages.
#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    /// Every member.
    pub(crate) packages: Vec<Package>,
}

/// One member package.
#[derive(Debug, Deserialize)]
pub(crate) struct Package {
    /// Its name.
    pub(crate) name: String,
    /// Its `Cargo.toml`.
    pub(crate) manifest_path: PathBuf,
    /// The registries it may be published to: `Some([])` for `publish = false`, `None` for any.
    pub(crate) publish: Option<Vec<String>>,
    /// Its `rust-version`, resolved (`rust-version.workspace = true` gives the workspace's).
    pub(crate) rust_version: Option<String>,
    /// Its features.
    pub(crate) features: BTreeMap<String, Vec<String>>,
    /// Its targets (lib, bins, tests, benches…).
    pub(crate) targets: Vec<Target>,
    /// Its README, relative to its directory (`readme =`, or the README.md cargo found).
    pub(crate) readme: Option<String>,
}

/// One target of a package.
#[derive(Debug, Deserialize)]
pub(crate) struct Target {
    /// Its name.
    pub(crate) name: String,
    /// `lib`, `bin`, `test`, `bench`, …
    pub(crate) kind: Vec<String>,
    /// Its root source file.
    pub(crate) src_path: PathBuf,
}

impl Package {
    /// Whether `cargo publish` may publish it (no `publish = false`).
    pub(crate) fn is_published(&self) -> bool {
        self.publish.as_ref().is_none_or(|registries| !registries.is_empty())
    }

    /// The directory holding its `Cargo.toml`.
    pub(crate) fn dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(Path::new("."))
    }

    /// Its target of `kind` called `name`.
    pub(crate) fn target(&self, kind: &str, name: &str) -> Option<&Target> {
        self.targets
            .iter()
            .find(|t| t.name == name && t.kind.iter().any(|k| k == kind))
    }
}

impl Metadata {
    /// `cargo metadata --no-deps` of this workspace.
    pub(crate) fn load() -> Result<Metadata> {
        let out = cargo()
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(workspace_root())
            .output()
            .context("cannot run cargo metadata; is Rust installed and on PATH?")?;
        if !out.status.success() {
            bail!(
                "cargo metadata failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Metadata::parse(&out.stdout)
    }

    /// Parses `cargo metadata --format-version 1` output.
    pub(crate) fn parse(json: &[u8]) -> Result<Metadata> {
        serde_json::from_slice(json).context("cargo metadata printed what xtask cannot read")
    }

    /// The package called `name`.
    pub(crate) fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// The packages `cargo publish` may publish, in workspace order.
    pub(crate) fn published(&self) -> impl Iterator<Item = &Package> {
        self.packages.iter().filter(|p| p.is_published())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_packages_and_rust_versions_come_from_the_manifests() {
        let json = br#"{"packages": [
            {"name": "lib-a", "manifest_path": "/w/crates/lib-a/Cargo.toml", "publish": null,
             "rust_version": "1.89", "features": {"x": []}, "readme": "README.md",
             "targets": [{"name": "lib_a", "kind": ["lib"], "src_path": "/w/crates/lib-a/src/lib.rs"}]},
            {"name": "tests", "manifest_path": "/w/tests/Cargo.toml", "publish": [],
             "rust_version": null, "features": {}, "readme": null, "targets": []}
        ], "workspace_root": "/w", "version": 1}"#;
        let m = Metadata::parse(json).unwrap();
        let published: Vec<&str> = m.published().map(|p| p.name.as_str()).collect();
        assert_eq!(published, ["lib-a"]);
        let a = m.package("lib-a").unwrap();
        assert_eq!(a.dir(), Path::new("/w/crates/lib-a"));
        assert_eq!(a.rust_version.as_deref(), Some("1.89"));
        assert!(a.target("lib", "lib_a").is_some() && a.target("bench", "lib_a").is_none());
        assert!(!m.package("tests").unwrap().is_published());
    }

    #[test]
    fn this_workspace_reads() {
        let m = Metadata::load().unwrap();
        assert!(m.package("xtask").is_some_and(|p| !p.is_published()));
        assert!(m.package("nebula-credential-core").is_some_and(Package::is_published));
    }
}
