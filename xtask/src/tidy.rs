//! The tidy check (as rust-analyzer's `xtask/src/tidy.rs`): every backend in the umbrella's
//! `providers!` table has every edit site adding a backend needs, so a missing one fails
//! `cargo test -p xtask` and `cargo xtask ci` with the file or row to add. The list is the
//! one CONTRIBUTING.md gives ("Tidy rows" of issue 20):
//!
//! - for a backend in its own crate: `crates/nebula-credential-NAME/` with `README.md`
//!   (its crate docs through `include_str!`, and its package's `readme`), the
//!   umbrella feature `storage-NAME` (also in `storage-all`) and the umbrella's
//!   `pub mod NAME` re-export; and every `NEBULA_…` variable its `src/config.rs` reads
//!   (earlier names passed to `var_renamed` / `path_renamed` aside) named in that README;
//! - for every backend: `tests/tests/NAME.rs` and the bench `benches/benches/NAME.rs`;
//! - for a backend tested against a server: the `tests/` feature `NAME`, its emulator file
//!   `xtask/src/emulators/NAME.rs` in the emulator table, and its service in
//!   `docker-compose.test.yml`.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::emulators::Emulator;
use crate::metadata::Metadata;

/// Where the `providers!` table is.
const PROVIDERS_FILE: &str = "crates/nebula-credential/src/config.rs";
/// Where the umbrella re-exports each backend crate as `pub mod NAME`.
const UMBRELLA_LIB: &str = "crates/nebula-credential/src/lib.rs";
/// Backends that run in-process, so have no emulator, tests feature or compose service.
const IN_PROCESS: &[&str] = &["memory", "local"];
/// The feature of a backend built into the core (no crate of its own).
const BUILT_IN: &str = "(always)";

/// One row of `providers!`: `Variant = "name", cfg(...), "feature", ConfigType, "doc";`.
#[derive(Debug, PartialEq)]
struct Provider {
    name: String,
    feature: String,
}

/// The rows of the `providers! { … }` invocation in `source`.
fn providers(source: &str) -> Result<Vec<Provider>> {
    let start = source
        .find("\nproviders! {")
        .context("no `providers! {` invocation at the start of a line")?;
    let body = &source[start..];
    let body = &body[..body.find("\n}").context("the `providers!` invocation does not end")?];
    let mut rows = Vec::new();
    for line in body.lines().skip(1) {
        let Some((variant, rest)) = line.trim().split_once(" = \"") else {
            continue;
        };
        if !variant.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let (name, rest) = rest.split_once('"').context("a row without its name's closing quote")?;
        let feature = rest
            .split('"')
            .nth(1)
            .with_context(|| format!("the row of `{name}` has no feature string"))?;
        rows.push(Provider {
            name: name.to_string(),
            feature: feature.to_string(),
        });
    }
    if rows.is_empty() {
        bail!("no rows in `providers!`");
    }
    Ok(rows)
}

/// Whether `manifest` (a Cargo.toml) names its README with a `readme` line.
fn names_readme(manifest: &str) -> bool {
    manifest.lines().any(|l| {
        let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
        l == "readme=\"README.md\"" || l == "readme.workspace=true"
    })
}

/// The `NEBULA_…` variables `config` (a backend's `src/config.rs`, its tests left out) names
/// as string literals, without the earlier names it passes to `var_renamed` / `path_renamed`
/// (`var_renamed("NEW", &["OLD", …])`), which the README need not show.
fn read_variables(config: &str) -> Vec<String> {
    let code = config.split("#[cfg(test)]").next().unwrap_or_default();
    let literals = |text: &str| -> Vec<String> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| {
                s.starts_with("NEBULA_")
                    && s.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .map(String::from)
            .collect()
    };
    let mut earlier = Vec::new();
    for (i, _) in code.match_indices("_renamed(") {
        let call = &code[i..];
        if let Some(list) = call
            .find("&[")
            .and_then(|a| call[a..].find(']').map(|b| &call[a..a + b]))
        {
            earlier.extend(literals(list));
        }
    }
    let mut vars: Vec<String> = literals(code).into_iter().filter(|v| !earlier.contains(v)).collect();
    vars.sort();
    vars.dedup();
    vars
}

/// What `provider` lacks, one line each.
fn missing_sites(root: &Path, metadata: &Metadata, compose: &str, provider: &Provider) -> Vec<String> {
    let name = provider.name.as_str();
    let mut missing = Vec::new();
    let mut need = |ok: bool, what: String| {
        if !ok {
            missing.push(format!("{name}: {what}"));
        }
    };
    if provider.feature != BUILT_IN {
        let krate = format!("nebula-credential-{name}");
        let dir = format!("crates/{krate}");
        let package = metadata.package(&krate);
        need(
            package.is_some_and(|p| p.dir() == root.join(&dir)),
            format!("the crate `{krate}` in {dir}/ (a workspace member)"),
        );
        let readme = format!("{dir}/README.md");
        need(
            root.join(&readme).is_file(),
            format!("{readme} (the backend's documentation)"),
        );
        // `cargo metadata` reports a README.md cargo found by itself as `readme` too, so the
        // manifest is read for the line.
        let manifest = std::fs::read_to_string(root.join(&dir).join("Cargo.toml")).unwrap_or_default();
        need(
            package.is_some_and(|p| p.readme.as_deref() == Some("README.md")) && names_readme(&manifest),
            format!("readme = \"README.md\" in {dir}/Cargo.toml"),
        );
        let lib = std::fs::read_to_string(root.join(&dir).join("src/lib.rs")).unwrap_or_default();
        let config = std::fs::read_to_string(root.join(&dir).join("src/config.rs")).unwrap_or_default();
        let readme_text = std::fs::read_to_string(root.join(&readme)).unwrap_or_default();
        for var in read_variables(&config) {
            need(
                readme_text.contains(&format!("`{var}`")),
                format!("`{var}` (read by {dir}/src/config.rs) named in {readme}"),
            );
        }
        need(
            lib.contains("include_str!(\"../README.md\")"),
            format!("#![doc = include_str!(\"../README.md\")] in {dir}/src/lib.rs"),
        );
        let feature = format!("storage-{name}");
        need(
            provider.feature == feature
                && metadata
                    .package("nebula-credential")
                    .is_some_and(|p| p.features.contains_key(&feature)),
            format!("the feature `{feature}` in crates/nebula-credential/Cargo.toml and its `providers!` row"),
        );
        need(
            metadata
                .package("nebula-credential")
                .and_then(|p| p.features.get("storage-all"))
                .is_some_and(|all| all.contains(&feature)),
            format!("`{feature}` in the `storage-all` feature of crates/nebula-credential/Cargo.toml"),
        );
        let umbrella = std::fs::read_to_string(root.join(UMBRELLA_LIB)).unwrap_or_default();
        need(
            umbrella
                .lines()
                .map(str::trim)
                .any(|l| l == format!("pub mod {name} {{") || l == format!("pub mod {name};")),
            format!("`pub mod {name}` (its re-export) in {UMBRELLA_LIB}"),
        );
    }
    let test = format!("tests/tests/{name}.rs");
    need(
        root.join(&test).is_file(),
        format!("{test} (its tests through the conformance kit)"),
    );
    need(
        metadata
            .package("nebula-credential-benches")
            .and_then(|p| p.target("bench", name))
            .is_some_and(|t| t.src_path == root.join(format!("benches/benches/{name}.rs"))),
        format!("benches/benches/{name}.rs and its [[bench]] in benches/Cargo.toml"),
    );
    if !IN_PROCESS.contains(&name) {
        need(
            metadata
                .package("nebula-credential-tests")
                .is_some_and(|p| p.features.contains_key(name)),
            format!("the feature `{name}` in tests/Cargo.toml"),
        );
        let file = format!("xtask/src/emulators/{name}.rs");
        let emulator = name.parse::<Emulator>().ok().filter(|e| e.name() == name);
        need(
            root.join(&file).is_file() && emulator.is_some(),
            format!("{file} and its row in xtask's emulator table (xtask/src/emulators/mod.rs)"),
        );
        if let Some(e) = emulator {
            let service = e.spec().docker_service;
            need(
                compose.contains(&format!("\n  {service}:\n")),
                format!("the service `{service}` in docker-compose.test.yml"),
            );
        }
    }
    missing
}

/// Checks every backend of `providers!` in the workspace at `root`, and that every emulator
/// is a backend's; the error lists everything missing.
pub(crate) fn check(root: &Path, metadata: &Metadata) -> Result<()> {
    let file = root.join(PROVIDERS_FILE);
    let source = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let providers =
        providers(&source).with_context(|| format!("cannot read the providers! table of {PROVIDERS_FILE}"))?;
    let compose = std::fs::read_to_string(root.join("docker-compose.test.yml")).unwrap_or_default();
    let mut missing: Vec<String> = providers
        .iter()
        .flat_map(|p| missing_sites(root, metadata, &compose, p))
        .collect();
    for e in Emulator::all().filter(|e| e.is_backend()) {
        if !providers.iter().any(|p| p.name == e.name()) {
            missing.push(format!(
                "{e}: xtask/src/emulators/{e}.rs emulates a backend that is not in `providers!` ({PROVIDERS_FILE})"
            ));
        }
    }
    if !missing.is_empty() {
        bail!(
            "tidy: {} edit site(s) missing (adding a backend needs each; see CONTRIBUTING.md):\n  {}",
            missing.len(),
            missing.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::workspace_root;

    const TABLE: &str = r#"
macro_rules! providers {
    ($($variant:ident = $name:literal, $cfg:meta, $feature:literal, $config:ty, $doc:literal;)*) => {};
}

providers! {
    Memory = "memory", all(), "(always)", nebula_credential_core::MemoryConfig,
        "In-memory storage, lost on exit: tests and prototypes.";
    Aws = "aws", feature = "storage-aws", "storage-aws", nebula_credential_aws::AwsSecretsManagerConfig,
        "AWS Secrets Manager (feature `storage-aws`).";
}
"#;

    #[test]
    fn the_providers_table_is_read_row_by_row() {
        let rows = providers(TABLE).unwrap();
        let expected = [("memory", "(always)"), ("aws", "storage-aws")].map(|(name, feature)| Provider {
            name: name.into(),
            feature: feature.into(),
        });
        assert_eq!(rows, expected);
        assert!(providers("fn main() {}").is_err());
    }

    #[test]
    fn variables_read_by_a_config_are_found_without_their_earlier_names() {
        let config = r#"
            let a = env::var(&["NEBULA_X_ENDPOINT", "X_ADDR"]);
            let b = env::var_renamed("NEBULA_X_MOUNT_PATH", &["NEBULA_X_MOUNT"]);
            let c = env::path_renamed(
                "NEBULA_X_BASE_PATH",
                &["NEBULA_OLD_DIR", "NEBULA_OLDER_DIR"],
            );
            let m = "set NEBULA_X_ROLE_ID and NEBULA_X_SECRET_ID";
            #[cfg(test)]
            mod tests { const T: &str = "NEBULA_X_ONLY_IN_TESTS"; }
        "#;
        assert_eq!(
            read_variables(config),
            ["NEBULA_X_BASE_PATH", "NEBULA_X_ENDPOINT", "NEBULA_X_MOUNT_PATH"]
        );
    }

    #[test]
    fn a_readme_is_named_by_a_line_of_the_manifest_not_found_by_cargo() {
        assert!(names_readme("[package]\nname = \"x\"\nreadme = \"README.md\"\n"));
        assert!(names_readme("[package]\nreadme.workspace = true\n"));
        assert!(
            !names_readme("[package]\nname = \"x\"\n"),
            "cargo's own README.md detection is not the line"
        );
        assert!(!names_readme("[package]\nreadme = \"docs/README.md\"\n"));
    }

    #[test]
    fn a_backend_without_its_edit_sites_is_named_with_each_missing_file() {
        let root = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let metadata = Metadata::parse(br#"{"packages": []}"#).unwrap();
        let gcp = Provider {
            name: "gcp".into(),
            feature: "storage-gcp".into(),
        };
        let missing = missing_sites(&root, &metadata, "", &gcp);
        for site in [
            "gcp: the crate `nebula-credential-gcp` in crates/nebula-credential-gcp/",
            "gcp: crates/nebula-credential-gcp/README.md",
            "gcp: readme = \"README.md\" in crates/nebula-credential-gcp/Cargo.toml",
            "gcp: #![doc = include_str!(\"../README.md\")] in crates/nebula-credential-gcp/src/lib.rs",
            "gcp: the feature `storage-gcp` in crates/nebula-credential/Cargo.toml",
            "gcp: `storage-gcp` in the `storage-all` feature",
            "gcp: `pub mod gcp` (its re-export) in crates/nebula-credential/src/lib.rs",
            "gcp: tests/tests/gcp.rs",
            "gcp: benches/benches/gcp.rs",
            "gcp: the feature `gcp` in tests/Cargo.toml",
            "gcp: xtask/src/emulators/gcp.rs",
        ] {
            assert!(
                missing.iter().any(|m| m.starts_with(site)),
                "{site} not in {missing:#?}"
            );
        }
        let memory = Provider {
            name: "memory".into(),
            feature: BUILT_IN.into(),
        };
        let missing = missing_sites(&root, &metadata, "", &memory);
        assert_eq!(
            missing.len(),
            2,
            "a built-in backend needs only its tests and bench: {missing:#?}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    /// The tidy check itself, on this workspace.
    #[test]
    fn every_backend_has_every_edit_site() {
        if let Err(e) = check(&workspace_root(), &Metadata::load().unwrap()) {
            panic!("{e:#}");
        }
    }
}
