//! [`AwsSecretsManagerProvider`]: one Secrets Manager secret per credential.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use nebula_credential_core::{
    Capabilities, ConfigError, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation,
    Precondition, ProviderConfig, Retried, Revision, StorageError, StorageProvider, Stored, StoredRecord, Tags,
    async_trait, layers,
};
use sha2::{Digest, Sha256};

use crate::PROVIDER;
use crate::config::{AwsSecretsManagerConfig, Deletion, MAX_SECRET_NAME_LEN};
use crate::errors::{AwsError, Context, Kind};
use crate::tags::SCHEME;

/// Largest `SecretString` AWS accepts, in bytes.
pub const MAX_SECRET_BYTES: usize = 65_536;

/// AWS's stage label of the current version.
const CURRENT: &str = "AWSCURRENT";
/// Stage label of a conditional write's version until it is made current.
const PENDING: &str = "NEBULA_PENDING";
/// Stage label of a tombstone version (written before a delete).
const TOMBSTONE: &str = "NEBULA_DELETED";
/// The value of a tombstone version: no record, so it reads as "not found".
const TOMBSTONE_VALUE: &str = "{\"nebula_credential\":\"deleted\"}";
/// Attempts of one logical step that races other writers or AWS's asynchronous deletes.
const MAX_ROUNDS: u32 = 6;
/// First wait for a name AWS is still freeing after a forced delete (doubles each round).
const FIRST_DELETION_WAIT: Duration = Duration::from_millis(250);

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

/// What `DescribeSecret` says about a secret of ours.
struct State {
    tags: Tags,
    deleted: bool,
    /// The version holding `AWSCURRENT`.
    current: Option<String>,
    /// The current version is a tombstone: the credential is deleted.
    tombstoned: bool,
}

impl State {
    fn of(d: &DescribeSecretOutput) -> Self {
        let (current, tombstoned) = current_version(d.version_ids_to_stages());
        State {
            tags: tag_map(d.tags()),
            deleted: d.deleted_date().is_some(),
            current,
            tombstoned,
        }
    }

    /// The credential is there to read.
    fn live(&self) -> bool {
        !self.deleted && !self.tombstoned
    }
}

/// The version holding `AWSCURRENT`, and whether it is a tombstone.
fn current_version(stages: Option<&HashMap<String, Vec<String>>>) -> (Option<String>, bool) {
    let current = stages
        .into_iter()
        .flatten()
        .find(|(_, labels)| labels.iter().any(|l| l == CURRENT));
    match current {
        Some((version, labels)) => (Some(version.clone()), labels.iter().any(|l| l == TOMBSTONE)),
        None => (None, false),
    }
}

impl AwsSecretsManagerProvider {
    /// Validates `config`, then builds a client from the standard credential chain of
    /// `aws-config` (environment, profile, SSO, web identity, IMDS). Makes no request;
    /// see [`StorageProvider::check`].
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

    /// The secret name of `id`: `secret_prefix + id`, within AWS's 512 characters.
    pub fn secret_name(&self, id: &CredentialId) -> Result<String, StorageError> {
        let name = format!("{}{id}", self.config.secret_prefix);
        if name.len() > MAX_SECRET_NAME_LEN {
            return Err(StorageError::invalid_name(
                PROVIDER,
                id,
                format!(
                    "the secret name would have {} characters, over AWS's {MAX_SECRET_NAME_LEN}; shorten secret_prefix",
                    name.len()
                ),
            ));
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

    /// Describes the secret of `id` and checks it is ours: `None` when there is none,
    /// `Conflict` when it lacks the marker.
    async fn ours(&self, id: &CredentialId, name: &str, operation: Operation) -> Result<Option<State>, StorageError> {
        let d = self
            .describe(name)
            .await
            .map_err(|e| e.into_storage(ctx(operation, Some(id), "secretsmanager:DescribeSecret")))?;
        let Some(d) = d else { return Ok(None) };
        let state = State::of(&d);
        SCHEME.ensure_ours(PROVIDER, id, name, &state.tags)?;
        Ok(Some(state))
    }

    /// Writes `value` as a new version with `stages` (default: `AWSCURRENT`) and returns
    /// its id. `token` is the version id to use, for idempotent writes.
    async fn put_version(&self, name: &str, value: &str, token: Option<String>, stages: &[&str]) -> Outcome<String> {
        let stages = (!stages.is_empty()).then(|| stages.iter().map(|s| s.to_string()).collect());
        let out = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .set_client_request_token(token)
            .set_version_stages(stages)
            .send()
            .await?;
        Ok(out.version_id().unwrap_or_default().to_string())
    }

    /// Makes a new version current only if `expected` still is: puts the value under a
    /// pending label with a token derived from (secret, expected, value), then moves
    /// `AWSCURRENT` from `expected` to it, which AWS refuses once `expected` lost it.
    /// `None` when another writer got there first.
    async fn swap(&self, name: &str, expected: &str, value: &str) -> Outcome<Option<Revision>> {
        let token = swap_token(name, expected, value);
        match self.put_version(name, value, Some(token.clone()), &[PENDING]).await {
            Ok(_) => {}
            Err(e) if e.kind == Kind::Exists => return Ok(None),
            Err(e) => return Err(e),
        }
        let moved = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage(CURRENT)
            .move_to_version_id(&token)
            .remove_from_version_id(expected)
            .send()
            .await
            .map_err(AwsError::from);
        let outcome = match moved {
            Ok(_) => Some(Revision::new(&token)),
            Err(e) if matches!(e.kind, Kind::InvalidParameter | Kind::NotFound) => {
                // Refused: someone else moved AWSCURRENT, unless an earlier attempt of
                // this very write already did (a retry after a lost answer).
                let now = self.describe(name).await?;
                let (current, _) = current_version(now.as_ref().and_then(|d| d.version_ids_to_stages()));
                (current.as_deref() == Some(token.as_str())).then(|| Revision::new(&token))
            }
            Err(e) => return Err(e),
        };
        // Best effort: a version without labels is deprecated and AWS reclaims it; the
        // label also moves on by itself with the next conditional write.
        let _ = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage(PENDING)
            .remove_from_version_id(&token)
            .send()
            .await;
        Ok(outcome)
    }

    /// Brings the secret's tags from `current` to `desired`, touching only keys we own.
    async fn sync_tags(&self, name: &str, current: &Tags, desired: &Tags) -> Outcome<()> {
        let update = SCHEME.update(current, desired);
        if !update.remove.is_empty() {
            self.client
                .untag_resource()
                .secret_id(name)
                .set_tag_keys(Some(update.remove))
                .send()
                .await?;
        }
        if !update.set.is_empty() {
            self.client
                .tag_resource()
                .secret_id(name)
                .set_tags(Some(aws_tags(&update.set)))
                .send()
                .await?;
        }
        Ok(())
    }

    /// Waits before the next round of a store that found the name still being freed by
    /// a forced delete, unless that would pass the operation's deadline or the bound.
    async fn wait_for_deletion(&self, round: &mut u32, e: AwsError, c: Context<'_>) -> Result<(), StorageError> {
        let wait = FIRST_DELETION_WAIT * 2u32.saturating_pow(*round);
        *round += 1;
        let past_deadline = layers::deadline().is_some_and(|d| tokio::time::Instant::now() + wait >= d);
        if *round >= MAX_ROUNDS || past_deadline {
            return Err(e.deletion_pending().into_storage(c));
        }
        tracing::debug!(
            provider = PROVIDER,
            ?wait,
            "the secret name is still being deleted; waiting"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Whether a create or restore that failed with `e` lets the store look again: the
    /// name was created or removed concurrently, or AWS is still finishing a forced
    /// delete (after a bounded wait).
    async fn look_again(&self, e: AwsError, waits: &mut u32, c: Context<'_>) -> Result<(), StorageError> {
        match e.kind {
            Kind::Exists | Kind::NotFound => Ok(()),
            Kind::InvalidRequest => self.wait_for_deletion(waits, e, c).await,
            _ => Err(e.into_storage(c)),
        }
    }

    async fn store_value(
        &self,
        id: &CredentialId,
        name: &str,
        value: &str,
        desired: &Tags,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let c = |action| ctx(Operation::Store, Some(id), action);
        let mut waits = 0;
        for _ in 0..MAX_ROUNDS * 2 {
            let Some(state) = self.ours(id, name, Operation::Store).await? else {
                if matches!(precondition, Precondition::Revision(_)) {
                    return Err(precondition.conflict(PROVIDER, id));
                }
                let created = self
                    .client
                    .create_secret()
                    .name(name)
                    .secret_string(value)
                    .client_request_token(swap_token(name, "", value))
                    .set_kms_key_id(self.config.kms_key_id.clone())
                    .set_tags(Some(aws_tags(desired)))
                    .send()
                    .await
                    .map_err(AwsError::from);
                match created {
                    Ok(out) => return Ok(Revision::new(out.version_id().unwrap_or_default())),
                    Err(e) => {
                        self.look_again(e, &mut waits, c("secretsmanager:CreateSecret")).await?;
                        continue;
                    }
                }
            };
            if state.deleted {
                if matches!(precondition, Precondition::Revision(_)) {
                    return Err(precondition.conflict(PROVIDER, id));
                }
                // The current version is the tombstone `delete` wrote: restoring brings
                // back nothing a reader could see.
                if let Err(e) = self.client.restore_secret().secret_id(name).send().await {
                    self.look_again(AwsError::from(e), &mut waits, c("secretsmanager:RestoreSecret"))
                        .await?;
                }
                continue;
            }
            let written = match precondition {
                Precondition::None => self
                    .put_version(name, value, None, &[])
                    .await
                    .map(|v| Some(Revision::new(v))),
                Precondition::Absent => {
                    if !state.tombstoned {
                        // Ours already, unless an earlier attempt of this write created it.
                        let created = swap_token(name, "", value);
                        if state.current.as_deref() == Some(created.as_str()) {
                            return Ok(Revision::new(created));
                        }
                        return Err(precondition.conflict(PROVIDER, id));
                    }
                    let expected = state.current.clone().unwrap_or_default();
                    self.swap(name, &expected, value).await
                }
                Precondition::Revision(expected) => {
                    let expected = expected.as_str();
                    let mine = swap_token(name, expected, value);
                    if state.current.as_deref() == Some(mine.as_str()) {
                        return Ok(Revision::new(mine));
                    }
                    if state.tombstoned || state.current.as_deref() != Some(expected) {
                        // Stale already: refuse without spending a version.
                        return Err(precondition.conflict(PROVIDER, id));
                    }
                    self.swap(name, expected, value).await
                }
            };
            let revision = match written {
                Ok(Some(r)) => r,
                Ok(None) => return Err(precondition.conflict(PROVIDER, id)),
                // Deleted between our look and the put (AWS refuses puts then): look again.
                Err(e) if e.kind == Kind::InvalidRequest => continue,
                Err(e) => return Err(e.into_storage(c("secretsmanager:PutSecretValue"))),
            };
            self.sync_tags(name, &state.tags, desired)
                .await
                .map_err(|e| e.into_storage(c("secretsmanager:TagResource and secretsmanager:UntagResource")))?;
            return Ok(revision);
        }
        Err(StorageError::conflict(
            PROVIDER,
            id,
            "the secret kept changing (created, deleted or restored) while being written; retry the store",
        ))
    }

    /// One page of `ListSecrets`, with its own deadline (`timeouts.read_ms`) and, when
    /// it fails transiently, its own retries from the same token.
    async fn list_page(&self, filters: &[Filter], token: Option<String>) -> Result<ListSecretsOutput, StorageError> {
        let policy = &self.config.retry;
        let deadline = Duration::from_millis(self.config.timeouts.read_ms);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let request = self
                .client
                .list_secrets()
                .set_filters(Some(filters.to_vec()))
                .max_results(self.config.list_page_size)
                .set_next_token(token.clone())
                .send();
            let err = match tokio::time::timeout(deadline, request).await {
                Ok(Ok(page)) => return Ok(page),
                Ok(Err(e)) => AwsError::from(e).into_storage(ctx(Operation::List, None, "secretsmanager:ListSecrets")),
                Err(_) => StorageError::timeout(PROVIDER, Operation::List, None, deadline),
            };
            if !err.is_retryable() {
                return Err(err);
            }
            if attempt >= policy.max_retries {
                // Retried here already: the Retry layer must not restart the whole listing.
                return Err(err.mark_retried(Retried {
                    attempts: attempt + 1,
                    elapsed: started.elapsed(),
                }));
            }
            let wait = err.retry_after().unwrap_or_else(|| policy.calculate_delay(attempt));
            tracing::warn!(provider = PROVIDER, attempt, ?wait, error = %err, "retrying a page of ListSecrets");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn list_filters(&self, filter: &CredentialFilter) -> Vec<Filter> {
        let name_prefix = format!(
            "{}{}",
            self.config.secret_prefix,
            filter.id_prefix.as_deref().unwrap_or_default()
        );
        vec![
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values(SCHEME.managed_key)
                .build(),
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(name_prefix)
                .build(),
        ]
    }
}

/// A version id (`ClientRequestToken`) derived from the secret, the version written
/// over (empty for a create) and the value: the same write retried reuses it, and two
/// different writes from the same version never share it.
fn swap_token(name: &str, expected: &str, value: &str) -> String {
    let mut h = Sha256::new();
    for part in [name, expected, value] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn ctx<'a>(operation: Operation, id: Option<&'a CredentialId>, action: &'static str) -> Context<'a> {
    Context { operation, id, action }
}

fn tag_map(tags: &[Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

fn aws_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

#[async_trait]
impl StorageProvider for AwsSecretsManagerProvider {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::new(MAX_SECRET_BYTES).with_conditional_store();
        match self.config.deletion {
            Deletion::RecoveryWindow { .. } => caps.with_soft_delete(),
            Deletion::Force => caps,
        }
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let name = self.secret_name(id)?;
        let json = StoredRecord::encode(id, data, metadata, PROVIDER, MAX_SECRET_BYTES)?;
        let value = String::from_utf8(json).expect("serde_json writes UTF-8");
        let desired = SCHEME.desired(metadata, &self.config.default_tags);
        self.store_value(id, &name, &value, &desired, precondition).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let name = self.secret_name(id)?;
        let c = ctx(Operation::Retrieve, Some(id), "secretsmanager:GetSecretValue");
        for _ in 0..MAX_ROUNDS {
            let get = self
                .client
                .get_secret_value()
                .secret_id(&name)
                .version_stage(CURRENT)
                .send();
            let (state, got) = tokio::join!(self.ours(id, &name, Operation::Retrieve), get);
            let Some(state) = state? else {
                return Err(StorageError::not_found(PROVIDER, id));
            };
            let out = match got.map_err(AwsError::from) {
                Ok(out) => out,
                Err(e) if e.kind == Kind::NotFound => return Err(StorageError::not_found(PROVIDER, id)),
                // Refused because it is scheduled for deletion; if it was restored since
                // (a re-store racing us), read again.
                Err(e) if e.kind == Kind::InvalidRequest => match self.ours(id, &name, Operation::Retrieve).await? {
                    Some(now) if !now.deleted => continue,
                    _ => return Err(StorageError::not_found(PROVIDER, id)),
                },
                Err(e) => return Err(e.into_storage(c)),
            };
            if !state.live() && state.current.as_deref() == out.version_id()
                || out.version_stages().iter().any(|s| s == TOMBSTONE)
                || out.secret_string() == Some(TOMBSTONE_VALUE)
            {
                return Err(StorageError::not_found(PROVIDER, id));
            }
            let Some(value) = out.secret_string() else {
                return Err(StorageError::corrupted(
                    PROVIDER,
                    Some(id),
                    name,
                    "the secret has no SecretString (binary secrets are not records)",
                ));
            };
            let record = StoredRecord::from_json(value.as_bytes(), PROVIDER, &name, Some(id))?;
            return Ok(Stored {
                data: record.encrypted_data,
                metadata: record.metadata,
                revision: Revision::new(out.version_id().unwrap_or_default()),
            });
        }
        Err(StorageError::unavailable(PROVIDER, Operation::Retrieve, Some(id)))
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        let name = self.secret_name(id)?;
        let c = |action| ctx(Operation::Delete, Some(id), action);
        let Some(state) = self.ours(id, &name, Operation::Delete).await? else {
            return Ok(());
        };
        if state.deleted {
            return Ok(());
        }
        let request = self.client.delete_secret().secret_id(&name);
        let request = match self.config.deletion {
            Deletion::Force => request.force_delete_without_recovery(true),
            Deletion::RecoveryWindow { days } => {
                // Overwrite the value first, so a restore never brings it back.
                if !state.tombstoned {
                    match self
                        .put_version(&name, TOMBSTONE_VALUE, None, &[CURRENT, TOMBSTONE])
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if matches!(e.kind, Kind::NotFound | Kind::InvalidRequest) => return Ok(()),
                        Err(e) => return Err(e.into_storage(c("secretsmanager:PutSecretValue"))),
                    }
                }
                request.recovery_window_in_days(i64::from(days))
            }
        };
        match request.send().await.map_err(AwsError::from) {
            Ok(_) => Ok(()),
            Err(e) if e.kind == Kind::NotFound => Ok(()),
            // Already scheduled for deletion meanwhile: nothing left to do.
            Err(e) if e.kind == Kind::InvalidRequest => match self.ours(id, &name, Operation::Delete).await? {
                Some(now) if !now.deleted => Err(e.into_storage(c("secretsmanager:DeleteSecret"))),
                _ => Ok(()),
            },
            Err(e) => Err(e.into_storage(c("secretsmanager:DeleteSecret"))),
        }
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let prefix = self.config.secret_prefix.as_str();
        let filters = self.list_filters(filter);
        let mut token = None;
        let mut ids = Vec::new();
        loop {
            let page = self.list_page(&filters, token).await?;
            for secret in page.secret_list() {
                // AWS filters match prefixes, case-insensitively: re-check everything exactly.
                let Some(id) = secret
                    .name()
                    .and_then(|n| n.strip_prefix(prefix))
                    .and_then(|rest| CredentialId::new(rest).ok())
                else {
                    continue;
                };
                let (_, tombstoned) = current_version(secret.secret_versions_to_stages());
                if secret.deleted_date().is_none()
                    && !tombstoned
                    && SCHEME.matches(filter, &id, &tag_map(secret.tags()))
                {
                    ids.push(id);
                }
            }
            token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        let name = self.secret_name(id)?;
        let state = self.ours(id, &name, Operation::Exists).await?;
        Ok(state.is_some_and(|s| s.live()))
    }

    /// One `ListSecrets` of at most one item: proves the endpoint, the credentials and
    /// the `secretsmanager:ListSecrets` permission.
    async fn check(&self) -> Result<(), StorageError> {
        self.client
            .list_secrets()
            .set_filters(Some(self.list_filters(&CredentialFilter::new())))
            .max_results(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsError::from(e).into_storage(ctx(Operation::Check, None, "secretsmanager:ListSecrets")))
    }
}
