//! [`KubernetesSecretsProvider`]: one Secret per credential.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Api, Client, Config};
use nebula_credential_core::{
    Capabilities, ConfigError, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation,
    Precondition, ProviderConfig, RecordEnvelope, Revision, StorageError, StorageProvider, Stored, Tags, async_trait,
};

use nebula_credential_core::remote::{Polling, back_off, ends_before_deadline};

use crate::PROVIDER;
use crate::config::KubernetesSecretsConfig;
use crate::errors::{BeingDeleted, Context, Kind, KubeError};
use crate::labels::{
    ID_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL, METADATA_ANNOTATION, PREFIX_LABEL, SCHEME, from_labels, label_key,
    tag_selector, to_labels,
};
use crate::naming;

/// Most bytes one Secret may hold: Kubernetes refuses Secrets over 1 MiB.
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;
/// The `type` of our Secrets, so `kubectl get secrets` shows what they are.
pub const SECRET_TYPE: &str = "nebula-credential/v1";
/// The data key holding the JSON record.
pub const RECORD_KEY: &str = "record";
/// Rounds of an unconditional store or a delete racing other writers before it gives up
/// (each lost round backs off a random moment, as `CredentialStore` does).
const MAX_ROUNDS: u32 = 64;
/// Longest a store waits for a Secret that is being deleted (finalizers hold it) to go,
/// when no deadline of the `Timeout` layer ends the wait sooner.
const MAX_DELETION_WAIT: Duration = Duration::from_secs(10);
/// Pauses between two looks at a Secret that is being deleted: 50 ms doubling up to 1 s,
/// as many as [`MAX_DELETION_WAIT`] allows.
const DELETION_POLL: Polling = Polling::doubling(Duration::from_millis(50), Duration::from_secs(1), u32::MAX);

/// Stores each credential as one Kubernetes Secret of type [`SECRET_TYPE`] in one
/// namespace, named by [`secret_name`](Self::secret_name), whose data key [`RECORD_KEY`]
/// holds the JSON [`RecordEnvelope`] (see the crate docs).
///
/// kube's own retry layer is off: the `Retry` layer of the stack alone decides, so the
/// two never multiply.
#[derive(Clone)]
pub struct KubernetesSecretsProvider {
    api: Api<Secret>,
    namespace: String,
    config: Arc<KubernetesSecretsConfig>,
    /// Default labels plus the encoded prefix label, in the scheme's view.
    defaults: Tags,
    /// Set once the namespace is known to exist (or cannot be probed), so an empty
    /// `list` probes it at most once.
    namespace_known: Arc<AtomicBool>,
}

impl std::fmt::Debug for KubernetesSecretsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSecretsProvider")
            .field("namespace", &self.namespace)
            .field("secret_prefix", &self.config.secret_prefix)
            .field("context", &self.config.context)
            .finish_non_exhaustive()
    }
}

fn config_error(field: &str, rule: String) -> StorageError {
    ConfigError::new(PROVIDER, field, rule).into()
}

/// Bytes of a Secret as stored: name, type, labels, annotations and data (keys and
/// decoded values). The API server refuses Secrets whose data exceed 1 MiB and etcd
/// requests over 1.5 MiB; counting the metadata too keeps every Secret under both.
pub fn object_size(secret: &Secret) -> usize {
    let m = &secret.metadata;
    let pairs =
        |map: &Option<BTreeMap<String, String>>| map.iter().flatten().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    m.name.as_ref().map_or(0, String::len)
        + secret.type_.as_ref().map_or(0, String::len)
        + pairs(&m.labels)
        + pairs(&m.annotations)
        + secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.0.len())
            .sum::<usize>()
}

/// Whether the object is being deleted: it has a `deletionTimestamp` and stays only until
/// the finalizers of other tools are removed. Its data is going: reads treat it as absent,
/// and nothing is written into it.
fn is_dying(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

fn is_ours(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .is_some_and(|l| SCHEME.is_ours(&from_labels(l, None)))
}

impl KubernetesSecretsProvider {
    /// Validates `config`, then builds a client from the kubeconfig or in-cluster
    /// configuration it names. Makes no request; see [`StorageProvider::check`].
    pub async fn new(config: KubernetesSecretsConfig) -> Result<Self, StorageError> {
        config.validate()?;
        let kube_config = Self::client_config(&config).await?;
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| kube_config.default_namespace.clone());
        let client = Client::try_from(kube_config).map_err(|e| {
            let e = KubeError::from(e);
            if e.kind == Kind::NoCredentials {
                return e.into_storage(Context {
                    operation: Operation::Check,
                    id: None,
                    verb: "connect",
                    namespace: &namespace,
                });
            }
            // Building the client loads the certificates, key and token file: failing here is
            // the kubeconfig's fault, not a failed request.
            let whence = match (&config.kubeconfig_path, &config.context) {
                (Some(path), Some(c)) => format!("({:?}), context {c:?},", path.display().to_string()),
                (Some(path), None) => format!("({:?}), its current context,", path.display().to_string()),
                (None, _) => {
                    "is not set, and the configuration found (KUBECONFIG, ~/.kube/config or in-cluster)".into()
                }
            };
            config_error(
                "kubeconfig_path",
                format!(
                    "{whence} cannot be turned into a client ({}); check its user's client certificate and key \
                     (`client-certificate-data`, `client-key-data`), token file, and its cluster's certificate \
                     authority",
                    e.source()
                ),
            )
        })?;
        Self::with_client(client, &namespace, config)
    }

    /// The kube client configuration `config` selects: `kubeconfig_path`, else
    /// `KUBECONFIG` or `~/.kube/config`, else the in-cluster configuration (kube's order),
    /// with kube's own retries turned off. Refused with a `Config` error naming the
    /// kubeconfig and context when it turns TLS verification off
    /// (`insecure-skip-tls-verify: true`), uses plain `http://` to a host that is not
    /// loopback, names a malformed server (e.g. a port outside 1..=65535), or would send a
    /// plain-`http://` server's traffic through a proxy. A proxy from `HTTPS_PROXY` is dropped
    /// for loopback servers and servers `NO_PROXY` names. kube's debug variables
    /// (`KUBE_RS_DEBUG_OVERRIDE_URL`, `KUBE_RS_DEBUG_IMPERSONATE_*`) are ignored.
    pub async fn client_config(config: &KubernetesSecretsConfig) -> Result<Config, StorageError> {
        crate::kubeconfig::load(config).await
    }

    /// A provider over a client you built, in `namespace`. The client is used as it is:
    /// build it from a `Config` with `default_retry = false` so the `Retry` layer alone
    /// decides ([`client_config`](Self::client_config) gives one that also meets the
    /// transport rules, which a ready-made client cannot be checked against).
    pub fn with_client(client: Client, namespace: &str, config: KubernetesSecretsConfig) -> Result<Self, StorageError> {
        config.validate()?;
        if !crate::config::is_dns_label(namespace) {
            return Err(config_error(
                "namespace",
                format!("must be a DNS-1123 label (got {namespace:?} from the client configuration)"),
            ));
        }
        let mut defaults: Tags = config.default_labels.clone();
        defaults.insert(PREFIX_LABEL.into(), SCHEME.encode_value(&config.secret_prefix));
        Ok(KubernetesSecretsProvider {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            config: Arc::new(config),
            defaults,
            namespace_known: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The namespace of this provider's Secrets.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Secret name of `id` (see the crate docs): lossless, injective, a valid name.
    pub fn secret_name(&self, id: &CredentialId) -> String {
        naming::secret_name(&self.config.secret_prefix, id)
    }

    /// The label selector `list` sends for `filter`: the managed-by and prefix labels,
    /// and one label per tag, so the API server does the filtering.
    pub fn label_selector(&self, filter: &CredentialFilter) -> String {
        let mut parts = vec![
            format!("{MANAGED_BY_LABEL}={MANAGED_BY}"),
            format!("{PREFIX_LABEL}={}", self.defaults[PREFIX_LABEL]),
        ];
        parts.extend(filter.tags.iter().map(|(k, v)| tag_selector(k, v)));
        parts.join(",")
    }

    fn ctx<'a>(&'a self, operation: Operation, id: Option<&'a CredentialId>, verb: &'static str) -> Context<'a> {
        Context {
            operation,
            id,
            verb,
            namespace: &self.namespace,
        }
    }

    fn location(&self, name: &str) -> String {
        format!("Secret {}/{name}", self.namespace)
    }

    /// `Ok` when the object `name` is ours and holds `id`; `Conflict` otherwise.
    fn ensure_ours(&self, id: &CredentialId, name: &str, meta: &ObjectMeta) -> Result<(), StorageError> {
        if !is_ours(meta) {
            return Err(SCHEME.foreign(PROVIDER, id, &self.location(name)));
        }
        let held = meta.annotations.as_ref().and_then(|a| a.get(ID_ANNOTATION));
        SCHEME.ensure_holds(
            PROVIDER,
            id,
            &self.location(name),
            ID_ANNOTATION,
            held.map(String::as_str),
        )
    }

    /// [`ensure_ours`](Self::ensure_ours), and the Secret has our [`SECRET_TYPE`]: one of
    /// another type carrying our label (a copy, a forgery) is not ours either.
    fn ensure_ours_secret(&self, id: &CredentialId, name: &str, secret: &Secret) -> Result<(), StorageError> {
        self.ensure_ours(id, name, &secret.metadata)?;
        if secret.type_.as_deref() != Some(SECRET_TYPE) {
            return Err(StorageError::conflict(
                PROVIDER,
                id,
                format!(
                    "{} carries the managed-by label but has type {:?}, not {SECRET_TYPE:?}, so \
                     nebula-credential neither reads, overwrites nor deletes it; move that Secret away",
                    self.location(name),
                    secret.type_.as_deref().unwrap_or("Opaque")
                ),
            ));
        }
        Ok(())
    }

    /// The Secret holding `record` for `id`, on top of `current` (its foreign labels,
    /// annotations and object metadata are kept), or a new one.
    fn object(
        &self,
        id: &CredentialId,
        name: &str,
        metadata: &CredentialMetadata,
        record: &[u8],
        current: Option<&Secret>,
    ) -> Result<Secret, StorageError> {
        let desired = SCHEME.desired(metadata, &self.defaults);
        let (new_labels, owned) = to_labels(&desired);
        let mut meta = current.map(|c| c.metadata.clone()).unwrap_or_default();
        let mut labels = meta.labels.take().unwrap_or_default();
        let mut annotations = meta.annotations.take().unwrap_or_default();
        if current.is_some() {
            let now = from_labels(&labels, annotations.get(SCHEME.owned_key).map(String::as_str));
            for key in SCHEME.update(&now, &desired).remove {
                labels.remove(&label_key(&key));
            }
        }
        labels.extend(new_labels);
        annotations.extend(self.config.default_annotations.clone());
        let metadata_json = serde_json::to_string(metadata).map_err(|e| {
            StorageError::backend(PROVIDER, Operation::Store, Some(id), "cannot serialize the metadata").with_source(e)
        })?;
        annotations.insert(SCHEME.owned_key.into(), owned);
        annotations.insert(ID_ANNOTATION.into(), id.to_string());
        annotations.insert(METADATA_ANNOTATION.into(), metadata_json);
        meta.name = Some(name.to_string());
        meta.labels = Some(labels);
        meta.annotations = Some(annotations);
        let secret = Secret {
            metadata: meta,
            type_: Some(SECRET_TYPE.into()),
            data: Some(BTreeMap::from([(RECORD_KEY.to_string(), ByteString(record.to_vec()))])),
            ..Secret::default()
        };
        let size = object_size(&secret);
        if size > MAX_OBJECT_BYTES {
            return Err(StorageError::too_large(PROVIDER, id, size, MAX_OBJECT_BYTES));
        }
        Ok(secret)
    }

    /// The revision of a stored object.
    fn revision(secret: &Secret) -> Revision {
        Revision::new(secret.metadata.resource_version.as_deref().unwrap_or_default())
    }

    /// `Some(revision)` when `current` already holds exactly `record`: an earlier attempt
    /// of this very write (retried after a lost answer) landed.
    fn same_write(current: &Secret, record: &[u8]) -> Option<Revision> {
        let held = current.data.as_ref()?.get(RECORD_KEY)?;
        (held.0 == record).then(|| Self::revision(current))
    }

    async fn get(&self, id: &CredentialId, name: &str, operation: Operation) -> Result<Option<Secret>, StorageError> {
        self.api
            .get_opt(name)
            .await
            .map_err(|e| KubeError::from(e).into_storage(self.ctx(operation, Some(id), "get")))
    }

    async fn create(&self, id: &CredentialId, secret: &Secret) -> Result<Result<Revision, Kind>, StorageError> {
        match self.api.create(&PostParams::default(), secret).await {
            Ok(s) => Ok(Ok(Self::revision(&s))),
            Err(e) => {
                let e = KubeError::from(e);
                match e.kind {
                    Kind::AlreadyExists => Ok(Err(e.kind)),
                    _ => Err(e.into_storage(self.ctx(Operation::Store, Some(id), "create"))),
                }
            }
        }
    }

    /// Replaces the object; `Ok(Err(kind))` for a lost race (`Conflict` or `NotFound`).
    async fn replace(
        &self,
        id: &CredentialId,
        name: &str,
        secret: &Secret,
    ) -> Result<Result<Revision, Kind>, StorageError> {
        match self.api.replace(name, &PostParams::default(), secret).await {
            Ok(s) => Ok(Ok(Self::revision(&s))),
            Err(e) => {
                let e = KubeError::from(e);
                match e.kind {
                    Kind::Conflict | Kind::NotFound => Ok(Err(e.kind)),
                    _ => Err(e.into_storage(self.ctx(Operation::Store, Some(id), "update"))),
                }
            }
        }
    }

    /// Waits until `dying` (an object being deleted) is gone or replaced by another
    /// object, polling its metadata; gives up with a retryable `Unavailable` before the
    /// operation's deadline would pass, or after [`MAX_DELETION_WAIT`] without one.
    async fn wait_until_gone(
        &self,
        id: &CredentialId,
        name: &str,
        dying: &ObjectMeta,
        waited: &mut Duration,
    ) -> Result<(), StorageError> {
        let mut round = 0;
        loop {
            let pause = DELETION_POLL.wait(round);
            round += 1;
            // Leave as long as the pause for the look after it, so this error, which names
            // the finalizers, comes before the `Timeout` layer's.
            if !ends_before_deadline(pause * 2) || *waited + pause > MAX_DELETION_WAIT {
                let held = BeingDeleted {
                    location: self.location(name),
                    finalizers: dying.finalizers.clone().unwrap_or_default(),
                };
                tracing::warn!(
                    provider = PROVIDER,
                    credential_id = id.as_str(),
                    waited_ms = waited.as_millis() as u64,
                    "{held}"
                );
                return Err(StorageError::unavailable(PROVIDER, Operation::Store, Some(id)).with_source(held));
            }
            tokio::time::sleep(pause).await;
            *waited += pause;
            let now = self
                .api
                .get_metadata_opt(name)
                .await
                .map_err(|e| KubeError::from(e).into_storage(self.ctx(Operation::Store, Some(id), "get")))?;
            match now {
                Some(m) if m.metadata.uid == dying.uid => {}
                _ => return Ok(()),
            }
        }
    }

    /// The error of a store over a Secret marked `immutable: true`.
    fn immutable(&self, id: &CredentialId, name: &str) -> StorageError {
        StorageError::backend(
            PROVIDER,
            Operation::Store,
            Some(id),
            format!(
                "{} is marked `immutable: true` (not by nebula-credential), so Kubernetes refuses any change to \
                 its data and the mark cannot be removed; delete the credential (or `kubectl delete secret -n {} \
                 {name}`) and store it again",
                self.location(name),
                self.namespace
            ),
        )
    }

    async fn store_record(
        &self,
        id: &CredentialId,
        name: &str,
        metadata: &CredentialMetadata,
        record: &[u8],
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let fresh = self.object(id, name, metadata, record, None)?;
        let mut waited = Duration::ZERO;
        if let Precondition::Absent = precondition {
            loop {
                if let Ok(revision) = self.create(id, &fresh).await? {
                    return Ok(revision);
                }
                return match self.get(id, name, Operation::Store).await? {
                    // Absent for our purpose, but its name is taken until it goes.
                    Some(c) if is_dying(&c.metadata) => {
                        self.wait_until_gone(id, name, &c.metadata, &mut waited).await?;
                        continue;
                    }
                    Some(c) => {
                        self.ensure_ours_secret(id, name, &c)?;
                        Self::same_write(&c, record).ok_or_else(|| precondition.conflict(PROVIDER, id))
                    }
                    // Created and deleted again meanwhile: it existed when we asked.
                    None => Err(precondition.conflict(PROVIDER, id)),
                };
            }
        }
        for round in 0..MAX_ROUNDS {
            if round > 0 {
                back_off(round).await;
            }
            let current = match self.get(id, name, Operation::Store).await? {
                Some(c) if is_dying(&c.metadata) => {
                    // A write into it would be acknowledged, then vanish with it.
                    if let Precondition::Revision(_) = precondition {
                        return Err(precondition.conflict(PROVIDER, id));
                    }
                    self.wait_until_gone(id, name, &c.metadata, &mut waited).await?;
                    continue;
                }
                other => other,
            };
            let Some(current) = current else {
                if let Precondition::Revision(_) = precondition {
                    return Err(precondition.conflict(PROVIDER, id));
                }
                match self.create(id, &fresh).await? {
                    Ok(revision) => return Ok(revision),
                    Err(_) => continue,
                }
            };
            self.ensure_ours_secret(id, name, &current)?;
            if current.immutable == Some(true) {
                return Err(self.immutable(id, name));
            }
            let mut next = self.object(id, name, metadata, record, Some(&current))?;
            if let Precondition::Revision(expected) = precondition {
                if current.metadata.resource_version.as_deref() != Some(expected.as_str()) {
                    return Self::same_write(&current, record).ok_or_else(|| precondition.conflict(PROVIDER, id));
                }
                next.metadata.resource_version = Some(expected.as_str().to_string());
                return match self.replace(id, name, &next).await? {
                    Ok(revision) => Ok(revision),
                    Err(_) => Err(precondition.conflict(PROVIDER, id)),
                };
            }
            if let Ok(revision) = self.replace(id, name, &next).await? {
                return Ok(revision);
            }
        }
        Err(StorageError::conflict(
            PROVIDER,
            id,
            format!("the Secret kept changing under {MAX_ROUNDS} concurrent writes; retry the store"),
        ))
    }

    /// A server-side dry-run create of a Secret like ours (nothing is written): proves the
    /// namespace exists and `create` is allowed. `Ok` also for `AlreadyExists`, which the
    /// API server answers only after both checks.
    async fn dry_run_create(&self) -> Result<(), KubeError> {
        let (labels, _) = to_labels(&SCHEME.desired(&CredentialMetadata::new(), &self.defaults));
        let probe = Secret {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}check-", self.config.secret_prefix)),
                labels: Some(labels),
                annotations: Some(self.config.default_annotations.clone()),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.into()),
            ..Secret::default()
        };
        let params = PostParams {
            dry_run: true,
            field_manager: None,
        };
        match self.api.create(&params, &probe).await.map_err(KubeError::from) {
            Ok(_) => Ok(()),
            Err(e) if e.kind == Kind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Proves that the namespace exists with [`dry_run_create`](Self::dry_run_create),
    /// and remembers it. An identity without `create` (a read-only one) cannot prove it:
    /// that is logged and `Ok`. A missing namespace, and any other failure, is the error.
    async fn probe_namespace(&self) -> Result<(), KubeError> {
        match self.dry_run_create().await {
            Ok(()) => {}
            Err(e) if e.kind == Kind::Denied => {
                tracing::debug!(
                    provider = PROVIDER,
                    namespace = self.namespace.as_str(),
                    "without `create` on secrets the namespace cannot be proven to exist: a missing one reads as empty"
                );
            }
            Err(e) => return Err(e),
        }
        self.namespace_known.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn list_params(&self, selector: &str, continue_token: Option<String>, limit: u32) -> ListParams {
        ListParams {
            label_selector: Some(selector.to_string()),
            field_selector: Some(format!("type={SECRET_TYPE}")),
            limit: Some(limit),
            continue_token,
            ..ListParams::default()
        }
    }
}

#[async_trait]
impl StorageProvider for KubernetesSecretsProvider {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(MAX_OBJECT_BYTES)
            .with_conditional_store()
            .with_server_side_tag_filter()
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let name = self.secret_name(id);
        // The limit applies to the whole object, checked (and reported) when it is built.
        let record = RecordEnvelope::encode(id, data, metadata, PROVIDER, usize::MAX)?;
        let revision = self.store_record(id, &name, metadata, &record, precondition).await?;
        self.namespace_known.store(true, Ordering::Relaxed);
        Ok(revision)
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let name = self.secret_name(id);
        let secret = self.get(id, &name, Operation::Retrieve).await?;
        let Some(secret) = secret.filter(|s| !is_dying(&s.metadata)) else {
            return Err(StorageError::not_found(PROVIDER, id));
        };
        self.ensure_ours_secret(id, &name, &secret)?;
        let location = self.location(&name);
        let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(RECORD_KEY)) else {
            return Err(StorageError::corrupted(
                PROVIDER,
                Some(id),
                location,
                format!("the Secret has no data key `{RECORD_KEY}`"),
            ));
        };
        let record = RecordEnvelope::from_json(&bytes.0, PROVIDER, &location, Some(id))?;
        Ok(Stored {
            data: record.encrypted_data,
            metadata: record.metadata,
            revision: Self::revision(&secret),
        })
    }

    /// One metadata-only GET (`PartialObjectMetadata`: labels, annotations and
    /// `resourceVersion`, never the data): the `resourceVersion` `retrieve` reports.
    /// `NotFound` for no Secret or one being deleted; `Conflict` for one without our
    /// managed-by label or id annotation. The Secret's `type` is not in the metadata view:
    /// a Secret of another type that carries our label and annotation (a copy, a forgery)
    /// passes here, and `retrieve` refuses it; a type never changes, and a Secret put in
    /// place of ours has another `resourceVersion`, so a cache revalidating with
    /// `revision` reads it anew and meets that refusal.
    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        let name = self.secret_name(id);
        let meta = self
            .api
            .get_metadata_opt(&name)
            .await
            .map_err(|e| KubeError::from(e).into_storage(self.ctx(Operation::Revision, Some(id), "get")))?;
        match meta {
            Some(m) if !is_dying(&m.metadata) => {
                self.ensure_ours(id, &name, &m.metadata)?;
                Ok(Revision::new(
                    m.metadata.resource_version.as_deref().unwrap_or_default(),
                ))
            }
            _ => Err(StorageError::not_found(PROVIDER, id)),
        }
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        let name = self.secret_name(id);
        for round in 0..MAX_ROUNDS {
            if round > 0 {
                back_off(round).await;
            }
            // The whole object: its type is not in the metadata-only view.
            let Some(meta) = self.get(id, &name, Operation::Delete).await? else {
                return Ok(());
            };
            if is_dying(&meta.metadata) {
                // Already being deleted (finalizers of other tools hold it): its data is going.
                return Ok(());
            }
            self.ensure_ours_secret(id, &name, &meta)?;
            // Delete exactly the object checked: if it was replaced meanwhile, look again.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: meta.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(&name, &params).await.map_err(KubeError::from) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind == Kind::NotFound => return Ok(()),
                Err(e) if e.kind == Kind::Conflict => continue,
                Err(e) => return Err(e.into_storage(self.ctx(Operation::Delete, Some(id), "delete"))),
            }
        }
        Err(StorageError::conflict(
            PROVIDER,
            id,
            "the Secret was replaced again and again while being deleted; retry the delete",
        ))
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let selector = self.label_selector(filter);
        let prefix = self.config.secret_prefix.as_str();
        let mut continue_token = None;
        let mut ids = Vec::new();
        let mut listed = 0;
        let mut restarted = false;
        loop {
            let params = self.list_params(&selector, continue_token.take(), self.config.list_page_size);
            let paging = params.continue_token.is_some();
            let page = match self.api.list_metadata(&params).await.map_err(KubeError::from) {
                Ok(page) => page,
                // The continue token expired (etcd compacted its revision): list again from
                // the start, once; a second expiry is reported as retryable.
                Err(e) if e.kind == Kind::Gone && paging && !restarted => {
                    tracing::debug!(
                        provider = PROVIDER,
                        namespace = self.namespace.as_str(),
                        "the list continuation expired; listing again from the first page"
                    );
                    restarted = true;
                    ids.clear();
                    listed = 0;
                    continue;
                }
                Err(e) => return Err(e.into_storage(self.ctx(Operation::List, None, "list"))),
            };
            listed += page.items.len();
            let no_labels = BTreeMap::new();
            for item in &page.items {
                let m = &item.metadata;
                if is_dying(m) {
                    continue;
                }
                let Some(id) = m.name.as_deref().and_then(|n| naming::credential_id(prefix, n)) else {
                    continue;
                };
                let held = m.annotations.as_ref().and_then(|a| a.get(ID_ANNOTATION));
                let labels = m.labels.as_ref().unwrap_or(&no_labels);
                if held.map(String::as_str) == Some(id.as_str())
                    && SCHEME.matches(filter, &id, &from_labels(labels, None))
                {
                    ids.push(id);
                }
            }
            continue_token = page.metadata.continue_.filter(|t| !t.is_empty());
            if continue_token.is_none() {
                break;
            }
        }
        // A namespace that does not exist lists as empty: say so, probing once per provider.
        if listed == 0 && !self.namespace_known.load(Ordering::Relaxed) {
            match self.probe_namespace().await {
                Err(e) if e.kind == Kind::NamespaceMissing => {
                    return Err(e.into_storage(self.ctx(Operation::List, None, "create")));
                }
                // The list itself succeeded; a failed probe leaves it as it is.
                _ => {}
            }
        } else {
            self.namespace_known.store(true, Ordering::Relaxed);
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        let name = self.secret_name(id);
        let meta = self
            .api
            .get_metadata_opt(&name)
            .await
            .map_err(|e| KubeError::from(e).into_storage(self.ctx(Operation::Exists, Some(id), "get")))?;
        match meta {
            None => Ok(false),
            Some(m) if is_dying(&m.metadata) => Ok(false),
            Some(m) => self.ensure_ours(id, &name, &m.metadata).map(|()| true),
        }
    }

    /// A server-side dry-run create of a Secret (nothing is written), then a metadata
    /// list of at most one item: proves the server, the credentials, the `list`
    /// permission on `secrets`, and that the namespace exists (a namespaced list answers
    /// 200 in a missing namespace too). An identity without `create` passes on `list`
    /// alone: it cannot prove the namespace, and a missing one reads as empty.
    async fn check(&self) -> Result<(), StorageError> {
        self.probe_namespace()
            .await
            .map_err(|e| e.into_storage(self.ctx(Operation::Check, None, "create")))?;
        self.api
            .list_metadata(&self.list_params(&self.label_selector(&CredentialFilter::new()), None, 1))
            .await
            .map(drop)
            .map_err(|e| KubeError::from(e).into_storage(self.ctx(Operation::Check, None, "list")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_names_labels_annotations_and_decoded_data() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("abc".into()),
                labels: Some(BTreeMap::from([("k".into(), "vv".into())])),
                annotations: Some(BTreeMap::from([("a".into(), "bbbb".into())])),
                ..ObjectMeta::default()
            },
            type_: Some("t".into()),
            data: Some(BTreeMap::from([("d".into(), ByteString(vec![0; 10]))])),
            ..Secret::default()
        };
        assert_eq!(object_size(&secret), 3 + 1 + 3 + 5 + 11);
    }
}
