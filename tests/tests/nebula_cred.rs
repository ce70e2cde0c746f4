//! `nebula-cred` over every backend this run covers, through the engines the CLI runs and
//! `open()`'s full layer stacks: `migrate` between every pair of backends (records arrive
//! byte-identical — ciphertext and metadata — and decrypt on the target with the same key,
//! a different record already on the target is left alone unless `overwrite`, and a second
//! run writes nothing), `doctor` passing every step on each backend, and `doctor` naming the
//! missing permission for each emulator's restricted identity.
//!
//! Each backend is one entry of [`backends`]; the pairs are generated from the list.
//! Memory (a fresh store per `open()`) makes local ↔ memory run without emulators.

use std::sync::Arc;

use nebula_cred::doctor::{PROBE_ID, StepOutcome, diagnose};
use nebula_credential::migrate::{MigrateOptions, MigrationReport, migrate};
use nebula_credential::secrecy::ExposeSecret;
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialStore, EncryptionKey, ErrorKind, Keyring, PROVIDERS, StorageConfig,
    StorageProvider, Tags, open,
};
use nebula_credential_tests::{rows, unique};

/// A backend's configuration, isolated in namespace `ns` (a directory, a name prefix, …).
type Config = fn(ns: &str) -> StorageConfig;

/// Every backend this run covers: local and memory always, then each emulated one's row
/// (`nebula_credential_tests::rows`, one per feature that is on).
fn backends() -> Vec<(&'static str, Config)> {
    let mut list: Vec<(&'static str, Config)> = vec![("local", local), ("memory", |_| StorageConfig::default())];
    list.extend(rows().into_iter().map(|row| (row.name, row.config)));
    list
}

/// The harness's backends (the features of this package) and whether this run has them on.
const HARNESS: [(&str, bool); 4] = [
    ("aws", cfg!(feature = "aws")),
    ("vault", cfg!(feature = "vault")),
    ("azure", cfg!(feature = "azure")),
    ("kubernetes", cfg!(feature = "kubernetes")),
];

fn local(ns: &str) -> StorageConfig {
    let config = format!(
        "provider = \"local\"\nbase_path = {:?}\n",
        std::env::temp_dir()
            .join("nebula-migrate-tests")
            .join(ns)
            .display()
            .to_string()
    );
    toml::from_str(&config).expect("a valid local config")
}

/// Each emulator's restricted identity (read-only), with what its refused write must name;
/// a row without one says why (AWS: moto's IAM enforcement is process-wide, so it would
/// break every other test).
fn restricted() -> Vec<(&'static str, StorageConfig, &'static [&'static str])> {
    rows()
        .into_iter()
        .filter_map(|row| row.read_only.ok().map(|ro| (row.name, (ro.config)(), ro.names)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_missing_permission_of_a_restricted_identity() {
    let list = restricted();
    let covered: Vec<&str> = list.iter().map(|(name, ..)| *name).collect();
    let declared_absent: Vec<&str> = rows().iter().filter(|r| r.read_only.is_err()).map(|r| r.name).collect();
    for (backend, on) in HARNESS {
        if on && !declared_absent.contains(&backend) {
            assert!(
                covered.contains(&backend),
                "{backend} has no restricted identity in restricted()"
            );
        }
    }
    for (name, config, needles) in list {
        let report = diagnose(&config, |_| {}).await;
        assert!(
            !report.passed(),
            "{name}: a read-only identity passed doctor: {report:?}"
        );
        let passed: Vec<&str> = report
            .steps
            .iter()
            .take_while(|s| matches!(s.outcome, StepOutcome::Ok(_)))
            .map(|s| s.name)
            .collect();
        assert_eq!(
            passed,
            ["config", "open", "check"],
            "{name}: reads pass, the store fails"
        );
        let store = &report.steps[3];
        let StepOutcome::Failed(problem) = &store.outcome else {
            panic!("{name}: store step: {store:?}");
        };
        assert_eq!(problem.kind(), ErrorKind::PermissionDenied, "{name}: {problem:?}");
        let text = format!("{problem}");
        for needle in needles {
            assert!(text.contains(needle), "{name}: {text:?} does not name {needle:?}");
        }
    }
}

#[test]
fn every_backend_the_harness_runs_has_an_entry() {
    let names: Vec<&str> = backends().iter().map(|(name, _)| *name).collect();
    for (backend, on) in HARNESS {
        // A backend the umbrella crate offers and this run turns on must be migrated to and from.
        if on && PROVIDERS.iter().any(|(provider, _)| *provider == backend) {
            assert!(
                names.contains(&backend),
                "this run covers {backend} but tests/tests/nebula_cred.rs has no entry for it: add its row in tests/src/ and to rows()"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_every_step_on_every_backend() {
    let run = unique("doc");
    for (name, config) in backends() {
        let config = config(&format!("{run}-{name}"));
        let report = diagnose(&config, |_| {}).await;
        let steps: Vec<(&str, bool)> = report
            .steps
            .iter()
            .map(|s| (s.name, matches!(s.outcome, StepOutcome::Ok(_))))
            .collect();
        assert!(report.passed(), "doctor on {name}: {report:?}");
        assert_eq!(steps.len(), 7, "{name}: {steps:?}");
        assert!(
            report.steps[1..].iter().all(|s| s.took.is_some()),
            "{name}: every probe step is timed"
        );
        let provider = open(&config).await.unwrap();
        assert!(
            !provider.exists(&PROBE_ID.parse().unwrap()).await.unwrap(),
            "{name}: probe left behind"
        );
    }
    remove_local_dirs(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_between_every_pair_of_backends() {
    let backends = backends();
    let run = unique("mig");
    let mut failures = Vec::new();
    let mut pairs = 0;
    for (from_name, from) in &backends {
        for (to_name, to) in &backends {
            if from_name == to_name {
                continue;
            }
            pairs += 1;
            let (source, target) = (from(&format!("{run}-{pairs}-src")), to(&format!("{run}-{pairs}-dst")));
            match migrate_pair(&source, &target).await {
                Ok(()) => eprintln!("migrate {from_name} -> {to_name}: ok"),
                Err(e) => failures.push(format!("{from_name} -> {to_name}: {e}")),
            }
        }
    }
    assert_eq!(pairs, backends.len() * (backends.len() - 1));
    remove_local_dirs(&run);
    assert!(failures.is_empty(), "failed pairs:\n{}", failures.join("\n"));
}

/// Removes the local backends' directories of run `run` (only this test's).
fn remove_local_dirs(run: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir().join("nebula-migrate-tests")) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(run) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn ids(list: &[CredentialId]) -> Vec<&str> {
    list.iter().map(CredentialId::as_str).collect()
}

/// One direction: seed the source, migrate three times, compare raw records, clean up.
async fn migrate_pair(from: &StorageConfig, to: &StorageConfig) -> Result<(), String> {
    let source = open(from).await.map_err(|e| format!("open source: {e}"))?;
    let target = open(to).await.map_err(|e| format!("open target: {e}"))?;
    let key = EncryptionKey::generate();
    let on_source = CredentialStore::new(source.clone(), Keyring::new(key.clone()));
    let on_target = CredentialStore::new(target.clone(), Keyring::new(key));
    let long_id = format!("Long_{}", "aB3-_".repeat(12));
    let mut binary = vec![0u8; 3000];
    for (i, b) in binary.iter_mut().enumerate() {
        *b = (i * 7 % 256) as u8;
    }
    let values: Vec<(String, Vec<u8>, Tags)> = vec![
        ("plain".into(), b"p".to_vec(), Tags::new()),
        (
            "Tagged_Mixed-Case".into(),
            b"t".to_vec(),
            Tags::from([("env".into(), "prod".into()), ("team".into(), "core".into())]),
        ),
        (long_id, binary, Tags::from([("kind".into(), "binary".into())])),
        ("expiring".into(), b"e".to_vec(), Tags::new()),
    ];
    let result = async {
        for (id, value, tags) in &values {
            let id: CredentialId = id.parse().map_err(|e| format!("{e}"))?;
            let expires = (id.as_str() == "expiring").then(|| "2030-01-01T00:00:00Z".parse().unwrap());
            on_source
                .put_expiring(&id, value, tags.clone(), expires)
                .await
                .map_err(|e| format!("seed {id}: {e}"))?;
        }
        let conflicting: CredentialId = "conflicting".parse().unwrap();
        on_source
            .put(&conflicting, b"source's", Tags::new())
            .await
            .map_err(|e| e.to_string())?;
        on_target
            .put(&conflicting, b"target's", Tags::new())
            .await
            .map_err(|e| e.to_string())?;
        let theirs = target.retrieve(&conflicting).await.map_err(|e| e.to_string())?;

        let first = run(&source, &target, MigrateOptions::default().verify(true)).await?;
        ensure!(first.copied.len() == 4 && first.verified == 4, "first run: {first:?}");
        ensure!(ids(&first.not_overwritten) == ["conflicting"], "first run: {first:?}");
        for (id, value, _) in &values {
            let id: CredentialId = id.parse().unwrap();
            let (a, b) = (raw(&source, &id).await?, raw(&target, &id).await?);
            ensure!(a == b, "{id}: the target record differs from the source");
            let got = on_target
                .get(&id)
                .await
                .map_err(|e| format!("decrypt {id} on the target: {e}"))?;
            ensure!(
                got.expose_secret() == value.as_slice(),
                "{id}: another value on the target"
            );
        }
        let kept = target.retrieve(&conflicting).await.map_err(|e| e.to_string())?;
        ensure!(
            kept.data == theirs.data && kept.metadata == theirs.metadata,
            "the target's own record was overwritten"
        );

        let second = run(&source, &target, MigrateOptions::default()).await?;
        ensure!(
            second.copied.is_empty() && second.already_present.len() == 4 && second.not_overwritten.len() == 1,
            "second run wrote again: {second:?}"
        );

        let third = run(&source, &target, MigrateOptions::default().overwrite(true).verify(true)).await?;
        ensure!(
            ids(&third.overwritten) == ["conflicting"] && third.is_complete(),
            "overwrite: {third:?}"
        );
        ensure!(
            raw(&source, &conflicting).await? == raw(&target, &conflicting).await?,
            "overwritten record differs"
        );

        let dry = run(&source, &target, MigrateOptions::default().dry_run(true)).await?;
        ensure!(
            dry.already_present.len() == 5 && dry.is_complete(),
            "dry run after completion: {dry:?}"
        );
        Ok(())
    }
    .await;
    // Clean up both sides whatever happened.
    for p in [&source, &target] {
        if let Ok(all) = p.list(&CredentialFilter::new()).await {
            for id in all {
                let _ = p.delete(&id).await;
            }
        }
    }
    result
}

async fn run(
    source: &Arc<dyn StorageProvider>,
    target: &Arc<dyn StorageProvider>,
    options: MigrateOptions,
) -> Result<MigrationReport, String> {
    let report = migrate(source.as_ref(), target.as_ref(), &options, |_| {})
        .await
        .map_err(|e| format!("migrate: {e}"))?;
    ensure!(report.failed.is_empty(), "failures: {:?}", report.failed);
    Ok(report)
}

/// A record's ciphertext and metadata, as stored.
async fn raw(
    p: &Arc<dyn StorageProvider>,
    id: &CredentialId,
) -> Result<(nebula_credential::EncryptedData, nebula_credential::CredentialMetadata), String> {
    p.retrieve(id)
        .await
        .map(|s| s.into_parts())
        .map_err(|e| format!("read {id}: {e}"))
}
