//! [`Cached`]: a read cache over any [`StorageProvider`], with stale-while-revalidate,
//! single flight, cheap revalidation by [`revision`](StorageProvider::revision), and the
//! [`CredentialWatch`] of [`CredentialStore::watch`](crate::CredentialStore::watch).
//!
//! # What is cached
//! What [`retrieve`](StorageProvider::retrieve) returns: ciphertext, metadata and
//! revision. Never plaintext: [`CredentialStore`](crate::CredentialStore) decrypts on every
//! read, from the entry itself (a hit clones no record out of the cache: the ciphertext
//! is copied once, into the value it returns, and decrypted there once its tag is
//! verified). Entries are zeroized when dropped (by the cache and by the last read still
//! holding one), and at most
//! [`max_entries`](CacheConfig::max_entries) are held (least recently used go first).
//!
//! # Two ages
//! - younger than [`fresh_ms`](CacheConfig::fresh_ms): served as is, no backend call;
//! - between `fresh_ms` and [`max_stale_ms`](CacheConfig::max_stale_ms): served at once,
//!   and **one** background revalidation starts (however many readers see it stale). It
//!   asks the backend for the [`Revision`] only: unchanged → the entry is fresh again and
//!   no value is fetched; changed → the value is fetched;
//! - older than `max_stale_ms`: never served; the read waits for the backend.
//!
//! # Single flight
//! N concurrent reads of an id that is not cached make one backend call; all N get its
//! answer (errors included). Reads that arrive while a revalidation runs join it.
//!
//! # Errors: what is never served stale
//! A stale entry keeps being served (until `max_stale_ms`) only while the backend is
//! [`Unavailable`](crate::ErrorKind::Unavailable), [`Throttled`](crate::ErrorKind::Throttled)
//! or [`Timeout`](crate::ErrorKind::Timeout). `PermissionDenied` and
//! `AuthenticationFailed` drop the entry (access was revoked), `NotFound` drops it (the
//! credential is gone), and so does any other error. `NotFound` answers are remembered
//! for [`not_found_ms`](CacheConfig::not_found_ms) (default 0: not at all).
//!
//! # Own writes
//! `store`, `store_if` and `delete` through the cache update or drop the entry, so a
//! process always reads its own writes. A read that started before a write and finishes
//! after it never overwrites the written entry (each write takes an epoch; a fill keeps
//! its answer only if no write of that id started since it began).
//!
//! # Refresh after a rejected credential
//! When the service a credential protects rejects it (rotated elsewhere), call
//! [`CredentialStore::refresh`](crate::CredentialStore::refresh) with the revision you
//! were served: it refetches unless the cache already moved past that revision (it
//! replaced it, or an earlier refresh reported it), so 100 callers reporting the same
//! stale credential cause one fetch, and all get the new revision. A revision the cache
//! never held (read elsewhere, or through a watch) may be newer than the cached one: it
//! is refetched.
//!
//! # Watch
//! [`CredentialStore::watch`](crate::CredentialStore::watch) polls through the cache every
//! [`poll_ms`](CacheConfig::poll_ms), one poller per id. A failed poll never ends a watch:
//! [`CredentialWatch::health`] and [`CredentialWatch::next_event`] say when polls fail
//! (error kind, since when, how many in a row) and when they answer again; see
//! [`CredentialWatch`].
//!
//! # Background work
//! Revalidations run as tokio tasks (so call the cache inside a tokio runtime); they are
//! aborted when the last handle of the cache is dropped, and each backend call in them
//! keeps the deadlines of the stack below (the [`Timeout`](crate::layers::Timeout) and
//! [`Retry`](crate::layers::Retry) layers).

mod config;
mod shared_error;
mod slot;
mod watch;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use moka::ops::compute::Op;
use tokio::sync::watch as channel;
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub use config::CacheConfig;
pub(crate) use watch::Watchers;
pub use watch::{Change, CredentialWatch, PollFailure, WatchEvent, WatchHealth};

/// The pollers' source of state, for [`CredentialStore`](crate::CredentialStore).
pub(crate) mod watch_source {
    pub(crate) use super::watch::Source;
}

use crate::data::EncryptedData;
use crate::error::{ErrorKind, StorageError};
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::metadata::CredentialMetadata;
use crate::metrics::{CacheEvent, StorageMetrics};
use crate::operation::Operation;
use crate::provider::{Capabilities, Precondition, Revision, StorageProvider, Stored};
use shared_error::replica;
use slot::Slot;

/// The answer of one backend call, shared by every caller that waited on it.
type Outcome = Result<Arc<Slot>, Arc<StorageError>>;

/// What a flight does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlightKind {
    /// `retrieve` the record.
    Fetch,
    /// Ask the `revision`; fetch the record only when it changed.
    Revalidate,
}

/// One backend call in progress for an id.
#[derive(Debug)]
struct Flight {
    number: u64,
    /// When it started.
    started: Instant,
    kind: FlightKind,
    done: channel::Receiver<Option<Outcome>>,
    task: AbortHandle,
}

/// What is in progress for one id: writes (with the epoch of the latest) and a flight.
#[derive(Debug, Default)]
struct IdState {
    writes: u32,
    last_write: u64,
    /// Two writes of the id ran at once since it was last idle: the order they landed
    /// in is unknown, so none of them may fill the entry.
    overlapped: bool,
    flight: Option<Flight>,
}

impl IdState {
    /// Whether a read that started at `start_epoch` may still fill the entry.
    fn fill_allowed(&self, start_epoch: u64) -> bool {
        self.writes == 0 && self.last_write <= start_epoch
    }

    /// Whether the write of `epoch` may still fill the entry: it is the latest, and no
    /// other write of the id ran beside it.
    fn write_allowed(&self, epoch: u64) -> bool {
        self.last_write == epoch && !self.overlapped
    }
}

type Control = Mutex<HashMap<CredentialId, IdState>>;

fn lock(control: &Control) -> MutexGuard<'_, HashMap<CredentialId, IdState>> {
    control.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Forgets an id's state once nothing is in progress for it.
fn tidy(map: &mut HashMap<CredentialId, IdState>, id: &CredentialId) {
    if map.get(id).is_some_and(|st| st.writes == 0 && st.flight.is_none()) {
        map.remove(id);
    }
}

/// Where a flight's outcome goes; ends a flight whose backend call panicked (a provider
/// bug): forgets it, so the next read of the id starts another instead of joining a dead
/// one for ever, and gives its waiters an error saying so.
struct Landing {
    control: Arc<Control>,
    id: CredentialId,
    number: u64,
    done: channel::Sender<Option<Outcome>>,
    provider: &'static str,
    kind: FlightKind,
}

impl Drop for Landing {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        {
            let mut map = lock(&self.control);
            if let Some(st) = map.get_mut(&self.id)
                && st.flight.as_ref().is_some_and(|f| f.number == self.number)
            {
                st.flight = None;
            }
            tidy(&mut map, &self.id);
        }
        let operation = match self.kind {
            FlightKind::Fetch => Operation::Retrieve,
            FlightKind::Revalidate => Operation::Revision,
        };
        let error = StorageError::backend(
            self.provider,
            operation,
            Some(&self.id),
            "the provider panicked during this read (a bug: see the panic message); read again, and report it to the provider's maintainers",
        );
        self.done.send_replace(Some(Err(Arc::new(error))));
    }
}

/// Aborts the background tasks when the last handle of the cache goes.
#[derive(Debug)]
struct Guard {
    control: Arc<Control>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for state in lock(&self.control).values() {
            if let Some(flight) = &state.flight {
                flight.task.abort();
            }
        }
    }
}

/// A cache in front of a provider: see the [module docs](self) for what it does.
///
/// Clones share the same entries. Built by `nebula_credential::open` when the
/// configuration has a `[cache]` table, or by hand:
///
/// ```
/// use std::sync::Arc;
/// use nebula_credential_core::cache::{CacheConfig, Cached};
/// use nebula_credential_core::{CredentialStore, EncryptionKey, Keyring, MemoryProvider, Tags};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let cached = Cached::new(MemoryProvider::new(), CacheConfig::default())?;
/// let store = CredentialStore::with_cache(cached, Keyring::new(EncryptionKey::generate()));
/// let id = "db_password".parse()?;
/// store.put(&id, b"s3cret", Tags::new()).await?;
/// let (_secret, _metadata, seen) = store.get_with_revision(&id).await?;
/// // ... the database rejected the password: someone rotated it.
/// let now = store.refresh(&id, Some(&seen)).await?;
/// assert_eq!(now, seen); // nobody did, in this example
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Cached<P> {
    shared: Arc<Shared<P>>,
    _guard: Arc<Guard>,
}

impl<P> Clone for Cached<P> {
    fn clone(&self) -> Self {
        Cached {
            shared: self.shared.clone(),
            _guard: self._guard.clone(),
        }
    }
}

struct Shared<P> {
    inner: P,
    config: CacheConfig,
    entries: moka::future::Cache<CredentialId, Arc<Slot>>,
    control: Arc<Control>,
    /// Write epochs: each write takes the next; a flight remembers the value at its start.
    epoch: AtomicU64,
    flights: AtomicU64,
    metrics: Arc<StorageMetrics>,
    provider: &'static str,
}

impl<P: StorageProvider + 'static> Cached<P> {
    /// A cache over `inner`, counting its events in fresh [`StorageMetrics`]. Fails when
    /// `config` breaks a rule (the error names the field).
    pub fn new(inner: P, config: CacheConfig) -> Result<Self, crate::ConfigError> {
        Self::with_metrics(inner, config, Arc::new(StorageMetrics::new()))
    }

    /// A cache over `inner`, counting its events ([`CacheStats`](crate::CacheStats)) in `metrics`.
    pub fn with_metrics(
        inner: P,
        config: CacheConfig,
        metrics: Arc<StorageMetrics>,
    ) -> Result<Self, crate::ConfigError> {
        config.validate()?;
        let provider = inner.provider_name();
        let evictions = metrics.clone();
        let entries = moka::future::Cache::builder()
            .max_capacity(config.max_entries)
            // LRU admits every entry: an own write must never be refused by admission.
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .eviction_listener(move |_id, _slot, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evictions.record_cache(CacheEvent::Eviction);
                    emit(provider, CacheEvent::Eviction);
                }
            })
            .build();
        let control = Arc::new(Control::default());
        Ok(Cached {
            shared: Arc::new(Shared {
                inner,
                config,
                entries,
                control: control.clone(),
                epoch: AtomicU64::new(0),
                flights: AtomicU64::new(0),
                metrics,
                provider,
            }),
            _guard: Arc::new(Guard { control }),
        })
    }

    /// The provider underneath.
    pub fn inner(&self) -> &P {
        &self.shared.inner
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }

    /// The counters the cache records into.
    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.shared.metrics
    }

    /// Credentials held now (after pending evictions are applied).
    pub async fn entry_count(&self) -> u64 {
        self.shared.entries.run_pending_tasks().await;
        self.shared.entries.entry_count()
    }

    /// Forgets every entry (the next reads ask the backend).
    pub fn clear(&self) {
        self.shared.entries.invalidate_all();
    }

    /// The record of `id` as [`retrieve`](StorageProvider::retrieve) answers it (same
    /// hit, stale and miss rules), shared with the entry instead of copied.
    async fn read(&self, id: &CredentialId) -> Result<CachedRecord, StorageError> {
        let slot = self.shared.retrieve(id).await?;
        CachedRecord::new(slot).ok_or_else(|| StorageError::not_found(self.shared.provider, id))
    }

    /// Refetches `id` if the cache still holds `seen` (or always, when `seen` is `None`)
    /// and returns the revision now held. Concurrent callers with the same `seen` share
    /// one fetch. See [`CredentialStore::refresh`](crate::CredentialStore::refresh).
    pub async fn refresh(&self, id: &CredentialId, seen: Option<&Revision>) -> Result<Revision, StorageError> {
        Shared::refresh(&self.shared, id, seen).await
    }
}

impl<P: StorageProvider + 'static> Shared<P> {
    fn event(&self, event: CacheEvent) {
        self.metrics.record_cache(event);
        emit(self.provider, event);
    }

    fn age(&self, slot: &Slot) -> Duration {
        Instant::now().saturating_duration_since(slot.at())
    }

    /// A present entry still within `max_stale_ms`, with whether it is fresh.
    async fn usable(&self, id: &CredentialId) -> Option<(Arc<Slot>, bool)> {
        let slot = self.entries.get(id).await?;
        let age = self.age(&slot);
        match &*slot {
            Slot::Present { .. } if age < self.config.max_stale() => Some((slot, age < self.config.fresh())),
            _ => None,
        }
    }

    /// Starts a flight for `id` (the caller holds the control lock and checked none runs).
    fn start_flight(
        self: &Arc<Self>,
        map: &mut HashMap<CredentialId, IdState>,
        id: &CredentialId,
        kind: FlightKind,
        known: Option<Arc<Slot>>,
    ) -> channel::Receiver<Option<Outcome>> {
        let (tx, rx) = channel::channel(None);
        let start_epoch = self.epoch.load(Ordering::SeqCst);
        let number = self.flights.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let flight_id = id.clone();
        let landing = Landing {
            control: self.control.clone(),
            id: id.clone(),
            number,
            done: tx,
            provider: self.provider,
            kind,
        };
        let task = tokio::spawn(async move {
            let outcome = this.fly(&flight_id, kind, known, start_epoch, number).await;
            landing.done.send_replace(Some(outcome));
        });
        map.entry(id.clone()).or_default().flight = Some(Flight {
            number,
            started: Instant::now(),
            kind,
            done: rx.clone(),
            task: task.abort_handle(),
        });
        rx
    }

    /// The body of a flight: one backend read, then the entry updated if no write of
    /// `id` started since `start_epoch`.
    async fn fly(
        &self,
        id: &CredentialId,
        kind: FlightKind,
        known: Option<Arc<Slot>>,
        start_epoch: u64,
        number: u64,
    ) -> Outcome {
        let known_stored = known.as_deref().and_then(Slot::stored);
        let result = match (kind, known_stored) {
            (FlightKind::Revalidate, Some(old)) => match self.inner.revision(id).await {
                Ok(revision) if revision == old.revision => {
                    self.event(CacheEvent::RevalidationUnchanged);
                    Ok(old.clone())
                }
                Ok(_) => {
                    self.event(CacheEvent::RevalidationChanged);
                    self.inner.retrieve(id).await
                }
                Err(e) => {
                    if e.is_not_found() {
                        self.event(CacheEvent::RevalidationChanged);
                    }
                    Err(e)
                }
            },
            _ => self.inner.retrieve(id).await,
        };
        // What the entry held before (its revisions are superseded by a changed answer).
        let previous = match (&result, known) {
            (Ok(_), Some(known)) => Some(known),
            (Ok(_), None) => self.entries.get(id).await,
            (Err(_), _) => None,
        };
        let install = {
            let map = lock(&self.control);
            map.get(id).is_none_or(|st| st.fill_allowed(start_epoch))
        };
        let still = |this: &Self| {
            lock(&this.control)
                .get(id)
                .is_none_or(|st| st.fill_allowed(start_epoch))
        };
        let outcome = match result {
            Ok(stored) => {
                let slot = Arc::new(Slot::present(stored, Instant::now(), start_epoch, previous.as_deref()));
                if install {
                    self.install(id, slot.clone(), still).await;
                }
                Ok(slot)
            }
            Err(e) => {
                match e.kind() {
                    ErrorKind::NotFound if install && self.config.not_found_ms > 0 => {
                        let missing = Slot::Missing {
                            at: Instant::now(),
                            epoch: start_epoch,
                        };
                        self.install(id, Arc::new(missing), still).await;
                    }
                    // Transient: keep the entry, it may be served until max_stale_ms.
                    kind if kind.is_transient() => {}
                    // Gone, revoked, or broken: never serve it again.
                    _ => self.remove_up_to(id, start_epoch).await,
                }
                Err(Arc::new(e))
            }
        };
        let mut map = lock(&self.control);
        if let Some(st) = map.get_mut(id)
            && st.flight.as_ref().is_some_and(|f| f.number == number)
        {
            st.flight = None;
        }
        tidy(&mut map, id);
        outcome
    }

    /// Installs `slot` (unless the entry holds a newer write), then takes it out again
    /// if `still` says a write began meanwhile: a write that began after the decision to
    /// install and dropped the entry (a delete, or overlapping writes) must not find the
    /// older answer installed behind it.
    async fn install(&self, id: &CredentialId, slot: Arc<Slot>, still: impl Fn(&Self) -> bool) {
        let epoch = slot.epoch();
        self.put(id, slot).await;
        if !still(self) {
            self.remove_up_to(id, epoch).await;
        }
    }

    /// Installs `slot` unless the entry holds a newer write.
    async fn put(&self, id: &CredentialId, slot: Arc<Slot>) {
        let epoch = slot.epoch();
        self.entries
            .entry(id.clone())
            .and_compute_with(move |current| {
                let op = match current {
                    Some(c) if c.value().epoch() > epoch => Op::Nop,
                    _ => Op::Put(slot),
                };
                std::future::ready(op)
            })
            .await;
    }

    /// Drops the entry unless it holds a write newer than `epoch`.
    async fn remove_up_to(&self, id: &CredentialId, epoch: u64) {
        self.entries
            .entry(id.clone())
            .and_compute_with(move |current| {
                let op = match current {
                    Some(c) if c.value().epoch() > epoch => Op::Nop,
                    Some(_) => Op::Remove,
                    None => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
    }

    /// Waits for a flight's outcome.
    async fn wait(
        &self,
        id: &CredentialId,
        mut done: channel::Receiver<Option<Outcome>>,
    ) -> Result<Arc<Slot>, StorageError> {
        let outcome = match done.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        match outcome {
            Some(Ok(slot)) => Ok(slot),
            Some(Err(e)) => Err(replica(&e)),
            None => Err(StorageError::backend(
                self.provider,
                Operation::Retrieve,
                Some(id),
                "the cache was dropped while this read waited for the backend; read again through a live store",
            )),
        }
    }

    /// Joins the flight of `id`, or starts one of `kind`. Returns the receiver and whether
    /// this call started it.
    fn join_or_start(
        self: &Arc<Self>,
        id: &CredentialId,
        kind: FlightKind,
        known: Option<Arc<Slot>>,
        join_kinds: &[FlightKind],
    ) -> (channel::Receiver<Option<Outcome>>, bool) {
        let mut map = lock(&self.control);
        if let Some(flight) = map.get(id).and_then(|st| st.flight.as_ref())
            && join_kinds.contains(&flight.kind)
        {
            return (flight.done.clone(), false);
        }
        if let Some(flight) = map.get(id).and_then(|st| st.flight.as_ref()) {
            // Another kind runs: wait for it, the caller decides again afterwards.
            return (flight.done.clone(), false);
        }
        (self.start_flight(&mut map, id, kind, known), true)
    }

    async fn retrieve(self: &Arc<Self>, id: &CredentialId) -> Result<Arc<Slot>, StorageError> {
        if let Some(slot) = self.entries.get(id).await {
            let age = self.age(&slot);
            match &*slot {
                Slot::Present { .. } if age < self.config.fresh() => {
                    self.event(CacheEvent::Hit);
                    return Ok(slot);
                }
                Slot::Present { .. } if age < self.config.max_stale() => {
                    self.event(CacheEvent::StaleServed);
                    self.revalidate_in_background(id, &slot);
                    return Ok(slot);
                }
                Slot::Missing { .. } if age < self.config.not_found() => {
                    self.event(CacheEvent::Hit);
                    return Err(StorageError::not_found(self.provider, id));
                }
                _ => {}
            }
        }
        self.event(CacheEvent::Miss);
        let all = [FlightKind::Fetch, FlightKind::Revalidate];
        let (done, _) = self.join_or_start(id, FlightKind::Fetch, None, &all);
        self.wait(id, done).await
    }

    fn revalidate_in_background(self: &Arc<Self>, id: &CredentialId, slot: &Arc<Slot>) {
        let mut map = lock(&self.control);
        if map.get(id).is_some_and(|st| st.flight.is_some()) {
            return;
        }
        drop(self.start_flight(&mut map, id, FlightKind::Revalidate, Some(slot.clone())));
    }

    async fn refresh(self: &Arc<Self>, id: &CredentialId, seen: Option<&Revision>) -> Result<Revision, StorageError> {
        const ROUNDS: usize = 3;
        // Flights numbered from here on started after the caller saw `seen` rejected:
        // their answers are at least that recent. Older ones may predate `seen`.
        let since = self.flights.load(Ordering::SeqCst);
        // When the cache got `seen`, if it holds it: flights started since then answer
        // for a backend at least as recent as `seen` too.
        let mut held_since = None;
        for round in 0..ROUNDS {
            let entry = self.usable(id).await;
            if let Some(seen) = seen
                && let Some((slot, _)) = &entry
                && let Some(stored) = slot.stored()
                && stored.revision == *seen
            {
                held_since = held_since.or(Some(slot.at()));
            }
            if let Some(seen) = seen
                && let Some((slot, _)) = entry
                && let Some(stored) = slot.stored()
                && stored.revision != *seen
                && slot.supersedes(seen)
            {
                // The cache moved past `seen` (a revision it held, or one a refresh
                // reported): nothing to fetch. A revision it never held may be newer
                // than its own, so that one is fetched.
                return Ok(stored.revision.clone());
            }
            let last = round + 1 == ROUNDS;
            let (done, started, recent) = {
                let mut map = lock(&self.control);
                match map.get(id).and_then(|st| st.flight.as_ref()) {
                    // Join a fetch (any flight, in the last round)...
                    Some(f) if last || f.kind == FlightKind::Fetch => {
                        let recent = f.number >= since || held_since.is_some_and(|at| f.started >= at);
                        (f.done.clone(), false, recent)
                    }
                    // ...or wait for a flight of another kind and decide again.
                    Some(f) => (f.done.clone(), false, false),
                    None => (self.start_flight(&mut map, id, FlightKind::Fetch, None), true, true),
                }
            };
            if started {
                self.event(CacheEvent::Refresh);
            }
            let result = self.wait(id, done).await;
            match result {
                Ok(slot) => {
                    if let Some(revision) = slot.stored().map(|s| s.revision.clone()) {
                        let Some(seen) = seen else {
                            return Ok(revision);
                        };
                        let moved_on = revision != *seen && (recent || slot.supersedes(seen));
                        if recent && revision != *seen {
                            slot.note_superseded(seen);
                        }
                        // A flight that started after this call answers for the
                        // backend as it is now, even when that is still `seen`.
                        if started || last || recent || moved_on {
                            return Ok(revision);
                        }
                    }
                }
                Err(e) if started || last => return Err(e),
                Err(_) => {}
            }
        }
        unreachable!("the last round always returns")
    }

    async fn poll(self: &Arc<Self>, id: &CredentialId) -> Result<Option<(Revision, CredentialMetadata)>, StorageError> {
        let known = self.entries.get(id).await.filter(|s| s.stored().is_some());
        let kind = if known.is_some() {
            FlightKind::Revalidate
        } else {
            FlightKind::Fetch
        };
        let all = [FlightKind::Fetch, FlightKind::Revalidate];
        let (done, _) = self.join_or_start(id, kind, known, &all);
        match self.wait(id, done).await {
            Ok(slot) => Ok(slot.stored().map(|s| (s.revision.clone(), s.metadata.clone()))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Marks a write of `id` as started; the guard ends it.
    fn begin_write(self: &Arc<Self>, id: &CredentialId) -> WriteGuard {
        let mut map = lock(&self.control);
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let st = map.entry(id.clone()).or_default();
        st.overlapped |= st.writes > 0;
        st.writes += 1;
        st.last_write = epoch;
        WriteGuard {
            control: self.control.clone(),
            id: id.clone(),
            epoch,
        }
    }

    /// Applies a finished write to the entry: `written` is the record now stored
    /// (`None` after a delete); an error drops the entry (the state is unknown), and so
    /// does a write that overlapped another of the same id (which landed last is unknown).
    async fn finish_write(&self, guard: &WriteGuard, previous: Option<Arc<Slot>>, written: Result<Option<Stored>, ()>) {
        let allowed = |this: &Self| {
            lock(&this.control)
                .get(&guard.id)
                .is_some_and(|st| st.write_allowed(guard.epoch))
        };
        let newest = allowed(self);
        match written {
            Ok(Some(stored)) if newest => {
                let slot = Slot::present(stored, Instant::now(), guard.epoch, previous.as_deref());
                self.install(&guard.id, Arc::new(slot), allowed).await;
            }
            Ok(None) if newest && self.config.not_found_ms > 0 => {
                let slot = Slot::Missing {
                    at: Instant::now(),
                    epoch: guard.epoch,
                };
                self.install(&guard.id, Arc::new(slot), allowed).await;
            }
            _ if newest => self.remove_up_to(&guard.id, guard.epoch).await,
            // Another write of the id ran beside this one: whichever entry it left may
            // not be what the backend holds now.
            _ => self.entries.invalidate(&guard.id).await,
        }
    }
}

/// A write in progress; ends it (even when the write's future is dropped).
struct WriteGuard {
    control: Arc<Control>,
    id: CredentialId,
    epoch: u64,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.control);
        if let Some(st) = map.get_mut(&self.id) {
            st.writes = st.writes.saturating_sub(1);
            if st.writes == 0 {
                st.overlapped = false;
            }
        }
        tidy(&mut map, &self.id);
    }
}

/// Emits a cache event through the `metrics` facade (feature `metrics`).
#[allow(unused_variables)]
fn emit(provider: &'static str, event: CacheEvent) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "nebula_credential_cache_events_total",
        "provider" => provider,
        "event" => event.as_str()
    )
    .increment(1);
}

impl<P: StorageProvider> fmt::Debug for Cached<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("inner", &self.shared.inner)
            .field("config", &self.shared.config)
            .field("entries", &self.shared.entries.entry_count())
            .finish()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<P: StorageProvider + 'static> StorageProvider for Cached<P> {
    fn provider_name(&self) -> &'static str {
        self.shared.provider
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.inner.capabilities()
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        let shared = &self.shared;
        let guard = shared.begin_write(id);
        let previous = shared.entries.remove(id).await;
        let result = shared.inner.store_if(id, data, metadata, precondition).await;
        let written = match &result {
            Ok(revision) => Ok(Some(Stored {
                data: data.clone(),
                metadata: metadata.clone(),
                revision: revision.clone(),
            })),
            Err(_) => Err(()),
        };
        shared.finish_write(&guard, previous, written).await;
        result
    }

    async fn store(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
    ) -> Result<Revision, StorageError> {
        self.store_if(id, data, metadata, &Precondition::Overwrite).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        Ok(self.read(id).await?.stored().clone())
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        let shared = &self.shared;
        let guard = shared.begin_write(id);
        let previous = shared.entries.remove(id).await;
        let result = shared.inner.delete(id).await;
        shared
            .finish_write(&guard, previous, result.as_ref().map(|_| None).map_err(|_| ()))
            .await;
        result
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        self.shared.inner.list(filter).await
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        let shared = &self.shared;
        if let Some(slot) = shared.entries.get(id).await {
            let age = shared.age(&slot);
            match &*slot {
                Slot::Present { .. } if age < shared.config.fresh() => {
                    shared.event(CacheEvent::Hit);
                    return Ok(true);
                }
                Slot::Missing { .. } if age < shared.config.not_found() => {
                    shared.event(CacheEvent::Hit);
                    return Ok(false);
                }
                _ => {}
            }
        }
        shared.inner.exists(id).await
    }

    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        let shared = &self.shared;
        if let Some((slot, true)) = shared.usable(id).await
            && let Some(stored) = slot.stored()
        {
            shared.event(CacheEvent::Hit);
            return Ok(stored.revision.clone());
        }
        shared.inner.revision(id).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.shared.inner.check().await
    }
}

/// A record held by the cache, shared with its entry rather than copied out of it
/// (ciphertext, metadata and revision; never plaintext). The entry's bytes are zeroized
/// when the last holder (the cache or a reader) drops it.
#[derive(Debug, Clone)]
pub(crate) struct CachedRecord(Arc<Slot>);

impl CachedRecord {
    /// The record of a present slot; `None` for a remembered `NotFound`.
    fn new(slot: Arc<Slot>) -> Option<Self> {
        slot.stored().is_some().then_some(CachedRecord(slot))
    }

    /// The record.
    pub(crate) fn stored(&self) -> &Stored {
        self.0.stored().expect("a CachedRecord holds a present slot")
    }
}

/// What [`CredentialStore`](crate::CredentialStore) needs from a cache, whatever its
/// provider type.
#[async_trait]
pub(crate) trait CacheControl: Send + Sync {
    /// What [`retrieve`](StorageProvider::retrieve) answers, without copying the record.
    async fn read(&self, id: &CredentialId) -> Result<CachedRecord, StorageError>;
    async fn refresh(&self, id: &CredentialId, seen: Option<&Revision>) -> Result<Revision, StorageError>;
    /// The current revision and metadata of `id` (`None`: deleted), asking the backend.
    async fn poll(&self, id: &CredentialId) -> Result<Option<(Revision, CredentialMetadata)>, StorageError>;
}

#[async_trait]
impl<P: StorageProvider + 'static> CacheControl for Cached<P> {
    async fn read(&self, id: &CredentialId) -> Result<CachedRecord, StorageError> {
        Cached::read(self, id).await
    }

    async fn refresh(&self, id: &CredentialId, seen: Option<&Revision>) -> Result<Revision, StorageError> {
        Shared::refresh(&self.shared, id, seen).await
    }

    async fn poll(&self, id: &CredentialId) -> Result<Option<(Revision, CredentialMetadata)>, StorageError> {
        Shared::poll(&self.shared, id).await
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::{CredentialStore, EncryptionKey, Keyring, MemoryProvider, Tags};

    #[tokio::test(start_paused = true)]
    async fn a_hit_shares_the_entry_and_a_get_holds_it_no_longer_than_the_call() {
        let cached = Cached::new(MemoryProvider::new(), CacheConfig::default()).unwrap();
        let store = CredentialStore::with_cache(cached.clone(), Keyring::new(EncryptionKey::generate()));
        let id: CredentialId = "token".parse().unwrap();
        store.put(&id, b"v1", Tags::new()).await.unwrap();
        let entry = cached.shared.entries.get(&id).await.expect("own write cached");
        let record = cached.read(&id).await.unwrap();
        assert!(Arc::ptr_eq(&record.0, &entry), "a hit copies nothing out of the entry");
        let held = Arc::strong_count(&entry);
        drop(record);
        assert_eq!(Arc::strong_count(&entry), held - 1);
        assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v1");
        assert_eq!(store.get_with_metadata(&id).await.unwrap().0.expose_secret(), b"v1");
        assert_eq!(
            Arc::strong_count(&entry),
            held - 1,
            "the entry (and its ciphertext) is held by the cache alone once a get returns"
        );
        // Overwritten while a reader holds the old record: the reader keeps a whole,
        // consistent record; the entry moves on.
        let old = cached.read(&id).await.unwrap();
        store.put(&id, b"v2", Tags::new()).await.unwrap();
        assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v2");
        assert_eq!(old.stored().metadata.version, 1);
        assert!(!Arc::ptr_eq(&old.0, &cached.shared.entries.get(&id).await.unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_remembered_not_found_reads_as_not_found() {
        let config = CacheConfig {
            not_found_ms: 60_000,
            ..CacheConfig::default()
        };
        let cached = Cached::new(MemoryProvider::new(), config).unwrap();
        let id: CredentialId = "gone".parse().unwrap();
        for _ in 0..2 {
            assert!(cached.read(&id).await.unwrap_err().is_not_found());
        }
        assert!(matches!(
            cached.shared.entries.get(&id).await.as_deref(),
            Some(Slot::Missing { .. })
        ));
    }
}
