//! [`AwsSecretsManagerProvider`]: one Secrets Manager secret per credential.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use nebula_credential_core::remote::Polling;
use nebula_credential_core::{
    Capabilities, ConfigError, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation,
    Precondition, ProviderConfig, RecordEnvelope, Retried, Revision, StorageError, StorageProvider, Stored, Tags,
    async_trait,
};

use crate::PROVIDER;
use crate::config::{AwsSecretsManagerConfig, DeleteMode, MAX_SECRET_NAME_LEN};
use crate::errors::{AwsError, Context, Kind};
use crate::tags::SCHEME;
use crate::versions::{
    CURRENT, PENDING, TOMBSTONE, TOMBSTONE_VALUE, Write, authored, current_version, plain_write, version_token,
};

/// Largest `SecretString` AWS accepts, in bytes.
pub const MAX_SECRET_BYTES: usize = 65_536;
/// Attempts of one logical step that races other writers or AWS's asynchronous deletes.
const MAX_ROUNDS: u32 = 6;
/// Waits for a name AWS is still freeing after a forced delete: 250 ms doubling, fewer
/// than [`MAX_ROUNDS`] of them, within the operation's deadline.
const DELETION_POLL: Polling = Polling::doubling(Duration::from_millis(250), Duration::MAX, MAX_ROUNDS - 1);

/// Stores each credential as one AWS Secrets Manager secret named `secret_prefix + id`,
/// whose `SecretString` is the versioned JSON [`RecordEnvelope`], tagged for server-side
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
            .field("endpoint", &self.config.endpoint)
            .field("secret_prefix", &self.config.secret_prefix)
            .field("delete_mode", &self.config.delete_mode)
            .finish_non_exhaustive()
    }
}

type Outcome<T> = Result<T, AwsError>;

/// What became of one version written by `write_version`.
enum Written {
    /// It holds `AWSCURRENT`.
    Current(Revision),
    /// Another writer moved `AWSCURRENT` first. `overwritten`: that writer was an
    /// unconditional store, a delete, or the secret is gone, so an unconditional store
    /// may count as landed just before it and at once overwritten; otherwise (a
    /// conditional store, a create, another tool) it must write again.
    Lost { overwritten: bool },
}

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
        if let Some(url) = &config.endpoint {
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
        if let Some(url) = &config.endpoint {
            builder = builder.endpoint_url(url);
        }
        Ok(AwsSecretsManagerProvider {
            client: Client::from_conf(builder.build()),
            config: Arc::new(config),
        })
    }

    /// A provider over a client you built. The client is used as it is: turn its retries
    /// off (`RetryConfig::disabled()`) so the `Retry` layer alone decides.
    pub fn with_client(client: Client, config: AwsSecretsManagerConfig) -> Result<Self, StorageError> {
        config.validate()?;
        Ok(AwsSecretsManagerProvider {
            client,
            config: Arc::new(config),
        })
    }

    /// The secret name of `id`: `secret_prefix + id`. Always within AWS's
    /// [`MAX_SECRET_NAME_LEN`] characters: the configuration (checked by every
    /// constructor) keeps `secret_prefix` to at most that minus [`MAX_ID_LEN`] ASCII
    /// characters, and ids are ASCII of at most [`MAX_ID_LEN`].
    ///
    /// [`MAX_ID_LEN`]: nebula_credential_core::MAX_ID_LEN
    pub fn secret_name(&self, id: &CredentialId) -> String {
        let name = format!("{}{id}", self.config.secret_prefix);
        debug_assert!(name.len() <= MAX_SECRET_NAME_LEN, "validate bounds the prefix");
        name
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

    /// Writes `value` as the next version after `expected` (the version holding
    /// `AWSCURRENT`, `None` when none does), the one way every version after the first is
    /// written: `PutSecretValue` under the pending label (plus the tombstone label for a
    /// tombstone) with the id `version_token` derives, then `UpdateSecretVersionStage`
    /// moving `AWSCURRENT` from `expected` to it, which AWS refuses once `expected` lost it.
    ///
    /// `None` when another writer moved `AWSCURRENT` first (or the secret went), unless
    /// an earlier attempt of this very write did (a retry after a lost answer). Nothing
    /// here depends on a plain `PutSecretValue` moving `AWSCURRENT`, which moto 5.2.5/5.2.6
    /// get wrong after a stage move (two versions labelled `AWSCURRENT`).
    async fn write_version(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
        tombstone: bool,
        write: Write,
    ) -> Result<Written, (AwsError, &'static str)> {
        let token = version_token(name, expected.unwrap_or_default(), value, write);
        let stages = if tombstone {
            vec![PENDING, TOMBSTONE]
        } else {
            vec![PENDING]
        };
        let put = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .client_request_token(&token)
            .set_version_stages(Some(stages.into_iter().map(str::to_string).collect()))
            .send()
            .await
            .map_err(AwsError::from);
        match put {
            Ok(_) => {}
            // The id is in use with another value: only a digest collision gets here.
            Err(e) if e.kind == Kind::Exists => return Ok(Written::Lost { overwritten: false }),
            Err(e) => return Err((e, "secretsmanager:PutSecretValue")),
        }
        let moved = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage(CURRENT)
            .move_to_version_id(&token)
            .set_remove_from_version_id(expected.map(str::to_string))
            .send()
            .await
            .map_err(AwsError::from);
        match moved {
            Ok(_) => Ok(Written::Current(Revision::new(&token))),
            Err(e) if matches!(e.kind, Kind::InvalidParameter | Kind::NotFound) => {
                // Refused: someone else moved AWSCURRENT, unless an earlier attempt of
                // this very write already did.
                let now = self
                    .describe(name)
                    .await
                    .map_err(|e| (e, "secretsmanager:DescribeSecret"))?;
                let Some(now) = now else {
                    return Ok(Written::Lost { overwritten: true });
                };
                let (current, tombstoned) = current_version(now.version_ids_to_stages());
                Ok(match current {
                    Some(v) if v == token => Written::Current(Revision::new(&token)),
                    Some(v) => Written::Lost {
                        overwritten: tombstoned || now.deleted_date().is_some() || plain_write(&v),
                    },
                    None => Written::Lost { overwritten: true },
                })
            }
            Err(e) => Err((e, "secretsmanager:UpdateSecretVersionStage")),
        }
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
        if DELETION_POLL.pause(round).await {
            Ok(())
        } else {
            Err(e.deletion_pending().into_storage(c))
        }
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
        // The current version of a secret someone else scheduled for deletion without our
        // tombstone (the console, the CLI), once this store restored it: a deleted
        // credential, so absent for `Precondition::Absent`, and written over at once.
        let mut revived: Option<Option<String>> = None;
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
                    .client_request_token(version_token(name, "", value, Write::Conditional))
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
                // back nothing a reader could see. Deleted by someone else, it is the old
                // value until the write below replaces it.
                if !state.tombstoned {
                    revived = Some(state.current.clone());
                }
                if let Err(e) = self.client.restore_secret().secret_id(name).send().await {
                    self.look_again(AwsError::from(e), &mut waits, c("secretsmanager:RestoreSecret"))
                        .await?;
                }
                continue;
            }
            let current = state.current.as_deref();
            let written = match precondition {
                Precondition::Overwrite => match self.write_version(name, current, value, false, Write::Plain).await {
                    // Refused: another unconditional writer (or a delete) made its version
                    // current after our look, so this store counts as landed just before
                    // it and at once overwritten (last writer wins); the tags are the
                    // winner's to set.
                    Ok(Written::Lost { overwritten: true }) => {
                        return Ok(Revision::new(version_token(
                            name,
                            current.unwrap_or_default(),
                            value,
                            Write::Plain,
                        )));
                    }
                    // Refused by a conditional store (or another tool): that writer's
                    // revision still held, so it came first; write over it.
                    Ok(Written::Lost { overwritten: false }) => continue,
                    written => written,
                },
                Precondition::Absent => {
                    if !state.tombstoned && revived.as_ref() != Some(&state.current) {
                        // Ours already, unless an earlier attempt of this write put it
                        // there (created it, or wrote it over a tombstone): then the current
                        // version provably holds exactly this value, which no other write
                        // has (a record carries its own nonce).
                        if let Some(v) = current.filter(|v| authored(name, v, value)) {
                            return Ok(Revision::new(v));
                        }
                        return Err(precondition.conflict(PROVIDER, id));
                    }
                    self.write_version(name, current, value, false, Write::Conditional)
                        .await
                }
                Precondition::Revision(expected) => {
                    let expected = expected.as_str();
                    let mine = version_token(name, expected, value, Write::Conditional);
                    if current == Some(mine.as_str()) {
                        return Ok(Revision::new(mine));
                    }
                    if state.tombstoned || current != Some(expected) {
                        // Stale already: refuse without spending a version.
                        return Err(precondition.conflict(PROVIDER, id));
                    }
                    self.write_version(name, current, value, false, Write::Conditional)
                        .await
                }
            };
            let revision = match written {
                Ok(Written::Current(r)) => r,
                Ok(Written::Lost { .. }) => return Err(precondition.conflict(PROVIDER, id)),
                // Deleted between our look and the put (AWS refuses puts to a secret
                // scheduled for deletion, and a forced delete removes it): look again.
                Err((e, _)) if matches!(e.kind, Kind::InvalidRequest | Kind::NotFound) => continue,
                Err((e, action)) => return Err(e.into_storage(c(action))),
            };
            return match self.sync_tags(name, &state.tags, desired).await {
                // The value landed, then a delete removed the secret: the store happened.
                Err(e) if e.kind == Kind::NotFound => Ok(revision),
                Err(e) => Err(e.into_storage(c("secretsmanager:TagResource and secretsmanager:UntagResource"))),
                Ok(()) => Ok(revision),
            };
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
                .max_results(i32::try_from(self.config.list_page_size).unwrap_or(i32::MAX))
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

/// The credential in a `GetSecretValue` answer of a secret known to be ours: `NotFound`
/// for a tombstone, `Corrupted` for anything that is not the record of `id`.
fn read_record(id: &CredentialId, name: &str, out: &GetSecretValueOutput) -> Result<Stored, StorageError> {
    if out.version_stages().iter().any(|s| s == TOMBSTONE) || out.secret_string() == Some(TOMBSTONE_VALUE) {
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
    let record = RecordEnvelope::from_json(value.as_bytes(), PROVIDER, name, Some(id))?;
    Ok(Stored {
        data: record.encrypted_data,
        metadata: record.metadata,
        revision: Revision::new(out.version_id().unwrap_or_default()),
    })
}

#[async_trait]
impl StorageProvider for AwsSecretsManagerProvider {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::new(MAX_SECRET_BYTES).with_conditional_store();
        match self.config.delete_mode {
            DeleteMode::Soft => caps.with_soft_delete(),
            DeleteMode::Purge => caps,
        }
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let name = self.secret_name(id);
        let json = RecordEnvelope::encode(id, data, metadata, PROVIDER, MAX_SECRET_BYTES)?;
        let value = String::from_utf8(json).expect("serde_json writes UTF-8");
        let desired = SCHEME.desired(metadata, &self.config.default_tags);
        self.store_value(id, &name, &value, &desired, precondition).await
    }

    /// One `GetSecretValue` of `AWSCURRENT` in the common case: its version id proves the
    /// value is one this library wrote under this name (see `versions.rs`), and AWS
    /// answers it only while the secret is not scheduled for deletion. Any other answer
    /// (another tool's version, one written by a release before version ids proved
    /// authorship) is settled by `DescribeSecret`: our marker, or `Conflict`.
    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let name = self.secret_name(id);
        let c = ctx(Operation::Retrieve, Some(id), "secretsmanager:GetSecretValue");
        for _ in 0..MAX_ROUNDS {
            let got = self
                .client
                .get_secret_value()
                .secret_id(&name)
                .version_stage(CURRENT)
                .send()
                .await
                .map_err(AwsError::from);
            let out = match got {
                Ok(out) => out,
                Err(e) if e.kind == Kind::NotFound => return Err(StorageError::not_found(PROVIDER, id)),
                // Refused by IAM: an IAM condition on our marker tag (see the README) refuses
                // reads of a secret whose marker was removed; `DescribeSecret` tells that
                // (`Conflict`) from a missing permission.
                Err(e) if e.kind == Kind::Denied => {
                    return match self.ours(id, &name, Operation::Retrieve).await? {
                        Some(_) => Err(e.into_storage(c)),
                        None => Err(StorageError::not_found(PROVIDER, id)),
                    };
                }
                // Refused because it is scheduled for deletion; if it was restored since
                // (a re-store racing us), read again.
                Err(e) if e.kind == Kind::InvalidRequest => match self.ours(id, &name, Operation::Retrieve).await? {
                    Some(now) if !now.deleted => continue,
                    _ => return Err(StorageError::not_found(PROVIDER, id)),
                },
                Err(e) => return Err(e.into_storage(c)),
            };
            let proven = out
                .version_id()
                .zip(out.secret_string())
                .is_some_and(|(version, value)| authored(&name, version, value));
            if !proven && self.ours(id, &name, Operation::Retrieve).await?.is_none() {
                // Deleted since the read.
                return Err(StorageError::not_found(PROVIDER, id));
            }
            return read_record(id, &name, &out);
        }
        Err(StorageError::unavailable(PROVIDER, Operation::Retrieve, Some(id)))
    }

    /// One `DescribeSecret`, never the value (no `GetSecretValue`, so no `kms:Decrypt`
    /// either): the version holding `AWSCURRENT` is the version id `retrieve` reports.
    /// `NotFound` for a missing secret, one scheduled for deletion, one whose current
    /// version is our tombstone, or one without a current version; `Conflict` for a
    /// secret without our marker, as `retrieve` answers for a value it cannot prove ours.
    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        let name = self.secret_name(id);
        match self.ours(id, &name, Operation::Revision).await? {
            Some(State {
                current: Some(version),
                deleted: false,
                tombstoned: false,
                ..
            }) => Ok(Revision::new(version)),
            _ => Err(StorageError::not_found(PROVIDER, id)),
        }
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        let name = self.secret_name(id);
        let c = |action| ctx(Operation::Delete, Some(id), action);
        for _ in 0..MAX_ROUNDS {
            let Some(state) = self.ours(id, &name, Operation::Delete).await? else {
                return Ok(());
            };
            if state.deleted {
                return Ok(());
            }
            let request = self.client.delete_secret().secret_id(&name);
            let request = match self.config.delete_mode {
                DeleteMode::Purge => request.force_delete_without_recovery(true),
                DeleteMode::Soft => {
                    // Overwrite the value first, so a restore never brings it back.
                    if !state.tombstoned {
                        match self
                            .write_version(&name, state.current.as_deref(), TOMBSTONE_VALUE, true, Write::Plain)
                            .await
                        {
                            Ok(Written::Current(_)) => {}
                            // A store made its version current meanwhile: tombstone that one.
                            Ok(Written::Lost { .. }) => continue,
                            Err((e, _)) if matches!(e.kind, Kind::NotFound | Kind::InvalidRequest) => return Ok(()),
                            Err((e, action)) => return Err(e.into_storage(c(action))),
                        }
                    }
                    request.recovery_window_in_days(i64::from(self.config.recovery_window_days))
                }
            };
            return match request.send().await.map_err(AwsError::from) {
                Ok(_) => Ok(()),
                Err(e) if e.kind == Kind::NotFound => Ok(()),
                // Already scheduled for deletion meanwhile: nothing left to do.
                Err(e) if e.kind == Kind::InvalidRequest => match self.ours(id, &name, Operation::Delete).await? {
                    Some(now) if !now.deleted => Err(e.into_storage(c("secretsmanager:DeleteSecret"))),
                    _ => Ok(()),
                },
                Err(e) => Err(e.into_storage(c("secretsmanager:DeleteSecret"))),
            };
        }
        Err(StorageError::conflict(
            PROVIDER,
            id,
            "stores kept replacing the value while it was being deleted; retry the delete",
        ))
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
        let name = self.secret_name(id);
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
