//! [`AzureKeyVaultProvider`]: one Key Vault secret per credential.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{Secret as AzSecret, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions, DeveloperToolsCredential,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_secrets::models::{
    Secret, SecretAttributes, SecretClientListSecretPropertiesOptions, SecretClientListSecretPropertiesVersionsOptions,
    SecretProperties, SetSecretParameters,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures::TryStreamExt as _;
use nebula_credential_core::remote::{Polling, load_ca_cert};
use nebula_credential_core::secrecy::ExposeSecret as _;
use nebula_credential_core::{
    Capabilities, ConfigError, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, ErrorKind, Operation,
    Precondition, ProviderConfig, RecordEnvelope, Revision, StorageError, StorageProvider, Stored, Tags, async_trait,
};

use crate::PROVIDER;
use crate::challenge::ChallengeCheck;
use crate::config::{AzureCredential, AzureKeyVaultConfig, DeleteMode};
use crate::errors::{Access, AzError, Context, Kind};
use crate::naming::{self, MAX_NAME_LEN};
use crate::tags::{self, ID_TAG, MAX_AZURE_TAGS, SCHEME};

mod deletion;

/// Largest secret value Key Vault accepts, in bytes ("25 KB").
pub const MAX_SECRET_BYTES: usize = 25 * 1024;

/// The content type of every secret this provider writes.
pub const CONTENT_TYPE: &str = "application/vnd.nebula-credential.record+json; format=1";

/// The content type a `delete` gives our current version before the soft delete: a
/// secret whose current version is a tombstone reads as absent, so a recover (ours before a
/// store, or Azure's) never serves the deleted record again.
pub const TOMBSTONE_CONTENT_TYPE: &str = "application/vnd.nebula-credential.tombstone; format=1";

/// Waits for a soft delete, purge or recover still in progress: 100 ms doubling to 2 s, at
/// most 40 of them, within the operation's deadline.
const WAITS: Polling = Polling::doubling(Duration::from_millis(100), Duration::from_secs(2), 40);
/// Waits of [`AzureKeyVaultProvider::wait_briefly`]: 100 ms each, at most 600.
const BRIEF_WAITS: Polling = Polling::constant(Duration::from_millis(100), 600);

/// Most pages of versions (25 each) read to judge a secret without `getSecret` (a role
/// that may read metadata only, or a disabled current version).
const MAX_VERSION_PAGES: usize = 40;

const GET: &str = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
const READ_METADATA: &str = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";
const SET: &str = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
const UPDATE: &str = "Microsoft.KeyVault/vaults/secrets/update/action";
const DELETE: &str = "Microsoft.KeyVault/vaults/secrets/delete";
const RECOVER: &str = "Microsoft.KeyVault/vaults/secrets/recover/action";
const PURGE: &str = "Microsoft.KeyVault/vaults/secrets/purge/action";

/// Stores each credential as one Key Vault secret named `secret_prefix` + the escaped id
/// (see the crate docs), whose value is the versioned JSON [`RecordEnvelope`].
///
/// The SDK's own retries are off: the `Retry` layer of the stack decides, so the two
/// never multiply. The SDK's bearer policy caches tokens and fetches a new one before
/// the current one expires.
#[derive(Clone)]
pub struct AzureKeyVaultProvider {
    client: Arc<SecretClient>,
    config: Arc<AzureKeyVaultConfig>,
    credential: Arc<str>,
    first: Arc<FirstContact>,
}

/// Serializes operations until one has passed the service's authentication challenge.
///
/// azure_core 1.1's bearer policy sends the first request of a client without a token,
/// and on the 401 challenge clears the client's shared token cache before fetching one:
/// concurrent first requests clear each other's token and fail with "error while
/// fetching the access token". Once one request has been answered with a token, the
/// scope is known and later requests carry a token from the start.
#[derive(Default)]
struct FirstContact {
    done: std::sync::atomic::AtomicBool,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AzureKeyVaultProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVaultProvider")
            .field("endpoint", &self.config.endpoint)
            .field("secret_prefix", &self.config.secret_prefix)
            .field("delete_mode", &self.config.delete_mode)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// What we know of the current version of a secret of ours.
struct Current {
    tags: Tags,
    /// Its version id, when known.
    version: Option<String>,
    /// The version is a tombstone: the credential is deleted.
    tombstone: bool,
    /// Its `recoveryLevel` rules out purging (the vault has purge protection).
    protected: bool,
}

/// A version as listed (no value).
struct Listed {
    tags: Tags,
    version: Option<String>,
    content_type: Option<String>,
    protected: bool,
    created: Option<i64>,
    updated: Option<i64>,
}

fn tag_map(tags: Option<std::collections::HashMap<String, String>>) -> Tags {
    tags.unwrap_or_default().into_iter().collect()
}

fn is_tombstone(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| c.eq_ignore_ascii_case(TOMBSTONE_CONTENT_TYPE))
}

/// The last path segment of a Key Vault id (`https://v/secrets/NAME[/VERSION]`).
fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
}

/// Whether tags mark a secret as ours and holding `id`.
fn holds(id: &CredentialId, tags: &Tags) -> bool {
    SCHEME.is_ours(tags) && tags.get(ID_TAG).is_some_and(|t| t == id.as_str())
}

/// The newest of `versions`, by their times (whole seconds). The service documents no
/// order, so on a tie a version without our marker wins (another tool wrote over ours
/// within the same second: the secret is no longer ours), then the later listed.
fn newest(versions: Vec<Listed>) -> Option<Listed> {
    versions
        .into_iter()
        .enumerate()
        .max_by_key(|(i, v)| (v.created, v.updated, !SCHEME.is_ours(&v.tags), *i))
        .map(|(_, v)| v)
}

/// The secret name of a listed item id (`https://v/secrets/NAME`).
fn listed_name(id: &str) -> Option<&str> {
    let path = id.split_once("/secrets/")?.1;
    let name = path.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

fn config_error(field: &str, rule: String) -> StorageError {
    ConfigError::new(PROVIDER, field, rule).into()
}

/// Options of a credential's own pipeline: https only, no redirects (our client), no SDK
/// retries (the `Retry` layer retries an unreachable Entra ID), Entra ID's 408/429/5xx kept
/// as such whatever the body ([`crate::entra`]), and the Entra ID authority of the vault's
/// cloud.
fn credential_client_options(config: &AzureKeyVaultConfig) -> Result<ClientOptions, StorageError> {
    let host = url::Url::parse(&config.endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let cloud = crate::cloud::authority_for(&host, std::env::var("AZURE_AUTHORITY_HOST").ok().as_deref())
        .map_err(|rule| config_error("endpoint", rule))?;
    Ok(ClientOptions {
        cloud: cloud.map(|c| Arc::new(c.configuration())),
        transport: Some(Transport::new(Arc::new(http_client(config)?))),
        retry: RetryOptions::none(),
        per_try_policies: vec![Arc::new(crate::entra::EntraStatusCheck)],
        ..ClientOptions::default()
    })
}

/// The credential `config` names, built without any request.
pub(crate) fn build_credential(config: &AzureKeyVaultConfig) -> Result<Arc<dyn TokenCredential>, StorageError> {
    // The SDK's text names the missing variable or unreadable file, and holds no secret.
    let failed = |e: azure_core::Error| config_error("credential", format!("cannot be set up: {e}"));
    Ok(match &config.credential {
        AzureCredential::ManagedIdentity { client_id } => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                ..Default::default()
            }))
            .map_err(failed)?
        }
        AzureCredential::ServicePrincipal {
            tenant_id,
            client_id,
            client_secret,
        } => ClientSecretCredential::new(
            tenant_id,
            client_id.clone(),
            AzSecret::new(client_secret.expose_secret().to_string()),
            Some(ClientSecretCredentialOptions {
                client_options: credential_client_options(config)?,
            }),
        )
        .map_err(|e| {
            config_error(
                "credential",
                format!("cannot be set up ({}); check its settings", e.kind()),
            )
        })?,
        AzureCredential::WorkloadIdentity => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: credential_client_options(config)?,
            },
            ..Default::default()
        }))
        .map_err(failed)?,
        AzureCredential::DeveloperTools => DeveloperToolsCredential::new(None).map_err(failed)?,
        AzureCredential::Custom(c) => c.0.clone(),
    })
}

/// The HTTP client: TLS verification on, the configured CA trusted besides the system
/// roots, https only, no redirects (a bearer token must never follow one), `*.localhost`
/// resolved to loopback (RFC 6761; it does not resolve everywhere).
fn http_client(config: &AzureKeyVaultConfig) -> Result<reqwest::Client, StorageError> {
    let url =
        url::Url::parse(&config.endpoint).map_err(|e| config_error("endpoint", format!("is not a valid URL ({e})")))?;
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true);
    if let Some(ca) = &config.ca_cert {
        let pem = load_ca_cert(PROVIDER, ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| config_error("ca_cert", format!("is not PEM certificates ({e})")))?;
        builder = builder.tls_certs_merge(certs);
    }
    if let Some(host) = url.host_str()
        && (host == "localhost" || host.ends_with(".localhost"))
    {
        let port = url.port_or_known_default().unwrap_or(443);
        builder = builder
            .resolve(host, SocketAddr::from(([127, 0, 0, 1], port)))
            .no_proxy();
    }
    builder
        .build()
        .map_err(|e| config_error("ca_cert", format!("cannot set up TLS ({e})")))
}

impl AzureKeyVaultProvider {
    /// Validates `config`, then builds the credential it names and a `SecretClient`.
    /// Makes no request; see [`StorageProvider::check`].
    pub async fn new(config: AzureKeyVaultConfig) -> Result<Self, StorageError> {
        config.validate()?;
        let credential = build_credential(&config)?;
        Self::build(config, credential)
    }

    /// Like [`new`](Self::new), authenticating with `credential` (any `TokenCredential`)
    /// whatever `config.credential` says.
    pub fn with_credential(
        config: AzureKeyVaultConfig,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, StorageError> {
        config.validate()?;
        Self::build(config, credential)
    }

    fn build(config: AzureKeyVaultConfig, credential: Arc<dyn TokenCredential>) -> Result<Self, StorageError> {
        let http = http_client(&config)?;
        let mut options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(http))),
                retry: RetryOptions::none(),
                per_try_policies: vec![Arc::new(ChallengeCheck)],
                ..ClientOptions::default()
            },
            verify_challenge_resource: Some(true),
            ..SecretClientOptions::default()
        };
        if let Some(v) = &config.api_version {
            options.api_version = v.clone();
        }
        let client = SecretClient::new(config.endpoint.trim_end_matches('/'), credential, Some(options))
            .map_err(|e| config_error("endpoint", format!("is not usable by the SDK ({})", e.kind())))?;
        Ok(AzureKeyVaultProvider {
            client: Arc::new(client),
            credential: config.credential.describe().into(),
            config: Arc::new(config),
            first: Arc::default(),
        })
    }

    /// Runs `op`, alone while no operation has passed the authentication challenge yet
    /// (see [`FirstContact`]).
    async fn contact<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        use std::sync::atomic::Ordering;
        if self.first.done.load(Ordering::Acquire) {
            return op.await;
        }
        let _alone = self.first.lock.lock().await;
        let outcome = op.await;
        let answered = match &outcome {
            Ok(_) => true,
            Err(e) => matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::Conflict | ErrorKind::Corrupted
            ),
        };
        if answered {
            self.first.done.store(true, Ordering::Release);
        }
        outcome
    }

    /// The secret name of `id`: `secret_prefix` + the escaped id (at most 127 characters).
    pub fn secret_name(&self, id: &CredentialId) -> String {
        let prefix = &self.config.secret_prefix;
        format!("{prefix}{}", naming::encode(id.as_str(), MAX_NAME_LEN - prefix.len()))
    }

    fn ctx<'a>(
        &'a self,
        operation: Operation,
        id: Option<&'a CredentialId>,
        access: Access,
        action: &'static str,
    ) -> Context<'a> {
        Context {
            operation,
            id,
            access,
            action,
            credential: &self.credential,
        }
    }

    /// `Ok` when tags mark the secret `name` as ours and holding `id`.
    fn ensure_ours(&self, id: &CredentialId, name: &str, tags: &Tags) -> Result<(), StorageError> {
        SCHEME.ensure_ours(PROVIDER, id, name, tags)?;
        SCHEME.ensure_holds(PROVIDER, id, name, ID_TAG, tags.get(ID_TAG).map(String::as_str))
    }

    /// The newest version of `name` as listed (no value), from at most
    /// [`MAX_VERSION_PAGES`] pages: the service documents no order, and the emulator lists
    /// the oldest first, so the newest version may be on any page. `Ok(None)` when there is
    /// no live secret, `Err(None)` past the bound.
    async fn newest_listed(&self, name: &str) -> Result<Option<Listed>, Option<AzError>> {
        let options = SecretClientListSecretPropertiesVersionsOptions {
            maxresults: Some(25),
            ..Default::default()
        };
        let mut pages = self
            .client
            .list_secret_properties_versions(name, Some(options))
            .map_err(|e| Some(e.into()))?
            .into_pages();
        let mut listed = Vec::new();
        for _ in 0..MAX_VERSION_PAGES {
            let page = match pages.try_next().await {
                Ok(Some(page)) => page.into_model().map_err(|e| Some(e.into()))?,
                Ok(None) => return Ok(newest(listed)),
                Err(e) => {
                    let e = AzError::from(e);
                    return if e.kind == Kind::NotFound {
                        Ok(None)
                    } else {
                        Err(Some(e))
                    };
                }
            };
            listed.extend(page.value.into_iter().map(|p| {
                let time = |f: fn(&SecretAttributes) -> Option<OffsetDateTime>| {
                    p.attributes.as_ref().and_then(f).map(|t| t.unix_timestamp())
                };
                Listed {
                    version: p.id.as_deref().map(|i| last_segment(i).to_string()),
                    created: time(|a| a.created),
                    updated: time(|a| a.updated),
                    protected: p.attributes.as_ref().and_then(deletion::unpurgeable).is_some(),
                    content_type: p.content_type.clone(),
                    tags: tag_map(p.tags),
                }
            }));
        }
        Err(None)
    }

    /// The current version, checked to be ours and `id`'s; `None` when there is no live
    /// secret. One request: a GET of the latest version (its value is read and dropped;
    /// Key Vault has no call for the latest version's properties alone). Only when that
    /// GET is refused for a disabled version, or (for `exists`) for a role that may read
    /// metadata only, are the versions listed instead, bounded.
    async fn current(
        &self,
        id: &CredentialId,
        name: &str,
        operation: Operation,
    ) -> Result<Option<Current>, StorageError> {
        let got = self.client.get_secret(name, None).await.and_then(|r| r.into_model());
        let (tags, content_type, protected, version) = match got {
            Ok(secret) => {
                let protected = secret.attributes.as_ref().and_then(deletion::unpurgeable).is_some();
                let version = secret.id.as_deref().map(|i| last_segment(i).to_string());
                (tag_map(secret.tags), secret.content_type, protected, version)
            }
            Err(e) => {
                let e = AzError::from(e);
                let list = e.kind == Kind::Disabled || (e.kind == Kind::Denied && operation == Operation::Exists);
                if !list {
                    return match e.kind {
                        Kind::NotFound => Ok(None),
                        _ => Err(e.into_storage(self.ctx(operation, Some(id), Access::Read, GET))),
                    };
                }
                match self.newest_listed(name).await {
                    Ok(None) => return Ok(None),
                    Ok(Some(v)) => (v.tags, v.content_type, v.protected, v.version),
                    Err(Some(listing)) => {
                        return Err(listing.into_storage(self.ctx(operation, Some(id), Access::Read, READ_METADATA)));
                    }
                    // Too many versions to judge without reading the value: say what the GET needed.
                    Err(None) => return Err(e.into_storage(self.ctx(operation, Some(id), Access::Read, GET))),
                }
            }
        };
        self.ensure_ours(id, name, &tags)?;
        Ok(Some(Current {
            tombstone: is_tombstone(content_type.as_deref()),
            protected,
            version: version.filter(|v| !v.is_empty()),
            tags,
        }))
    }

    /// Waits before the next round of an operation that met a delete, purge or recover
    /// still in progress (`last`), 100 ms doubling to 2 s ([`WAITS`]); past the bound or the
    /// deadline, a retryable `Unavailable` whose source is `last`.
    async fn wait(
        &self,
        round: &mut u32,
        operation: Operation,
        id: &CredentialId,
        last: AzError,
    ) -> Result<(), StorageError> {
        Self::pause(WAITS, round, operation, id, last).await
    }

    /// Like [`Self::wait`], but 100 ms every round (within about the same total time):
    /// while a recover brings back a record whose delete was not ours (no tombstone:
    /// deleted by an earlier release or by hand), readers see it until our write lands, so
    /// the write is tried again soon after the recover completes.
    async fn wait_briefly(
        &self,
        round: &mut u32,
        operation: Operation,
        id: &CredentialId,
        last: AzError,
    ) -> Result<(), StorageError> {
        Self::pause(BRIEF_WAITS, round, operation, id, last).await
    }

    async fn pause(
        polling: Polling,
        round: &mut u32,
        operation: Operation,
        id: &CredentialId,
        last: AzError,
    ) -> Result<(), StorageError> {
        if polling.pause(round).await {
            return Ok(());
        }
        Err(StorageError::unavailable(PROVIDER, operation, Some(id)).with_source(last.into_source()))
    }

    async fn store_value(
        &self,
        id: &CredentialId,
        name: &str,
        value: &str,
        desired: &Tags,
    ) -> Result<Revision, StorageError> {
        let mut round = 0;
        // A recover of ours is bringing back a deleted record (no tombstone): write soon.
        let mut exposed = false;
        loop {
            let tags = match self.current(id, name, Operation::Store).await? {
                Some(current) => tags::merged(&current.tags, desired),
                None => desired.clone(),
            };
            if tags.len() > MAX_AZURE_TAGS {
                return Err(StorageError::backend(
                    PROVIDER,
                    Operation::Store,
                    Some(id),
                    format!(
                        "the secret {name:?} would carry {} tags, over Key Vault's {MAX_AZURE_TAGS}: other tools \
                         added {} of them; remove some of those, or store this credential with fewer tags",
                        tags.len(),
                        tags.len() - desired.len()
                    ),
                ));
            }
            match self.set(id, name, value, CONTENT_TYPE, tags, Operation::Store).await {
                Ok(secret_id) => return Ok(Revision::new(last_segment(&secret_id))),
                Err(err) => match err.kind {
                    Kind::DeletedRecoverable => {
                        exposed |= self.revive(id, name).await?;
                        self.wait_or_briefly(exposed, &mut round, id, err).await?;
                    }
                    Kind::BeingDeleted | Kind::BeingRecovered => {
                        self.wait_or_briefly(exposed, &mut round, id, err).await?;
                    }
                    _ => return Err(err.into_storage(self.ctx(Operation::Store, Some(id), Access::Write, SET))),
                },
            }
        }
    }

    async fn wait_or_briefly(
        &self,
        briefly: bool,
        round: &mut u32,
        id: &CredentialId,
        last: AzError,
    ) -> Result<(), StorageError> {
        if briefly {
            self.wait_briefly(round, Operation::Store, id, last).await
        } else {
            self.wait(round, Operation::Store, id, last).await
        }
    }

    /// Sets a new version of `name`; its Key Vault id on success.
    async fn set(
        &self,
        id: &CredentialId,
        name: &str,
        value: &str,
        content_type: &str,
        tags: Tags,
        operation: Operation,
    ) -> Result<String, AzError> {
        let params = SetSecretParameters {
            value: Some(value.to_string()),
            content_type: Some(content_type.into()),
            tags: Some(tags.into_iter().collect()),
            ..Default::default()
        };
        let request = params.try_into().map_err(|e: azure_core::Error| {
            tracing::error!(provider = PROVIDER, %operation, %id, "cannot serialize a set request");
            AzError::from(e)
        })?;
        let secret = self
            .client
            .set_secret(name, request, None)
            .await
            .and_then(|r| r.into_model())?;
        Ok(secret.id.unwrap_or_default())
    }

    fn list_options(maxresults: i32) -> SecretClientListSecretPropertiesOptions<'static> {
        SecretClientListSecretPropertiesOptions {
            maxresults: Some(maxresults),
            ..Default::default()
        }
    }

    /// The id a listed secret of ours holds, when its name is the one we give that id.
    fn listed_id(&self, item: &SecretProperties) -> Option<(CredentialId, Tags)> {
        if is_tombstone(item.content_type.as_deref()) {
            return None;
        }
        let name = listed_name(item.id.as_deref()?)?;
        let prefix = &self.config.secret_prefix;
        if name.len() < prefix.len() || !name[..prefix.len()].eq_ignore_ascii_case(prefix) {
            return None;
        }
        let tags = tag_map(item.tags.clone());
        let id = CredentialId::new(tags.get(ID_TAG)?).ok()?;
        self.secret_name(&id).eq_ignore_ascii_case(name).then_some((id, tags))
    }
}

#[async_trait]
impl StorageProvider for AzureKeyVaultProvider {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::new(MAX_SECRET_BYTES);
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
        if precondition.is_conditional() {
            return Err(StorageError::Unsupported {
                provider: PROVIDER,
                what: "conditional stores (Key Vault has no compare-and-set on secrets)",
                advice: "store without a precondition: the last writer wins",
            });
        }
        let json = RecordEnvelope::encode(id, data, metadata, PROVIDER, MAX_SECRET_BYTES)?;
        let value = String::from_utf8(json).expect("serde_json writes UTF-8");
        let desired = tags::desired(id, metadata, &self.config.default_tags);
        let name = self.secret_name(id);
        self.contact(self.store_value(id, &name, &value, &desired)).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        self.contact(self.retrieve_now(id)).await
    }

    /// One GET of the latest version, as `retrieve` (see the crate docs for why no
    /// cheaper call answers it), without decoding the record.
    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        self.contact(self.revision_now(id)).await
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        self.contact(self.delete_now(id)).await
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        self.contact(self.list_now(filter)).await
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        self.contact(self.exists_now(id)).await
    }

    /// A GET of an absent name (proves the read permission) and one page of at most one
    /// secret (the list permission); in purge mode, refuses a vault with purge protection.
    async fn check(&self) -> Result<(), StorageError> {
        self.contact(self.check_now()).await
    }
}

/// The operations, run by the trait methods through [`AzureKeyVaultProvider::contact`].
impl AzureKeyVaultProvider {
    /// The latest version of `id`'s secret, as `retrieve` reads it (one GET: Key Vault has
    /// no call for the latest version's properties alone), checked to be ours and `id`'s:
    /// `NotFound` for no secret, a deleted one, or a tombstone (also a disabled one a
    /// delete left behind), `Conflict` for a foreign one.
    async fn latest(&self, id: &CredentialId, name: &str, operation: Operation) -> Result<Secret, StorageError> {
        let secret = match self.client.get_secret(name, None).await.and_then(|r| r.into_model()) {
            Ok(secret) => secret,
            Err(e) => {
                let e = AzError::from(e);
                // A disabled version a delete made a tombstone of (then recovered) is absent.
                if e.kind == Kind::Disabled
                    && let Ok(Some(v)) = self.newest_listed(name).await
                    && is_tombstone(v.content_type.as_deref())
                    && holds(id, &v.tags)
                {
                    return Err(StorageError::not_found(PROVIDER, id));
                }
                return Err(e.into_storage(self.ctx(operation, Some(id), Access::Read, GET)));
            }
        };
        self.ensure_ours(id, name, &tag_map(secret.tags.clone()))?;
        if is_tombstone(secret.content_type.as_deref()) {
            return Err(StorageError::not_found(PROVIDER, id));
        }
        Ok(secret)
    }

    /// The version id of [`Self::latest`]: what `retrieve` reports, without decoding the
    /// record (the value comes with the GET and is dropped).
    async fn revision_now(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        let name = self.secret_name(id);
        let secret = self.latest(id, &name, Operation::Revision).await?;
        Ok(Revision::new(last_segment(secret.id.as_deref().unwrap_or_default())))
    }

    async fn retrieve_now(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let name = self.secret_name(id);
        let secret = self.latest(id, &name, Operation::Retrieve).await?;
        let Some(value) = secret.value else {
            return Err(StorageError::corrupted(
                PROVIDER,
                Some(id),
                name,
                "the secret has no value",
            ));
        };
        let record = RecordEnvelope::from_json(value.as_bytes(), PROVIDER, &name, Some(id))?;
        Ok(Stored {
            data: record.encrypted_data,
            metadata: record.metadata,
            revision: Revision::new(last_segment(secret.id.as_deref().unwrap_or_default())),
        })
    }

    async fn list_now(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let c = self.ctx(Operation::List, None, Access::Read, READ_METADATA);
        let mut pager = self
            .client
            .list_secret_properties(Some(Self::list_options(25)))
            .map_err(|e| AzError::from(e).into_storage(c))?;
        let mut ids = Vec::new();
        while let Some(item) = pager.try_next().await.map_err(|e| AzError::from(e).into_storage(c))? {
            if let Some((id, tags)) = self.listed_id(&item)
                && SCHEME.matches(filter, &id, &tags)
            {
                ids.push(id);
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// One GET of the latest version (see [`Self::current`]); a tombstone is absent.
    async fn exists_now(&self, id: &CredentialId) -> Result<bool, StorageError> {
        let name = self.secret_name(id);
        let current = self.current(id, &name, Operation::Exists).await?;
        Ok(current.is_some_and(|c| !c.tombstone))
    }

    /// A GET of a name none of our ids gets (the escape `-1` is never written): 404 proves
    /// the endpoint, TLS, the token and the read permission (a role that may only list is
    /// refused here, as it would be on every `retrieve`). Then one page of at most one
    /// secret proves the list permission; in purge mode, a listed secret's `recoveryLevel`
    /// shows whether the vault has purge protection.
    async fn check_now(&self) -> Result<(), StorageError> {
        let probe = format!("{}-1check", self.config.secret_prefix);
        match self.client.get_secret(&probe, None).await {
            Ok(_) => {}
            Err(e) => {
                let e = AzError::from(e);
                if e.kind != Kind::NotFound {
                    return Err(e.into_storage(self.ctx(Operation::Check, None, Access::Read, GET)));
                }
            }
        }
        let c = self.ctx(Operation::Check, None, Access::Read, READ_METADATA);
        let mut pages = self
            .client
            .list_secret_properties(Some(Self::list_options(1)))
            .map_err(|e| AzError::from(e).into_storage(c))?
            .into_pages();
        let page = pages.try_next().await.map_err(|e| AzError::from(e).into_storage(c))?;
        if self.config.delete_mode == DeleteMode::Purge
            && let Some(page) = page
        {
            let items = page.into_model().map_err(|e| AzError::from(e).into_storage(c))?.value;
            if let Some(level) = items
                .iter()
                .filter_map(|i| i.attributes.as_ref())
                .find_map(deletion::unpurgeable)
            {
                return Err(config_error(
                    "delete_mode",
                    format!(
                        "is \"purge\" but the vault has purge protection (recoveryLevel {level}): deleted secrets \
                         cannot be purged before their retention ends; set delete_mode = \"soft\" for this vault"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_version_wins_a_tie_for_the_newest_whatever_the_listed_order() {
        let id: CredentialId = "k".parse().unwrap();
        let ours = tags::desired(&id, &CredentialMetadata::new(), &Tags::new());
        let foreign = Tags::from([("CostCenter".to_string(), "42".to_string())]);
        let newest = |v: Vec<Listed>| newest(v).map(|l| l.tags);
        let at = |created, tags: &Tags| Listed {
            tags: tags.clone(),
            version: None,
            content_type: None,
            protected: false,
            created: Some(created),
            updated: Some(created),
        };
        for order in [[at(100, &foreign), at(100, &ours)], [at(100, &ours), at(100, &foreign)]] {
            assert_eq!(newest(order.into()), Some(foreign.clone()));
        }
        assert_eq!(newest(vec![at(101, &ours), at(100, &foreign)]), Some(ours.clone()));
        assert_eq!(newest(vec![at(100, &ours), at(100, &ours)]), Some(ours));
        assert_eq!(newest(Vec::new()), None);
    }

    #[test]
    fn ids_and_names_from_key_vault_ids() {
        assert_eq!(last_segment("https://v.vault.azure.net/secrets/n/0123abcd"), "0123abcd");
        assert_eq!(listed_name("https://v.vault.azure.net/secrets/n-x"), Some("n-x"));
        assert_eq!(listed_name("https://v.vault.azure.net:443/secrets/n/"), Some("n"));
        assert_eq!(listed_name("https://v.vault.azure.net/keys/n"), None);
    }

    #[tokio::test]
    async fn the_provider_and_its_config_never_print_the_client_secret() {
        let config = AzureKeyVaultConfig {
            credential: AzureCredential::ServicePrincipal {
                tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
                client_id: "3c9c3a6e-1b9f-4f57-9c7a-2f6d1c2e8b4a".into(),
                client_secret: "hunter2-s3cr3t".into(),
            },
            ..AzureKeyVaultConfig::new("https://kv1.vault.azure.net")
        };
        let p = AzureKeyVaultProvider::new(config.clone())
            .await
            .expect("builds without I/O");
        let shown = format!("{p:?} {config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("3c9c3a6e"), "{shown}");
        let long: CredentialId = "Ab_9-zY".repeat(19)[..128].parse().unwrap();
        let name = p.secret_name(&long);
        assert!(name.len() <= MAX_NAME_LEN && name.starts_with("nebula-"), "{name}");
    }

    #[tokio::test]
    async fn oversized_records_and_conditional_stores_are_refused_before_any_request() {
        let p = AzureKeyVaultProvider::new(AzureKeyVaultConfig::new("https://kv1.vault.azure.net"))
            .await
            .unwrap();
        let id: CredentialId = "big".parse().unwrap();
        let data = nebula_credential_core::conformance::data(1);
        let big = EncryptedData {
            ciphertext: vec![0; MAX_SECRET_BYTES],
            ..data.clone()
        };
        match p.store(&id, &big, &CredentialMetadata::new()).await {
            Err(StorageError::TooLarge { size, limit, .. }) => {
                assert_eq!(limit, MAX_SECRET_BYTES);
                assert!(size > limit);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let e = p
            .store_if(&id, &data, &CredentialMetadata::new(), &Precondition::Absent)
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::Unsupported { .. }), "{e}");
        assert!(!p.capabilities().conditional_store);
    }
}
