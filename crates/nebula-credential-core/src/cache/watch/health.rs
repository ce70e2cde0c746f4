//! The health of a watch's poller: [`WatchHealth`], [`PollFailure`] and [`WatchEvent`],
//! and how the poller records, logs and paces failed polls.

use std::fmt;
use std::time::Duration;

use tokio::sync::watch as channel;
use tokio::time::Instant;

use crate::error::{ErrorKind, StorageError};
use crate::id::CredentialId;
use crate::metadata::{Timestamp, now};

use super::Change;

/// Whether the poller behind a [`CredentialWatch`](super::CredentialWatch) can see the
/// backend, from [`CredentialWatch::health`](super::CredentialWatch::health).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchHealth {
    /// The latest poll answered (a "not found" is an answer: the credential is deleted).
    #[default]
    Healthy,
    /// The latest polls failed: a change made meanwhile is not seen until a poll answers
    /// again.
    Failing(PollFailure),
}

impl WatchHealth {
    /// `true` when the latest poll answered.
    pub fn is_healthy(&self) -> bool {
        matches!(self, WatchHealth::Healthy)
    }

    /// The failures in progress, if the latest poll failed.
    pub fn failure(&self) -> Option<&PollFailure> {
        match self {
            WatchHealth::Failing(failure) => Some(failure),
            WatchHealth::Healthy => None,
        }
    }
}

/// A run of consecutive failed polls of one watched credential (an outage, throttling,
/// revoked access, …).
///
/// A copy: the poller updates `kind`, `failures`, `last`, `message` and
/// [`duration`](Self::duration) on each failed poll of the run (read them again with
/// [`CredentialWatch::health`](super::CredentialWatch::health));
/// a new [`WatchEvent::Failing`] is reported only when the run starts and when the
/// error changes class: outage-like kinds (`Timeout`, `Unavailable`, `Throttled`, which
/// a network outage alternates between) are one class, revoked access
/// (`PermissionDenied`, `AuthenticationFailed`) another, and any other kind its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollFailure {
    /// The kind of the latest error (it may differ from the first one's).
    pub kind: ErrorKind,
    /// The latest error's message: what failed and what to do. Never a secret.
    pub message: String,
    /// Polls that failed in a row, whatever their kinds (at least 1).
    pub failures: u64,
    /// When the first failed poll of the run ended (wall clock).
    pub since: Timestamp,
    /// When the latest failed poll ended (wall clock).
    pub last: Timestamp,
    /// The monotonic twins of `since` and `last`, for [`duration`](Self::duration).
    started: Instant,
    latest: Instant,
}

impl PollFailure {
    fn new(error: &StorageError) -> Self {
        let (at, instant) = (now(), Instant::now());
        PollFailure {
            kind: error.kind(),
            message: error.to_string(),
            failures: 1,
            since: at,
            last: at,
            started: instant,
            latest: instant,
        }
    }

    /// Time from the first failed poll of the run to the latest (zero after one; the
    /// outage may have begun up to one pause before the first and lasted up to one pause
    /// past the latest, as nobody looked in between: a pause is the poll period, longer
    /// while throttled).
    pub fn duration(&self) -> Duration {
        self.latest.saturating_duration_since(self.started)
    }

    /// `true` when access was revoked or the identity is refused
    /// ([`PermissionDenied`](ErrorKind::PermissionDenied) or
    /// [`AuthenticationFailed`](ErrorKind::AuthenticationFailed)): this does not go away
    /// by waiting, someone has to grant access or renew the identity.
    pub fn is_access_denied(&self) -> bool {
        matches!(self.kind, ErrorKind::PermissionDenied | ErrorKind::AuthenticationFailed)
    }

    /// `true` for an outage-like kind (`Timeout`, `Unavailable`, `Throttled`) that usually
    /// ends by itself.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

impl fmt::Display for PollFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} poll(s) in a row failed since {} (latest: {}): {}",
            self.failures,
            self.since.to_rfc3339(),
            self.kind,
            self.message
        )
    }
}

/// What [`CredentialWatch::next_event`](super::CredentialWatch::next_event) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// The credential changed or was deleted: its new state (what
    /// [`changed`](super::CredentialWatch::changed) returns).
    Changed(Change),
    /// Polls started failing, or now fail with another class of error (see
    /// [`PollFailure`]: an outage turning into revoked access, say). Changes made from
    /// now on are not seen until [`Recovered`](Self::Recovered).
    Failing(PollFailure),
    /// Polls answer again. Holds the run of failures that ended, as of its last failed
    /// poll. A change made during the run comes next, as [`Changed`](Self::Changed).
    Recovered(PollFailure),
}

/// What the health channel holds: the health, plus what subscribers need to tell runs
/// apart and to report a recovery.
#[derive(Debug, Clone, Default)]
pub(super) struct HealthState {
    health: WatchHealth,
    /// Number of the current (or latest) run of failures, counting from 1.
    run: u64,
    /// The run that ended last.
    ended: Option<PollFailure>,
    /// Throttled polls in a row (the latest ones), for the back-off.
    throttled: u32,
    /// What the latest throttled answer asked us to wait.
    retry_after: Option<Duration>,
}

/// What a subscriber compares to notice a transition: `None` while healthy, else the run
/// and the class of its latest error.
pub(super) type HealthKey = Option<(u64, FailureClass)>;

/// What a failure is reported by: kinds a subscriber (or an operator reading the log)
/// would act on the same way are one class, so an outage that alternates between
/// `Timeout` and `Unavailable` is one transition, not one per poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureClass {
    /// `Timeout`, `Unavailable`, `Throttled`: the backend cannot answer now.
    Outage,
    /// `PermissionDenied`, `AuthenticationFailed`: access was revoked.
    AccessDenied,
    /// Any other kind, each its own class.
    Other(ErrorKind),
}

impl FailureClass {
    fn of(kind: ErrorKind) -> Self {
        match kind {
            k if k.is_transient() => FailureClass::Outage,
            ErrorKind::PermissionDenied | ErrorKind::AuthenticationFailed => FailureClass::AccessDenied,
            k => FailureClass::Other(k),
        }
    }
}

/// What a failed poll changed.
enum Transition {
    /// The first failure after a success.
    Started,
    /// Failing already, now with another class of error (the previous kind).
    KindChanged(ErrorKind),
    /// Failing already, with the same class of error.
    Repeated,
}

/// The pause multiplier doubles this many times at most while the backend throttles
/// polls (so up to 8 × the poll period).
const MAX_THROTTLE_DOUBLINGS: u32 = 3;

/// The longest `Retry-After` a poller honours (one day, the longest period
/// [`CacheConfig`](crate::cache::CacheConfig) accepts): a bogus or hostile header must
/// not leave a watch blind for years.
const MAX_RETRY_AFTER: Duration = Duration::from_millis(crate::cache::CacheConfig::MAX_AGE_MS);

impl HealthState {
    pub(super) fn health(&self) -> &WatchHealth {
        &self.health
    }

    pub(super) fn key(&self) -> HealthKey {
        self.health.failure().map(|f| (self.run, FailureClass::of(f.kind)))
    }

    /// The run that ended last (for [`WatchEvent::Recovered`]).
    pub(super) fn ended(&self) -> Option<&PollFailure> {
        self.ended.as_ref()
    }

    /// How long the poller waits before its next poll, `base` being the jittered poll
    /// period: `base` itself, except while the backend throttles, when the pause doubles
    /// with each throttled poll in a row (up to 8 × `base`) and is at least the
    /// `Retry-After` the backend sent (up to [`MAX_RETRY_AFTER`]).
    pub(super) fn pause(&self, base: Duration) -> Duration {
        if self.throttled == 0 {
            return base;
        }
        let doublings = (self.throttled - 1).min(MAX_THROTTLE_DOUBLINGS);
        base.saturating_mul(1 << doublings)
            .max(self.retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }

    fn fail(&mut self, error: &StorageError) -> Transition {
        self.retry_after = error.retry_after();
        self.throttled = match error.kind() {
            ErrorKind::Throttled => self.throttled.saturating_add(1),
            _ => 0,
        };
        match &mut self.health {
            WatchHealth::Failing(f) => {
                f.failures += 1;
                f.last = now();
                f.latest = Instant::now();
                f.message = error.to_string();
                let previous = f.kind;
                f.kind = error.kind();
                if FailureClass::of(previous) == FailureClass::of(f.kind) {
                    Transition::Repeated
                } else {
                    Transition::KindChanged(previous)
                }
            }
            WatchHealth::Healthy => {
                self.run += 1;
                self.health = WatchHealth::Failing(PollFailure::new(error));
                Transition::Started
            }
        }
    }

    fn recover(&mut self) -> Option<PollFailure> {
        let WatchHealth::Failing(failure) = std::mem::take(&mut self.health) else {
            return None;
        };
        self.retry_after = None;
        self.throttled = 0;
        self.ended = Some(failure.clone());
        Some(failure)
    }
}

/// Records a failed poll of `id`: subscribers hear of it when a run starts or the error
/// changes class (the counters grow in place otherwise); the log warns at those two moments
/// only, so a long outage does not flood it.
pub(super) fn failed(
    health: &channel::Sender<HealthState>,
    id: &CredentialId,
    provider: &'static str,
    e: &StorageError,
) {
    let mut transition = Transition::Repeated;
    let mut failures = 0;
    health.send_if_modified(|state| {
        transition = state.fail(e);
        failures = state.health.failure().map_or(0, |f| f.failures);
        !matches!(transition, Transition::Repeated)
    });
    emit_failure(provider, e.kind());
    match transition {
        Transition::Started => tracing::warn!(
            credential_id = id.as_str(),
            provider,
            error.kind = e.kind().as_str(),
            error = %e,
            "watch poll failed; polling goes on and watches report it in health() until a poll answers"
        ),
        Transition::KindChanged(previous) => tracing::warn!(
            credential_id = id.as_str(),
            provider,
            error.kind = e.kind().as_str(),
            previous_kind = previous.as_str(),
            failures,
            error = %e,
            "watch poll still failing, now with another class of error; polling goes on"
        ),
        Transition::Repeated => tracing::debug!(
            credential_id = id.as_str(),
            provider,
            error.kind = e.kind().as_str(),
            failures,
            "watch poll still failing"
        ),
    }
}

/// Records a poll of `id` that answered: ends a run of failures (subscribers hear of it,
/// and the log says so once).
pub(super) fn answered(health: &channel::Sender<HealthState>, id: &CredentialId, provider: &'static str) {
    let mut ended = None;
    health.send_if_modified(|state| {
        ended = state.recover();
        ended.is_some()
    });
    if let Some(run) = ended {
        tracing::info!(
            credential_id = id.as_str(),
            provider,
            failures = run.failures,
            failing_for_ms = u64::try_from(run.duration().as_millis()).unwrap_or(u64::MAX),
            last_error.kind = run.kind.as_str(),
            "watch poll answers again; changes made meanwhile are reported now"
        );
    }
}

/// Counts a failed poll through the `metrics` facade (feature `metrics`).
#[allow(unused_variables)]
fn emit_failure(provider: &'static str, kind: ErrorKind) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "nebula_credential_watch_poll_failures_total",
        "provider" => provider,
        "kind" => kind.as_str()
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Operation;

    fn unavailable() -> StorageError {
        StorageError::unavailable("memory", Operation::Revision, None)
    }

    fn denied() -> StorageError {
        StorageError::permission_denied("memory", Operation::Revision, None, "the token lost read access")
    }

    fn throttled(after: Option<Duration>) -> StorageError {
        StorageError::throttled("memory", Operation::Revision, None).with_retry_after(after)
    }

    #[test]
    fn a_run_counts_failures_and_keys_on_run_and_class() {
        let mut state = HealthState::default();
        assert_eq!(state.key(), None);
        assert!(matches!(state.fail(&unavailable()), Transition::Started));
        assert!(matches!(state.fail(&unavailable()), Transition::Repeated));
        assert_eq!(state.key(), Some((1, FailureClass::Outage)));
        // An outage alternating between outage-like kinds is one transition…
        assert!(matches!(state.fail(&throttled(None)), Transition::Repeated));
        let f = state.health().failure().unwrap();
        assert_eq!(
            (f.failures, f.kind),
            (3, ErrorKind::Throttled),
            "the latest kind is kept"
        );
        // …revoked access is another.
        assert!(matches!(
            state.fail(&denied()),
            Transition::KindChanged(ErrorKind::Throttled)
        ));
        assert_eq!(state.key(), Some((1, FailureClass::AccessDenied)));
        assert!(matches!(
            state.fail(&unavailable()),
            Transition::KindChanged(ErrorKind::PermissionDenied)
        ));
        let ended = state.recover().unwrap();
        assert_eq!(ended.failures, 5);
        assert_eq!(state.ended(), Some(&ended));
        assert_eq!(state.key(), None);
        assert!(state.recover().is_none(), "recovering twice reports once");
        state.fail(&unavailable());
        assert_eq!(state.key(), Some((2, FailureClass::Outage)), "a new run");
    }

    #[test]
    fn pauses_back_off_only_while_throttled() {
        let base = Duration::from_secs(1);
        let mut state = HealthState::default();
        assert_eq!(state.pause(base), base);
        state.fail(&unavailable());
        state.fail(&unavailable());
        assert_eq!(state.pause(base), base, "an outage keeps the poll period");
        let mut pauses = Vec::new();
        for _ in 0..6 {
            state.fail(&throttled(None));
            pauses.push(state.pause(base).as_secs());
        }
        assert_eq!(
            pauses,
            [1, 2, 4, 8, 8, 8],
            "doubling per throttled poll in a row, up to 8x"
        );
        state.fail(&unavailable());
        assert_eq!(state.pause(base), base, "no longer throttled");
        state.recover();
        state.fail(&throttled(None));
        assert_eq!(state.pause(base), base);
        state.fail(&throttled(None));
        assert_eq!(state.pause(base), base * 2);
        state.fail(&throttled(Some(Duration::from_secs(60))));
        assert_eq!(
            state.pause(base),
            Duration::from_secs(60),
            "the backend's Retry-After wins"
        );
        state.fail(&throttled(Some(Duration::MAX)));
        assert_eq!(
            state.pause(base),
            MAX_RETRY_AFTER,
            "a Retry-After past a day waits a day"
        );
        state.recover();
        assert_eq!(state.pause(base), base);
    }
}
