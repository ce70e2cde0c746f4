//! [`KubernetesSecretsProvider`]: one Secret per credential.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use nebula_credential_core::{
    Capabilities, ConfigError, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Operation,
    Precondition, ProviderConfig, Revision, StorageError, StorageProvider, Stored, StoredRecord, Tags, async_trait,
};

use nebula_credential_core::remote::back_off;

use crate::PROVIDER;
use crate::config::KubernetesSecretsConfig;
use crate::errors::{Context, Kind, KubeError};
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

/// Stores each credential as one Kubernetes Secret of type [`SECRET_TYPE`] in one
/// namespace, named by [`secret_name`](Self::secret_name), whose data key [`RECORD_KEY`]
/// holds the JSON [`StoredRecord`] (see the crate docs).
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
            KubeError::from(e).into_storage(Context {
                operation: Operation::Check,
                id: None,
                verb: "connect",
                namespace: &namespace,
            })
        })?;
        Self::with_client(client, &namespace, config)
    }

    /// The kube client configuration `config` selects (kubeconfig file and context, or
    /// inferred), with kube's own retries turned off.
    pub async fn client_config(config: &KubernetesSecretsConfig) -> Result<Config, StorageError> {
        let options = KubeConfigOptions {
            context: config.context.clone(),
            ..KubeConfigOptions::default()
        };
        let context_field = if config.context.is_some() {
            "context"
        } else {
            "kubeconfig_path"
        };
        let mut kube_config = match (&config.kubeconfig_path, &config.context) {
            (Some(path), _) => {
                let path = path.clone();
                let shown = path.display().to_string();
                let kubeconfig = tokio::task::spawn_blocking(move || Kubeconfig::read_from(path))
                    .await
                    .map_err(|e| config_error("kubeconfig_path", format!("could not be read ({e})")))?
                    .map_err(|e| config_error("kubeconfig_path", format!("{shown:?} cannot be used: {e}")))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| config_error(context_field, format!("cannot be used with {shown:?}: {e}")))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(|e| {
                config_error(
                    "context",
                    format!("cannot be used with KUBECONFIG or ~/.kube/config: {e}"),
                )
            })?,
            (None, None) => Config::infer().await.map_err(|e| {
                config_error(
                    "kubeconfig_path",
                    format!("is not set and no configuration was found ({e}); set it, KUBECONFIG, or run in a pod"),
                )
            })?,
        };
        kube_config.default_retry = false;
        Ok(kube_config)
    }

    /// A provider over a client you built, in `namespace`. The client is used as it is:
    /// build it from a `Config` with `default_retry = false` so the `Retry` layer alone
    /// decides.
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
        if held.map(String::as_str) != Some(id.as_str()) {
            return Err(StorageError::conflict(
                PROVIDER,
                id,
                format!(
                    "{} is managed by nebula-credential but holds credential {held:?} (another secret_prefix?); \
                     use distinct prefixes that are not prefixes of one another, or another namespace",
                    self.location(name)
                ),
            ));
        }
        Ok(())
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

    async fn store_record(
        &self,
        id: &CredentialId,
        name: &str,
        metadata: &CredentialMetadata,
        record: &[u8],
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let fresh = self.object(id, name, metadata, record, None)?;
        if let Precondition::Absent = precondition {
            if let Ok(revision) = self.create(id, &fresh).await? {
                return Ok(revision);
            }
            let current = self.get(id, name, Operation::Store).await?;
            return match current {
                Some(c) => {
                    self.ensure_ours_secret(id, name, &c)?;
                    Self::same_write(&c, record).ok_or_else(|| precondition.conflict(PROVIDER, id))
                }
                // Created and deleted again meanwhile: it existed when we asked.
                None => Err(precondition.conflict(PROVIDER, id)),
            };
        }
        for round in 0..MAX_ROUNDS {
            if round > 0 {
                back_off(round).await;
            }
            let Some(current) = self.get(id, name, Operation::Store).await? else {
                if let Precondition::Revision(_) = precondition {
                    return Err(precondition.conflict(PROVIDER, id));
                }
                match self.create(id, &fresh).await? {
                    Ok(revision) => return Ok(revision),
                    Err(_) => continue,
                }
            };
            self.ensure_ours_secret(id, name, &current)?;
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
        let record = StoredRecord::encode(id, data, metadata, PROVIDER, MAX_OBJECT_BYTES)?;
        self.store_record(id, &name, metadata, &record, precondition).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let name = self.secret_name(id);
        let Some(secret) = self.get(id, &name, Operation::Retrieve).await? else {
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
        let record = StoredRecord::from_json(&bytes.0, PROVIDER, &location, Some(id))?;
        Ok(Stored {
            data: record.encrypted_data,
            metadata: record.metadata,
            revision: Self::revision(&secret),
        })
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
        loop {
            let page = self
                .api
                .list_metadata(&self.list_params(&selector, continue_token, self.config.list_page_size))
                .await
                .map_err(|e| KubeError::from(e).into_storage(self.ctx(Operation::List, None, "list")))?;
            let no_labels = BTreeMap::new();
            for item in &page.items {
                let m = &item.metadata;
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
            Some(m) => self.ensure_ours(id, &name, &m.metadata).map(|()| true),
        }
    }

    /// One metadata list of at most one item: proves the server, the credentials and the
    /// `list` permission on `secrets` in the namespace.
    async fn check(&self) -> Result<(), StorageError> {
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
