//! `cargo run --example local-storage`: the local backend end to end, with no setup.
//!
//! Stores three credentials with tags, lists them by tag, retrieves one, rotates the
//! key, deletes one and prints the metrics — never a secret value.
//!
//! - `NEBULA_LOCAL_BASE_PATH`: directory to use (default: a fresh temporary directory).
//! - `NEBULA_CREDENTIAL_KEY`: base64 of a 32-byte key (default: a freshly generated key).

use std::sync::Arc;

use anyhow::Context;
use nebula_credential::StorageConfig;
use nebula_credential::local::LocalStorageConfig;
use nebula_credential::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Where: NEBULA_LOCAL_BASE_PATH, or a temporary directory removed on exit.
    let temp;
    let dir = match std::env::var_os("NEBULA_LOCAL_BASE_PATH") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().join("credentials")
        }
    };
    println!("directory: {}", dir.display());

    // Which key: NEBULA_CREDENTIAL_KEY, or a fresh one (which is lost on exit).
    let key = match std::env::var("NEBULA_CREDENTIAL_KEY") {
        Ok(b64) => {
            println!("key: from NEBULA_CREDENTIAL_KEY");
            EncryptionKey::from_base64(&SecretString::from(b64)).context("NEBULA_CREDENTIAL_KEY")?
        }
        Err(_) => {
            println!("key: freshly generated (set NEBULA_CREDENTIAL_KEY to base64 of 32 bytes to keep one)");
            EncryptionKey::generate()
        }
    };
    println!("key id: {}", key.key_id());

    let config = StorageConfig::Local(LocalStorageConfig::new(&dir));
    let metrics = Arc::new(StorageMetrics::new());
    let store = CredentialStore::new(open_with_metrics(&config, metrics.clone()).await?, Keyring::new(key));

    let tags = |pairs: &[(&str, &str)]| -> Tags { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
    let credentials: [(&str, &[u8], Tags); 3] = [
        (
            "github_token",
            b"ghp_exampleexampleexample",
            tags(&[("env", "prod"), ("kind", "token")]),
        ),
        (
            "Stripe_API_Key",
            b"sk_live_exampleexample",
            tags(&[("env", "prod"), ("kind", "api-key")]),
        ),
        (
            "staging_db_password",
            b"correct horse battery staple",
            tags(&[("env", "staging")]),
        ),
    ];
    for (name, value, tags) in credentials {
        let id: CredentialId = name.parse()?;
        let meta = store.put(&id, value, tags).await?;
        println!("stored {id} (version {}, {} bytes)", meta.version, value.len());
    }

    let prod = store.list(&CredentialFilter::new().tag("env", "prod")).await?;
    println!(
        "env=prod: {}",
        prod.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );

    let id: CredentialId = "github_token".parse()?;
    let (secret, meta) = store.get_with_metadata(&id).await?;
    println!(
        "retrieved {id}: {} bytes, version {}, created {}, tags {:?}",
        secret.expose_secret().len(),
        meta.version,
        meta.created_at,
        meta.tags
    );

    let next = EncryptionKey::generate();
    println!("rotating to key {}", next.key_id());
    store.add_current_key(next)?;
    let report = store.rotate_keys().await?;
    println!(
        "rotation: {} re-encrypted, {} already current",
        report.re_encrypted, report.already_current
    );
    assert_eq!(store.get(&id).await?.expose_secret(), secret.expose_secret());

    let gone: CredentialId = "staging_db_password".parse()?;
    store.delete(&gone).await?;
    println!(
        "deleted {gone}; remaining: {:?}",
        store.list(&CredentialFilter::new()).await?
    );

    println!("\nmetrics:\n{}", metrics.snapshot());
    println!("\nto switch backend, change one line of the configuration, e.g.:\nprovider = \"memory\"");
    Ok(())
}
