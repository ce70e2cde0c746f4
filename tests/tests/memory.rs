//! `open()` and `StorageConfig` with the memory backend: configuration handling and the
//! metrics of the opened stack. (The conformance suite runs the memory backend under the
//! same layer stack in nebula-credential-core's own tests.)

use std::sync::Arc;

use nebula_credential::{
    CredentialMetadata, EncryptedData, MemoryConfig, RetryPolicy, StorageConfig, StorageError, StorageMetrics, open,
    open_with_metrics,
};

fn config_error(
    result: Result<Arc<dyn nebula_credential::StorageProvider>, StorageError>,
) -> nebula_credential::ConfigError {
    match result {
        Err(StorageError::Config(e)) => e,
        other => panic!("expected a ConfigError, got {other:?}"),
    }
}

#[tokio::test]
async fn open_rejects_an_invalid_retry_policy_naming_the_field() {
    let config: StorageConfig = toml::from_str(
        r#"
        provider = "memory"
        [retry]
        max_retries = 42
        "#,
    )
    .unwrap();
    let e = config_error(open(&config).await);
    assert_eq!((e.provider(), e.field()), ("memory", "retry.max_retries"));
    assert!(e.to_string().contains("must be at most 10 (got 42)"), "{e}");

    let config = StorageConfig::Memory(MemoryConfig {
        retry: RetryPolicy {
            multiplier: 0.0,
            ..RetryPolicy::default()
        },
        ..MemoryConfig::default()
    });
    assert_eq!(config_error(open(&config).await).field(), "retry.multiplier");
}

#[tokio::test]
async fn open_rejects_invalid_backend_and_timeout_settings() {
    let config: StorageConfig = toml::from_str("provider = \"memory\"\nmax_payload_bytes = 0").unwrap();
    assert_eq!(config_error(open(&config).await).field(), "max_payload_bytes");
    let config: StorageConfig = toml::from_str("provider = \"memory\"\n[timeouts]\nread_ms = 0").unwrap();
    assert_eq!(config_error(open(&config).await).field(), "timeouts.read_ms");
}

#[test]
fn unknown_providers_and_fields_are_refused_when_parsing() {
    let e = toml::from_str::<StorageConfig>("provider = \"floppy\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("floppy") && e.contains("memory"), "{e}");
    let e = toml::from_str::<StorageConfig>("provider = \"memory\"\nmax_payload = 5")
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_payload"), "{e}");
    let e = toml::from_str::<StorageConfig>("max_payload_bytes = 5")
        .unwrap_err()
        .to_string();
    assert!(e.contains("provider"), "{e}");
}

#[tokio::test]
async fn the_opened_stack_records_metrics() {
    let metrics = Arc::new(StorageMetrics::new());
    let p = open_with_metrics(&StorageConfig::default(), metrics.clone())
        .await
        .unwrap();
    let id = "x".parse().unwrap();
    assert!(p.retrieve(&id).await.unwrap_err().is_not_found());
    assert!(!p.exists(&id).await.unwrap());
    let s = metrics.snapshot();
    assert_eq!((s.retrieve.count, s.retrieve.not_found, s.exists.count), (1, 1, 1));
    p.store(
        &id,
        &EncryptedData {
            version: 1,
            key_id: "k".into(),
            nonce: [0; 12],
            ciphertext: vec![0; 2 << 20],
        },
        &CredentialMetadata::new(),
    )
    .await
    .unwrap_err();
    let s = metrics.snapshot();
    assert_eq!((s.store.count, s.store.errors), (1, 1));
    assert_eq!(s.error_rate(), 1.0 / 3.0);
}

#[test]
fn one_environment_variable_names_the_provider() {
    assert_eq!(StorageConfig::from_env_for("memory").unwrap().provider_name(), "memory");
    assert_eq!(StorageConfig::from_env_for("local").unwrap().provider_name(), "local");
    let e = StorageConfig::from_env_for("floppy").unwrap_err();
    assert_eq!(e.field(), "NEBULA_CREDENTIAL_PROVIDER");
    let names: Vec<&str> = nebula_credential::PROVIDERS.iter().map(|(name, _)| *name).collect();
    assert!(e.to_string().contains(&names.join(", ")), "{e}");
    // Feature unification decides which backends this build has: the answer is right
    // either way, for every backend of the table.
    for (name, feature) in nebula_credential::PROVIDERS {
        match StorageConfig::from_env_for(name) {
            Ok(config) => assert_eq!(config.provider_name(), *name),
            // Compiled in, but a required variable (an address, a token, a vault URL) is
            // unset here: the backend's own error, naming the field.
            Err(e) if e.provider() == *name => assert!(!e.field().is_empty(), "{e}"),
            Err(e) => assert!(e.to_string().contains(&format!("`{feature}` feature")), "{e}"),
        }
    }
}
