//! [`CredentialWatch`]: changes of one credential, and the health of the poller that
//! looks for them, from one poller per id shared by all its subscribers.

mod health;

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch as channel;
use tokio::task::AbortHandle;

use crate::error::StorageError;
use crate::id::CredentialId;
use crate::metadata::CredentialMetadata;
use crate::operation::Operation;
use crate::provider::{Revision, StorageProvider};

use super::CacheControl;
use health::{HealthKey, HealthState};
pub use health::{PollFailure, WatchEvent, WatchHealth};

/// The state of a watched credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// It exists at `revision`, with `metadata`.
    Present {
        /// The stored state (compare with the one your value came with).
        revision: Revision,
        /// Its metadata (version, timestamps, tags).
        metadata: CredentialMetadata,
    },
    /// It does not exist (deleted, or never stored).
    Deleted,
}

/// Changes of one credential, and the health of the polling that finds them, from
/// [`CredentialStore::watch`](crate::CredentialStore::watch).
///
/// One poller per id asks the backend for the [`Revision`] every `poll_ms` (±10 %
/// jitter), however many watches of that id exist; it stops when the last one is
/// dropped (even while a poll is waiting for the backend).
///
/// # When polls fail
/// A failed poll never ends a watch: the poller keeps polling at its period (while the
/// backend throttles, it backs off: the pause doubles with each throttled poll in a row,
/// up to 8 × `poll_ms`, and is at least the backend's `Retry-After`, honoured up to one
/// day), so
/// [`changed`](Self::changed) goes on waiting through an outage and reports the changes
/// made meanwhile once polls answer again. To tell "nothing changed" from "cannot see":
/// - [`health`](Self::health) says now whether the latest poll failed, and if so the
///   [`PollFailure`]: its error kind and message, since when, how many polls in a row;
/// - [`next_event`](Self::next_event) waits for whichever comes first: a change, polls
///   starting to fail (or failing with another class of error: see [`PollFailure`]), or
///   polls answering again.
///
/// Revoked access (`PermissionDenied`, `AuthenticationFailed`) is reported the same way
/// ([`PollFailure::is_access_denied`]) and does not end the watch either: access is often
/// restored (a policy fixed, a token renewed) and the watch then carries on by itself; a
/// subscriber that prefers to stop decides so from the event. A provider that panics
/// in a poll (a bug) is reported the same way, as a failure of kind
/// [`Backend`](crate::ErrorKind::Backend). Only the store being dropped ends a watch
/// ([`changed`](Self::changed) and [`next_event`](Self::next_event) then fail;
/// [`health`](Self::health) and [`current`](Self::current) keep their last values).
///
/// The log says the same once per transition: a warning when polls start failing and
/// when the error changes class, an info line when they answer again (repeated failures
/// are at debug level only). With feature `metrics`, each failed poll counts in
/// `nebula_credential_watch_poll_failures_total{provider, kind}`. A poll is a read through
/// the whole stack below the store, so with the [`Retry`](crate::layers::Retry) layer (as
/// `nebula_credential::open` builds the stack) a failed poll is first retried by that
/// policy, and that layer and [`Traced`](crate::layers::Traced) log each attempt as they
/// do for any read; during a long outage, filter their targets
/// (`nebula_credential_core::layers`) or lower `max_retries` if that is too loud.
///
/// ```
/// use std::sync::Arc;
/// use nebula_credential_core::cache::{Change, WatchEvent};
/// use nebula_credential_core::{CredentialStore, EncryptionKey, Keyring, MemoryProvider, Tags};
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let store = CredentialStore::new(Arc::new(MemoryProvider::new()), Keyring::new(EncryptionKey::generate()));
/// let id = "db_password".parse()?;
/// store.put(&id, b"first", Tags::new()).await?;
/// let mut watch = store.watch(&id).await?;
/// assert!(watch.health().is_healthy());
/// store.put(&id, b"second", Tags::new()).await?;
/// while let Ok(event) = watch.next_event().await {
///     match event {
///         WatchEvent::Changed(Change::Present { metadata, .. }) => println!("now at version {}", metadata.version),
///         WatchEvent::Changed(_) => println!("deleted"),
///         WatchEvent::Failing(failure) if failure.is_access_denied() => eprintln!("access revoked: {failure}"),
///         WatchEvent::Failing(failure) => eprintln!("blind for now: {failure}"),
///         WatchEvent::Recovered(failure) => eprintln!("seeing again after {} failed polls", failure.failures),
///         _ => {}
///     }
///     break; // a service keeps looping
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct CredentialWatch {
    id: CredentialId,
    provider: &'static str,
    receiver: channel::Receiver<Change>,
    health: channel::Receiver<HealthState>,
    /// The health transition [`next_event`](Self::next_event) reported last (a new watch
    /// starts from "healthy", so a failure in progress is its first event).
    seen_health: HealthKey,
    /// A change that woke [`next_event`](Self::next_event) (which marked it seen in the
    /// channel) and is not reported yet.
    change_pending: bool,
}

impl CredentialWatch {
    /// Waits for the next change and returns the new state. Failed polls do not end it
    /// (see [`health`](Self::health)); it fails only when the store was dropped (nothing
    /// polls any more).
    pub async fn changed(&mut self) -> Result<Change, StorageError> {
        if !std::mem::take(&mut self.change_pending) && self.receiver.changed().await.is_err() {
            return Err(self.dropped());
        }
        Ok(self.receiver.borrow_and_update().clone())
    }

    /// Waits for the next change or health transition, whichever comes first: see
    /// [`WatchEvent`]. Fails only when the store was dropped.
    ///
    /// Like [`changed`](Self::changed), it reports the latest state, not every step: a
    /// subscriber slower than the poller sees changes (and failures that came and went)
    /// merged. When one poll both recovers and finds a change, `Recovered` comes first,
    /// then `Changed`. A watch created while polls fail reports `Failing` first.
    ///
    /// Cancel safe: dropping the future before it is ready loses no event, so it can sit
    /// in a `tokio::select!` loop or under a timeout.
    pub async fn next_event(&mut self) -> Result<WatchEvent, StorageError> {
        loop {
            if let Some(event) = self.pending() {
                return Ok(event);
            }
            // Either wakes on a notification, and marks it seen: a change is kept in
            // `change_pending` until reported.
            let woken = {
                let mut state = pin!(self.receiver.changed());
                let mut health = pin!(self.health.changed());
                poll_fn(|cx| match health.as_mut().poll(cx) {
                    Poll::Ready(result) => Poll::Ready(result.map(|()| false)),
                    Poll::Pending => state.as_mut().poll(cx).map(|result| result.map(|()| true)),
                })
                .await
            };
            match woken {
                Ok(changed) => self.change_pending |= changed,
                Err(_) => return Err(self.dropped()),
            }
        }
    }

    /// The event not yet reported, if any: a recovery, then a change, then a failure.
    fn pending(&mut self) -> Option<WatchEvent> {
        // The state first: the poller publishes a poll's health before its state, so the
        // health read next holds the recovery that came with a change seen here.
        let state_changed = self.change_pending || self.receiver.borrow().has_changed();
        let health = self.health.borrow_and_update().clone();
        let key = health.key();
        if key.is_none() && self.seen_health.is_some() {
            self.seen_health = None;
            if let Some(ended) = health.ended() {
                return Some(WatchEvent::Recovered(ended.clone()));
            }
        }
        if state_changed {
            self.change_pending = false;
            return Some(WatchEvent::Changed(self.receiver.borrow_and_update().clone()));
        }
        if key != self.seen_health {
            self.seen_health = key;
            if let Some(failure) = health.health().failure() {
                return Some(WatchEvent::Failing(failure.clone()));
            }
        }
        None
    }

    /// Whether the poller sees the backend now: healthy, or the run of failed polls in
    /// progress (its counters as of now).
    pub fn health(&self) -> WatchHealth {
        self.health.borrow().health().clone()
    }

    /// The state last seen (at subscription, or at the latest change).
    pub fn current(&self) -> Change {
        self.receiver.borrow().clone()
    }

    /// The credential watched.
    pub fn id(&self) -> &CredentialId {
        &self.id
    }

    fn dropped(&self) -> StorageError {
        StorageError::backend(
            self.provider,
            Operation::Revision,
            Some(&self.id),
            "the credential store behind this watch was dropped; watch again from a live store",
        )
    }
}

/// Where a poller reads the state from.
#[derive(Clone)]
pub(crate) enum Source {
    /// The provider (no cache): `revision`, then `retrieve` when it changed.
    Provider(Arc<dyn StorageProvider>),
    /// The cache: a revalidation (which also refreshes the entry).
    Cache(Arc<dyn CacheControl>),
}

impl Source {
    async fn state(&self, id: &CredentialId, current: &Change) -> Result<Change, StorageError> {
        let present = |(revision, metadata)| Change::Present { revision, metadata };
        match self {
            Source::Cache(cache) => Ok(cache.poll(id).await?.map_or(Change::Deleted, present)),
            Source::Provider(provider) => {
                let revision = match provider.revision(id).await {
                    Ok(revision) => revision,
                    Err(e) if e.is_not_found() => return Ok(Change::Deleted),
                    Err(e) => return Err(e),
                };
                if let Change::Present { revision: known, .. } = current
                    && *known == revision
                {
                    return Ok(current.clone());
                }
                match provider.retrieve(id).await {
                    Ok(stored) => Ok(present((stored.revision, stored.metadata))),
                    Err(e) if e.is_not_found() => Ok(Change::Deleted),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

struct Poller {
    generation: u64,
    sender: channel::Sender<Change>,
    health: channel::Sender<HealthState>,
    task: AbortHandle,
}

/// The receivers of one new watch.
type Receivers = (channel::Receiver<Change>, channel::Receiver<HealthState>);

type Pollers = Mutex<HashMap<CredentialId, Poller>>;

/// The pollers of one [`CredentialStore`](crate::CredentialStore); aborted when it is dropped.
pub(crate) struct Watchers {
    pollers: Arc<Pollers>,
    generations: std::sync::atomic::AtomicU64,
}

impl Default for Watchers {
    fn default() -> Self {
        Watchers {
            pollers: Arc::default(),
            generations: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for poller in self.pollers.lock().unwrap_or_else(PoisonError::into_inner).values() {
            poller.task.abort();
        }
    }
}

impl Watchers {
    /// A watch of `id`, joining its poller or starting one.
    pub(crate) async fn watch(
        &self,
        id: &CredentialId,
        source: Source,
        period: Duration,
        provider: &'static str,
    ) -> Result<CredentialWatch, StorageError> {
        let subscribe = |(receiver, health): Receivers| CredentialWatch {
            id: id.clone(),
            provider,
            receiver,
            health,
            seen_health: None,
            change_pending: false,
        };
        if let Some(receivers) = self.subscribe(id) {
            return Ok(subscribe(receivers));
        }
        let initial = source.state(id, &Change::Deleted).await?;
        let mut pollers = self.pollers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pollers.get(id)
            && !p.sender.is_closed()
        {
            return Ok(subscribe((p.sender.subscribe(), p.health.subscribe())));
        }
        let (sender, receiver) = channel::channel(initial);
        let (health, health_receiver) = channel::channel(HealthState::default());
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let task = tokio::spawn(poll(
            id.clone(),
            source,
            period,
            Publish {
                state: sender.clone(),
                health: health.clone(),
                provider,
            },
            Arc::downgrade(&self.pollers),
            generation,
        ));
        pollers.insert(
            id.clone(),
            Poller {
                generation,
                sender,
                health,
                task: task.abort_handle(),
            },
        );
        Ok(subscribe((receiver, health_receiver)))
    }

    fn subscribe(&self, id: &CredentialId) -> Option<Receivers> {
        let pollers = self.pollers.lock().unwrap_or_else(PoisonError::into_inner);
        let p = pollers.get(id)?;
        (!p.sender.is_closed()).then(|| (p.sender.subscribe(), p.health.subscribe()))
    }

    /// Ids polled now (one poller each).
    pub(crate) fn active(&self) -> usize {
        self.pollers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|p| !p.sender.is_closed())
            .count()
    }
}

/// `period` ±10 %, saturating at [`Duration::MAX`] (`period × 1.1` overflows for a huge
/// period, and a panic would leave the poller's watches deaf).
fn jittered(period: Duration) -> Duration {
    Duration::try_from_secs_f64(period.as_secs_f64() * rand::random_range(0.9..=1.1)).unwrap_or(Duration::MAX)
}

/// The failure of a poll whose provider panicked (the panic itself went to the panic hook).
fn panicked(provider: &'static str, id: &CredentialId) -> StorageError {
    StorageError::backend(
        provider,
        Operation::Revision,
        Some(id),
        "the provider panicked during this poll (a bug: see the panic message); polling goes on, report it to the provider's maintainers",
    )
}

/// Where a poller publishes what it finds.
struct Publish {
    state: channel::Sender<Change>,
    health: channel::Sender<HealthState>,
    provider: &'static str,
}

/// One poller: until the last subscriber goes, every `period` (jittered; longer while
/// throttled) read the state and publish it when it changed, and the health of each poll.
async fn poll(
    id: CredentialId,
    source: Source,
    period: Duration,
    publish: Publish,
    pollers: Weak<Pollers>,
    generation: u64,
) {
    let Publish {
        state: sender,
        health,
        provider,
    } = publish;
    loop {
        let pause = health.borrow().pause(jittered(period));
        if tokio::time::timeout(pause, sender.closed()).await.is_ok() {
            break;
        }
        let current = sender.borrow().clone();
        // The last watch may go while a poll hangs (an outage without a timeout): stop
        // then too, rather than hold the backend until it answers. A provider that
        // panics fails this poll (the poller would die, its watches deaf and "healthy").
        let polled = {
            let mut state = pin!(source.state(&id, &current));
            let mut closed = pin!(sender.closed());
            poll_fn(|cx| match closed.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => match catch_unwind(AssertUnwindSafe(|| state.as_mut().poll(cx))) {
                    Ok(polled) => polled.map(Some),
                    Err(_) => Poll::Ready(Some(Err(panicked(provider, &id)))),
                },
            })
            .await
        };
        let Some(polled) = polled else {
            break;
        };
        match polled {
            Ok(next) => {
                // The recovery first: subscribers then see the change it brought.
                health::answered(&health, &id, provider);
                sender.send_if_modified(|state| {
                    let changed = *state != next;
                    if changed {
                        *state = next;
                    }
                    changed
                });
            }
            Err(e) => health::failed(&health, &id, provider, &e),
        }
    }
    if let Some(pollers) = pollers.upgrade() {
        let mut pollers = pollers.lock().unwrap_or_else(PoisonError::into_inner);
        if pollers.get(&id).is_some_and(|p| p.generation == generation) {
            pollers.remove(&id);
        }
    }
}
