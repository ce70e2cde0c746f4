//! The AWS Secrets Manager row: moto, secrets under `nebula-test/<namespace>/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_secretsmanager::types::Tag;
use nebula_credential::aws::{AwsSecretsManagerConfig, DeleteMode};
use nebula_credential::{CredentialId, StorageConfig, StorageProvider};
use nebula_credential_core::BoxError;
use nebula_credential_core::conformance::{self, CaseResult};
use nebula_credential_core::layers::BoxFuture;

use crate::{Row, emulator_var, open_config, unique};

/// The backend's name (feature, `PROVIDERS`, emulator).
pub const NAME: &str = "aws";

/// Why there is no read-only identity.
pub const READ_ONLY_ABSENT: &str =
    "moto enforces IAM for the whole process only, so a read-only identity would break every other test";
/// Why there are no rejected credentials.
pub const REJECTED_ABSENT: &str =
    "moto accepts any credentials while its IAM enforcement is off (it is process-wide, see READ_ONLY_ABSENT)";
/// Why there is no untrusted-CA identity.
pub const UNTRUSTED_CA_ABSENT: &str = "moto serves plain http here; the refusal of an untrusted certificate \
     is tested against a TLS server of its own in crates/nebula-credential-aws/tests/tls.rs";

/// The emulator's endpoint.
pub fn endpoint() -> String {
    emulator_var("NEBULA_TEST_AWS_ENDPOINT", NAME)
}

/// The configuration every AWS test starts from: moto, secrets under
/// `nebula-test/<namespace>/`, deleted at once (no recovery window).
pub fn config(namespace: &str) -> AwsSecretsManagerConfig {
    AwsSecretsManagerConfig {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint()),
        secret_prefix: format!("nebula-test/{namespace}/"),
        delete_mode: DeleteMode::Purge,
        ..AwsSecretsManagerConfig::default()
    }
}

/// The name of the secret holding `id` in `namespace`.
pub fn secret_name(namespace: &str, id: &CredentialId) -> String {
    format!("nebula-test/{namespace}/{id}")
}

/// `c` through `open()`'s full layer stack.
pub async fn provider(c: AwsSecretsManagerConfig) -> Arc<dyn StorageProvider> {
    open_config(&StorageConfig::Aws(c)).await
}

/// A namespace of its own for `tag`, and a provider over it.
pub async fn fresh(tag: &str) -> (String, Arc<dyn StorageProvider>) {
    let ns = unique(tag);
    let p = provider(config(&ns)).await;
    (ns, p)
}

/// A Secrets Manager client of the emulator, for checks behind the provider's back.
pub fn client() -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The tags of secret `name`, as `DescribeSecret` shows them.
pub async fn tags(name: &str) -> Result<BTreeMap<String, String>, BoxError> {
    let d = client().describe_secret().secret_id(name).send().await?;
    Ok(d.tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Deletes secret `name` without a recovery window.
pub async fn force_delete(name: &str) -> CaseResult {
    client()
        .delete_secret()
        .secret_id(name)
        .force_delete_without_recovery(true)
        .send()
        .await?;
    Ok(())
}

fn cost_center() -> Tag {
    Tag::builder().key("CostCenter").value("42").build()
}

/// The value a foreign secret holds.
pub const FOREIGN_VALUE: &str = "not ours";

/// Plants a secret named like ours, without the marker, through the raw SDK.
pub struct Foreign;

impl conformance::Foreign for Foreign {
    fn plant<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            client()
                .create_secret()
                .name(secret_name(namespace, id))
                .secret_string(FOREIGN_VALUE)
                .tags(cost_center())
                .send()
                .await?;
            Ok(())
        })
    }

    fn intact<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let name = secret_name(namespace, id);
            let d = client().describe_secret().secret_id(&name).send().await?;
            let v = client().get_secret_value().secret_id(&name).send().await?;
            Ok(d.deleted_date().is_none() && v.secret_string() == Some(FOREIGN_VALUE) && d.tags().len() == 1)
        })
    }

    fn remove<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(force_delete_owned(secret_name(namespace, id)))
    }
}

async fn force_delete_owned(name: String) -> CaseResult {
    force_delete(&name).await
}

/// Cost-allocation tags another tool (a tag policy) adds with `TagResource`.
pub struct OtherTools;

impl conformance::OtherTools for OtherTools {
    fn open_with_default_tag<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn StorageProvider>, BoxError>> {
        Box::pin(async move {
            let c = AwsSecretsManagerConfig {
                default_tags: BTreeMap::from([(key.to_string(), value.to_string())]),
                ..config(namespace)
            };
            Ok(provider(c).await)
        })
    }

    fn mark<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            client()
                .tag_resource()
                .secret_id(secret_name(namespace, id))
                .tags(cost_center())
                .send()
                .await?;
            Ok(())
        })
    }

    fn marked<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let tags = tags(&secret_name(namespace, id)).await?;
            Ok(tags.get("CostCenter").map(String::as_str) == Some("42"))
        })
    }

    fn raw_tags<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a CredentialId,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, BoxError>> {
        Box::pin(async move { tags(&secret_name(namespace, id)).await })
    }
}

/// The row of `nebula_cred.rs`.
pub fn row() -> Row {
    Row {
        name: NAME,
        config: |ns| StorageConfig::Aws(config(ns)),
        read_only: Err(READ_ONLY_ABSENT),
    }
}
