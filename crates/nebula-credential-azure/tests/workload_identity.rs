//! Workload identity reads its settings from the environment (`AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`). Each case runs this test binary again
//! in a child process with the environment it needs, so this process's stays untouched.

use std::process::Command;

use nebula_credential_azure::{AzureCredential, AzureKeyVaultConfig, AzureKeyVaultProvider};
use nebula_credential_core::{ErrorKind, ProviderConfig};

const NAME: &str = "workload_identity_is_checked_at_validation_and_keeps_the_sdks_text";
const GUID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CASE: &str = "NEBULA_WORKLOAD_IDENTITY_CASE";

fn config() -> AzureKeyVaultConfig {
    AzureKeyVaultConfig {
        credential: AzureCredential::WorkloadIdentity,
        ..AzureKeyVaultConfig::new("https://myapp-prod.vault.azure.net")
    }
}

/// Missing variables fail `validate()` naming the variable (not a later "cannot be set up");
/// with them set but the token file unreadable, building the provider fails with the SDK's
/// own text, which names the file.
#[tokio::test]
async fn workload_identity_is_checked_at_validation_and_keeps_the_sdks_text() {
    match std::env::var(CASE).as_deref() {
        Ok("missing") => {
            let e = config().validate().unwrap_err();
            assert_eq!(e.field(), "credential", "{e}");
            assert!(e.rule().contains("AZURE_FEDERATED_TOKEN_FILE"), "{e}");
        }
        Ok("unreadable") => {
            config().validate().expect("the variables are set");
            let e = AzureKeyVaultProvider::new(config()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(e.to_string().contains("/nonexistent/azure-identity-token"), "{e}");
        }
        _ => {
            for case in ["missing", "unreadable"] {
                let mut child = Command::new(std::env::current_exe().unwrap());
                child
                    .args([NAME, "--exact", "--nocapture"])
                    .env(CASE, case)
                    .env("AZURE_TENANT_ID", GUID)
                    .env("AZURE_CLIENT_ID", GUID)
                    .env_remove("AZURE_AUTHORITY_HOST");
                if case == "missing" {
                    child.env_remove("AZURE_FEDERATED_TOKEN_FILE");
                } else {
                    child.env("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/azure-identity-token");
                }
                let out = child.output().unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(out.status.success() && text.contains("1 passed"), "{case}: {text}");
            }
        }
    }
}
