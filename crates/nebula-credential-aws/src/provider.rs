//! [`AwsSecretsManagerProvider`]: one Secrets Manager secret per credential.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use nebula_credential_core::{
    ConfigError, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation, ProviderConfig,
    ProviderLimits, StorageError, StorageProvider, StoredRecord, async_trait,
};

use crate::PROVIDER;
use crate::config::{AwsSecretsManagerConfig, Deletion, MAX_SECRET_NAME_LEN};
use crate::errors::{AwsError, Context, Kind};
use crate::tags::{MANAGED_KEY, desired_tags, is_managed, matches};

/// Largest `SecretString` AWS accepts, in bytes.
pub const MAX_SECRET_BYTES: usize = 65_536;

/// Stores each credential as one AWS Secrets Manager secret named `secret_prefix + id`,
/// whose `SecretString` is the versioned JSON [`StoredRecord`], tagged for server-side
/// filtering (see the crate docs).
///
/// The SDK's own retries are off: the `Retry` layer of the stack decides, so the two
/// never multiply.
#[derive(Clone)]
pub struct AwsSecretsManagerProvider {
    client: Client,
    config: Arc<AwsSecretsManagerConfig>,
}

impl std::fmt::Debug for AwsSecretsManagerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let region = self.client.config().region().map(ToString::to_string);
        f.debug_struct("AwsSecretsManagerProvider")
            .field("region", &region)
            .field("endpoint_url", &self.config.endpoint_url)
            .field("secret_prefix", &self.config.secret_prefix)
            .field("deletion", &self.config.deletion)
            .finish_non_exhaustive()
    }
}

type Outcome<T> = Result<T, AwsError>;

impl AwsSecretsManagerProvider {
    /// Validates `config`, then builds a client from the standard credential chain of
    /// `aws-config` (environment, profile, SSO, web identity, IMDS). Makes no request;
    /// see [`check_connection`](Self::check_connection).
    pub async fn new(config: AwsSecretsManagerConfig) -> Result<Self, StorageError> {
        config.validate()?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        Self::from_sdk_config(&sdk, config)
    }

    /// Like [`new`](Self::new), with an `SdkConfig` you built (credentials, region,
    /// endpoint, HTTP client). Retries are turned off and a connect timeout is set on top.
    pub fn from_sdk_config(sdk: &SdkConfig, config: AwsSecretsManagerConfig) -> Result<Self, StorageError> {
        config.validate()?;
        if sdk.region().is_none() && config.region.is_none() {
            return Err(ConfigError::new(
                PROVIDER,
                "region",
                "is not set and none was found in the environment; set `region` or AWS_REGION",
            )
            .into());
        }
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).build());
        if let Some(region) = &config.region {
            builder = builder.region(Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Ok(AwsSecretsManagerProvider {
            client: Client::from_conf(builder.build()),
            config: Arc::new(config),
        })
    }

    /// A provider over a client you built. The client is used as it is: turn its retries
    /// off (`RetryConfig::disabled()`) so the `Retry` layer alone decides.
    pub fn from_client(client: Client, config: AwsSecretsManagerConfig) -> Result<Self, StorageError> {
        config.validate()?;
        Ok(AwsSecretsManagerProvider {
            client,
            config: Arc::new(config),
        })
    }

    /// One cheap request (`ListSecrets` of one item) that proves the endpoint, the
    /// credentials and the `secretsmanager:ListSecrets` permission.
    pub async fn check_connection(&self) -> Result<(), StorageError> {
        self.client
            .list_secrets()
            .max_results(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsError::from(e).into_storage(ctx(Operation::List, None, "secretsmanager:ListSecrets")))
    }

    /// The secret name of `id`: `secret_prefix + id`, within AWS's 512 characters.
    pub fn secret_name(&self, id: &CredentialId) -> Result<String, StorageError> {
        let name = format!("{}{id}", self.config.secret_prefix);
        if name.len() > MAX_SECRET_NAME_LEN {
            return Err(StorageError::InvalidName {
                provider: PROVIDER,
                id: id.clone(),
                reason: format!(
                    "the secret name would have {} characters, over AWS's {MAX_SECRET_NAME_LEN}; shorten secret_prefix",
                    name.len()
                ),
            });
        }
        Ok(name)
    }

    async fn describe(&self, name: &str) -> Outcome<Option<DescribeSecretOutput>> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                let e = AwsError::from(e);
                if e.kind == Kind::NotFound { Ok(None) } else { Err(e) }
            }
        }
    }

    async fn put_value(&self, name: &str, value: &str) -> Outcome<()> {
        self.client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await?;
        Ok(())
    }

    /// Adds, changes and removes tags so the secret carries exactly `desired` (tags AWS
    /// itself set, `aws:…`, are left alone).
    async fn sync_tags(&self, name: &str, current: &[Tag], desired: &BTreeMap<String, String>) -> Outcome<()> {
        let current: BTreeMap<&str, &str> = current
            .iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
            .collect();
        let stale: Vec<String> = current
            .keys()
            .filter(|k| !k.starts_with("aws:") && !desired.contains_key(**k))
            .map(|k| k.to_string())
            .collect();
        let changed: Vec<Tag> = desired
            .iter()
            .filter(|(k, v)| current.get(k.as_str()) != Some(&v.as_str()))
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        if !stale.is_empty() {
            self.client
                .untag_resource()
                .secret_id(name)
                .set_tag_keys(Some(stale))
                .send()
                .await?;
        }
        if !changed.is_empty() {
            self.client
                .tag_resource()
                .secret_id(name)
                .set_tags(Some(changed))
                .send()
                .await?;
        }
        Ok(())
    }

    /// Puts `value` on the existing secret described by `d`: restores it first when it is
    /// scheduled for deletion, then brings its tags in line.
    async fn overwrite(
        &self,
        name: &str,
        d: &DescribeSecretOutput,
        value: &str,
        tags: &BTreeMap<String, String>,
    ) -> Outcome<()> {
        if d.deleted_date().is_some() {
            self.client.restore_secret().secret_id(name).send().await?;
        }
        self.put_value(name, value).await?;
        self.sync_tags(name, d.tags(), tags).await
    }

    async fn store_record(
        &self,
        id: &CredentialId,
        name: &str,
        value: &str,
        metadata: &CredentialMetadata,
    ) -> Result<(), StorageError> {
        let tags = desired_tags(metadata, &self.config.default_tags);
        let write = |action: &'static str| ctx(Operation::Store, Some(id), action);
        let existing = self
            .describe(name)
            .await
            .map_err(|e| e.into_storage(write("secretsmanager:DescribeSecret")))?;
        let existing = match existing {
            Some(d) => Some(d),
            None => {
                let created = self
                    .client
                    .create_secret()
                    .name(name)
                    .secret_string(value)
                    .set_kms_key_id(self.config.kms_key_id.clone())
                    .set_tags(Some(
                        tags.iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .send()
                    .await;
                match created.map_err(AwsError::from) {
                    Ok(_) => return Ok(()),
                    // Created concurrently by another writer: overwrite it like any other.
                    Err(e) if e.kind == Kind::Exists => self
                        .describe(name)
                        .await
                        .map_err(|e| e.into_storage(write("secretsmanager:DescribeSecret")))?,
                    Err(e) => return Err(e.into_storage(write("secretsmanager:CreateSecret"))),
                }
            }
        };
        let Some(d) = existing else {
            return Err(StorageError::Conflict {
                provider: PROVIDER,
                id: id.clone(),
                reason: "the secret vanished while being created; retry the store".into(),
            });
        };
        if !is_managed(&tag_map(d.tags())) {
            return Err(StorageError::Conflict {
                provider: PROVIDER,
                id: id.clone(),
                reason: format!(
                    "secret {name:?} exists but was not created by nebula-credential; use another secret_prefix or remove that secret"
                ),
            });
        }
        self.overwrite(name, &d, value, &tags)
            .await
            .map_err(|e| e.into_storage(write("secretsmanager:PutSecretValue, secretsmanager:RestoreSecret, secretsmanager:TagResource and secretsmanager:UntagResource")))
    }
}

fn ctx<'a>(operation: Operation, id: Option<&'a CredentialId>, action: &'static str) -> Context<'a> {
    Context { operation, id, action }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl StorageProvider for AwsSecretsManagerProvider {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn limits(&self) -> ProviderLimits {
        ProviderLimits::new(MAX_SECRET_BYTES)
    }

    async fn store(
        &self,
        id: &CredentialId,
        data: EncryptedData,
        metadata: CredentialMetadata,
    ) -> Result<(), StorageError> {
        let name = self.secret_name(id)?;
        let record = StoredRecord::new(id.clone(), data, metadata);
        let json = record.to_json(PROVIDER, MAX_SECRET_BYTES)?;
        let value = String::from_utf8(json).expect("serde_json writes UTF-8");
        self.store_record(id, &name, &value, &record.metadata).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<(EncryptedData, CredentialMetadata), StorageError> {
        let name = self.secret_name(id)?;
        let c = ctx(Operation::Retrieve, Some(id), "secretsmanager:GetSecretValue");
        let out = match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = AwsError::from(e);
                // Secrets scheduled for deletion refuse reads with InvalidRequestException:
                // confirm the state, then report them missing.
                if e.kind == Kind::InvalidRequest
                    && let Ok(Some(d)) = self.describe(&name).await
                    && d.deleted_date().is_some()
                {
                    return Err(StorageError::NotFound {
                        provider: PROVIDER,
                        id: id.clone(),
                    });
                }
                return Err(e.into_storage(c));
            }
        };
        let Some(value) = out.secret_string() else {
            return Err(StorageError::Corrupted {
                provider: PROVIDER,
                id: Some(id.clone()),
                location: name,
                reason: "the secret has no SecretString (binary secrets are not records)".into(),
            });
        };
        let record = StoredRecord::from_json(value.as_bytes(), PROVIDER, &name, Some(id))?;
        Ok((record.encrypted_data, record.metadata))
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        let name = self.secret_name(id)?;
        let request = self.client.delete_secret().secret_id(&name);
        let request = match self.config.deletion {
            Deletion::Force => request.force_delete_without_recovery(true),
            Deletion::RecoveryWindow { days } => request.recovery_window_in_days(i64::from(days)),
        };
        match request.send().await.map_err(AwsError::from) {
            Ok(_) => Ok(()),
            Err(e) if e.kind == Kind::NotFound => Ok(()),
            Err(e) => {
                // Already scheduled for deletion: nothing left to do.
                if e.kind == Kind::InvalidRequest
                    && let Ok(Some(d)) = self.describe(&name).await
                    && d.deleted_date().is_some()
                {
                    return Ok(());
                }
                Err(e.into_storage(ctx(Operation::Delete, Some(id), "secretsmanager:DeleteSecret")))
            }
        }
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let prefix = &self.config.secret_prefix;
        let name_prefix = format!("{prefix}{}", filter.id_prefix.as_deref().unwrap_or_default());
        let mut filters = vec![
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values(MANAGED_KEY)
                .build(),
        ];
        if !name_prefix.is_empty() {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(&name_prefix)
                    .build(),
            );
        }
        let mut pages = self
            .client
            .list_secrets()
            .set_filters(Some(filters))
            .max_results(self.config.list_page_size)
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                AwsError::from(e).into_storage(ctx(Operation::List, None, "secretsmanager:ListSecrets"))
            })?;
            for secret in page.secret_list() {
                // AWS filters match prefixes, case-insensitively: re-check everything exactly.
                let Some(id) = secret
                    .name()
                    .and_then(|n| n.strip_prefix(prefix.as_str()))
                    .and_then(|rest| CredentialId::new(rest).ok())
                else {
                    continue;
                };
                let tags = tag_map(secret.tags());
                if secret.deleted_date().is_none()
                    && is_managed(&tags)
                    && filter.matches_id(&id)
                    && matches(filter, &tags)
                {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        let name = self.secret_name(id)?;
        let d = self
            .describe(&name)
            .await
            .map_err(|e| e.into_storage(ctx(Operation::Exists, Some(id), "secretsmanager:DescribeSecret")))?;
        Ok(d.is_some_and(|d| d.deleted_date().is_none() && is_managed(&tag_map(d.tags()))))
    }
}
