//! Cross-crate tests of nebula-credential: the conformance suite through
//! `nebula_credential::open`, and each backend against its real emulator (one cargo
//! feature per backend, turned on by `cargo xtask test-integration`). The tests live in
//! `tests/`; this library holds their fixtures, once:
//!
//! - one module per emulated backend ([`aws`], [`vault`], [`kubernetes`], [`azure`]), each
//!   the same row: `config(namespace)` (the one place a test builds that backend's
//!   configuration), `provider`, `fresh(tag)`, the raw client of the emulator, the
//!   conformance hooks (`Foreign`, and `ReadOnly`, `Rejected`, `UntrustedCa`, `OtherTools`
//!   where the emulator has them, otherwise a `*_ABSENT` reason) and its [`Row`];
//! - `faults` (feature `toxiproxy`): the Toxiproxy client and the network fault matrix;
//! - [`cleanup`], [`unique`], [`emulator_var`] and the log capture ([`captured_logs`]);
//! - `restart`: servers that keep state, which the restart tests kill -9 and start again.
//! - [`watch`]: the scenario of another writer rotating a credential a cached store watches.

use std::sync::Arc;

use nebula_credential::{CredentialFilter, StorageConfig, StorageMetrics, StorageProvider, open_with_metrics};
use nebula_credential_core::BoxError;
use nebula_credential_core::conformance::Opened;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "toxiproxy")]
pub mod faults;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
mod logs;
#[cfg(any(feature = "vault", feature = "kubernetes"))]
pub mod restart;
#[cfg(feature = "vault")]
pub mod vault;
pub mod watch;

pub use logs::{Captured, captured_logs};

/// The value of `name`, set by `cargo xtask` for `backend`'s emulator. Panics with what to
/// run when it is missing: a backend's tests never skip themselves.
pub fn emulator_var(name: &str, backend: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need the {backend} emulator. Run \
             `cargo xtask test-integration --backend {backend}` (it starts the emulator and sets \
             the variables), or `cargo xtask emulators up {backend}` then \
             `eval \"$(cargo xtask emulators env)\"`."
        ),
    }
}

/// A name unique to this test run, for resources on shared emulators.
pub fn unique(prefix: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:08x}", std::process::id())
}

/// Deletes every credential `p` lists (what a test stored); panics naming what failed.
pub async fn cleanup(p: &dyn StorageProvider) {
    for id in p.list(&CredentialFilter::new()).await.expect("list for cleanup") {
        p.delete(&id)
            .await
            .unwrap_or_else(|e| panic!("cleanup: delete of {id} failed: {e}"));
    }
}

/// Opens `config` through `open()`'s full layer stack, panicking with the backend's error.
pub async fn open_config(config: &StorageConfig) -> Arc<dyn StorageProvider> {
    nebula_credential::open(config)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", config.provider_name()))
}

/// Opens `config` with metrics, for a conformance hook.
pub async fn opened(config: &StorageConfig) -> Result<Opened, BoxError> {
    let metrics = Arc::new(StorageMetrics::new());
    let provider = open_with_metrics(config, metrics.clone()).await?;
    Ok(Opened { provider, metrics })
}

/// One emulated backend, as the tests over every backend (`nebula_cred.rs`) see it.
#[derive(Clone, Copy)]
pub struct Row {
    /// Its name in `PROVIDERS`, its cargo feature and `cargo xtask emulators up <name>`.
    pub name: &'static str,
    /// A configuration over namespace `ns` (a prefix in a place that exists without setup).
    pub config: fn(ns: &str) -> StorageConfig,
    /// Its read-only identity, or why the emulator has none.
    pub read_only: Result<ReadOnlyRow, &'static str>,
}

/// A backend's read-only identity, as a configuration of its own.
#[derive(Clone, Copy)]
pub struct ReadOnlyRow {
    /// A configuration of the read-only identity over a fresh prefix.
    pub config: fn() -> StorageConfig,
    /// What a write it is refused must name (the missing role, verb or capability).
    pub names: &'static [&'static str],
}

/// The rows of the emulated backends this run covers (their features are on).
pub fn rows() -> Vec<Row> {
    vec![
        #[cfg(feature = "aws")]
        aws::row(),
        #[cfg(feature = "kubernetes")]
        kubernetes::row(),
        #[cfg(feature = "vault")]
        vault::row(),
        #[cfg(feature = "azure")]
        azure::row(),
    ]
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_their_prefix() {
        let (a, b) = (unique("x"), unique("x"));
        assert!(a.starts_with("x-") && b.starts_with("x-"));
        assert_ne!(a, b);
    }

    #[test]
    #[should_panic(expected = "cargo xtask test-integration --backend nothing")]
    fn a_missing_emulator_variable_says_what_to_run() {
        emulator_var("NEBULA_TEST_SURELY_UNSET_VARIABLE", "nothing");
    }

    #[test]
    fn rows_cover_the_features_that_are_on() {
        let names: Vec<&str> = rows().iter().map(|r| r.name).collect();
        for (name, on) in [
            ("aws", cfg!(feature = "aws")),
            ("vault", cfg!(feature = "vault")),
            ("azure", cfg!(feature = "azure")),
            ("kubernetes", cfg!(feature = "kubernetes")),
        ] {
            assert_eq!(names.contains(&name), on, "{name}");
            if on {
                assert!(nebula_credential::PROVIDERS.iter().any(|(p, _)| *p == name), "{name}");
            }
        }
    }

    #[tokio::test]
    async fn cleanup_deletes_everything_listed() {
        let p = nebula_credential::MemoryProvider::new();
        let k: nebula_credential::CredentialId = "a".parse().unwrap();
        p.store(
            &k,
            &nebula_credential_core::conformance::data(1),
            &nebula_credential_core::conformance::meta(),
        )
        .await
        .unwrap();
        cleanup(&p).await;
        assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    }
}
