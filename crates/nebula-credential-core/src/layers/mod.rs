//! Cross-cutting behaviour written once, as decorators over any [`StorageProvider`].
//!
//! A [`Layer`] wraps every call of an inner provider; [`Layered`] turns a layer and a
//! provider into a provider again, forwarding each trait method explicitly. The layers:
//! [`Retry`], [`Timeout`], [`Metered`] and [`Traced`]. [`standard`] assembles the usual
//! stack, outermost first: `Traced → Metered → Retry → Timeout → provider`, so each retry
//! attempt gets its own deadline and metrics count one call per request.

mod metered;
mod retry;
mod timeout;
mod traced;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

pub use metered::{Metered, MeteredLayer};
pub use retry::{Retry, RetryLayer};
pub use timeout::{Timeout, TimeoutLayer, deadline};
pub use traced::{Traced, TracedLayer};

use crate::config::{ConfigError, Timeouts};
use crate::data::EncryptedData;
use crate::error::StorageError;
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::metadata::CredentialMetadata;
use crate::metrics::StorageMetrics;
use crate::operation::Operation;
use crate::provider::{Capabilities, Precondition, Revision, StorageProvider, Stored};
use crate::retry::RetryPolicy;

/// A boxed, sendable future, as returned by [`StorageProvider`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Calls the inner provider once; a layer may call it several times (retry).
pub type Next<'a, T> = Box<dyn FnMut() -> BoxFuture<'a, Result<T, StorageError>> + Send + 'a>;

/// What a layer knows about the call it wraps. Never the value.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The inner provider's name.
    pub provider: &'static str,
    /// The operation called.
    pub operation: Operation,
    /// The credential concerned (`None` for `list`).
    pub id: Option<&'a CredentialId>,
}

/// Behaviour around every call of an inner provider.
pub trait Layer: Send + Sync + Debug {
    /// Runs `next` (the inner call) once or more and returns its result, possibly changed.
    fn call<'a, T: Send + 'a>(&'a self, call: Call<'a>, next: Next<'a, T>) -> BoxFuture<'a, Result<T, StorageError>>;
}

/// A provider wrapped by a layer; itself a [`StorageProvider`].
#[derive(Debug, Clone)]
pub struct Layered<L, P> {
    layer: L,
    inner: P,
}

impl<L: Layer, P: StorageProvider> Layered<L, P> {
    /// Wraps `inner` with `layer`.
    pub fn wrap(layer: L, inner: P) -> Self {
        Layered { layer, inner }
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The layer.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// Runs one operation through the layer. Errors leave naming the credential, so
    /// backends need not repeat the id in every error they build.
    async fn run<'a, T: Send + 'a>(
        &'a self,
        operation: Operation,
        id: Option<&'a CredentialId>,
        next: impl FnMut() -> BoxFuture<'a, Result<T, StorageError>> + Send + 'a,
    ) -> Result<T, StorageError> {
        let call = Call {
            provider: self.inner.provider_name(),
            operation,
            id,
        };
        self.layer
            .call(call, Box::new(next))
            .await
            .map_err(|e| e.with_id_if_missing(id))
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<L: Layer, P: StorageProvider> StorageProvider for Layered<L, P> {
    fn provider_name(&self) -> &'static str {
        self.inner.provider_name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let inner = &self.inner;
        self.run(Operation::Store, Some(id), move || {
            inner.store_if(id, data, metadata, precondition)
        })
        .await
    }

    async fn store(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
    ) -> Result<Revision, StorageError> {
        let inner = &self.inner;
        self.run(Operation::Store, Some(id), move || inner.store(id, data, metadata))
            .await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        let inner = &self.inner;
        self.run(Operation::Retrieve, Some(id), move || inner.retrieve(id))
            .await
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        let inner = &self.inner;
        self.run(Operation::Delete, Some(id), move || inner.delete(id)).await
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        let inner = &self.inner;
        self.run(Operation::List, None, move || inner.list(filter)).await
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        let inner = &self.inner;
        self.run(Operation::Exists, Some(id), move || inner.exists(id)).await
    }

    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        let inner = &self.inner;
        self.run(Operation::Revision, Some(id), move || inner.revision(id))
            .await
    }

    async fn check(&self) -> Result<(), StorageError> {
        let inner = &self.inner;
        self.run(Operation::Check, None, move || inner.check()).await
    }
}

/// The standard stack over `provider`: tracing, metrics, retry, per-attempt timeouts.
/// Fails when `retry` or `timeouts` break their rules.
///
/// ```
/// use std::sync::Arc;
/// use nebula_credential_core::{layers, MemoryProvider, RetryPolicy, StorageMetrics, StorageProvider, Timeouts};
/// let metrics = Arc::new(StorageMetrics::new());
/// let stack = layers::standard(MemoryProvider::new(), RetryPolicy::default(), Timeouts::default(), metrics)?;
/// assert_eq!(stack.provider_name(), "memory");
/// # Ok::<(), nebula_credential_core::ConfigError>(())
/// ```
pub fn standard<P: StorageProvider>(
    provider: P,
    retry: RetryPolicy,
    timeouts: Timeouts,
    metrics: Arc<StorageMetrics>,
) -> Result<Traced<Metered<Retry<Timeout<P>>>>, ConfigError> {
    timeouts.validate(provider.provider_name())?;
    let timed = Timeout::new(provider, timeouts);
    let retried = Retry::new(timed, retry)?.with_metrics(metrics.clone());
    Ok(Traced::new(Metered::new(retried, metrics)))
}
