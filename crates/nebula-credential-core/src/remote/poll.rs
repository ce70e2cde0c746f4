//! Waiting inside one operation: [`back_off`] after a lost write race, and [`Polling`]
//! for a service that finishes an operation (a delete, a recover) asynchronously,
//! bounded by a number of rounds and by the operation's deadline
//! ([`layers::deadline`](crate::layers::deadline)).

use std::time::Duration;

/// A short random pause (up to 0.5 ms × 2^attempt, at most 32 ms) before attempt
/// `attempt` of a write that lost a race to another writer, so contending writers spread
/// out instead of colliding again in lockstep.
pub async fn back_off(attempt: u32) {
    let ceiling_us = 500u64 << attempt.min(6);
    tokio::time::sleep(std::time::Duration::from_micros(rand::random_range(0..=ceiling_us))).await;
}

/// A bounded series of waits: `first`, doubling every round up to `max`, at most
/// `rounds` waits, and never one that would end at or past the deadline of the operation
/// ([`layers::deadline`](crate::layers::deadline)), so the caller reports in time
/// instead of being cut off by the `Timeout` layer.
///
/// ```
/// use std::time::Duration;
/// use nebula_credential_core::remote::Polling;
/// const POLL: Polling = Polling::doubling(Duration::from_millis(100), Duration::from_secs(2), 8);
/// assert_eq!(POLL.wait(0), Duration::from_millis(100));
/// assert_eq!(POLL.wait(2), Duration::from_millis(400));
/// assert_eq!(POLL.wait(7), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    /// The first wait.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How many waits at most.
    pub rounds: u32,
}

impl Polling {
    /// Waits of `first`, doubling up to `max`, at most `rounds` of them.
    pub const fn doubling(first: Duration, max: Duration, rounds: u32) -> Self {
        Polling { first, max, rounds }
    }

    /// Waits of `every`, at most `rounds` of them.
    pub const fn constant(every: Duration, rounds: u32) -> Self {
        Polling {
            first: every,
            max: every,
            rounds,
        }
    }

    /// The wait before round `round + 1` (`round` counts the waits so far).
    pub fn wait(&self, round: u32) -> Duration {
        self.first.saturating_mul(1u32 << round.min(16)).min(self.max)
    }

    /// Waits before the next round and counts it in `round`; `false`, without waiting,
    /// when the rounds are used up or the wait would reach the operation's deadline: the
    /// caller then reports its last error.
    pub async fn pause(&self, round: &mut u32) -> bool {
        let wait = self.wait(*round);
        *round += 1;
        if !self.may_wait(*round, wait, crate::layers::deadline(), tokio::time::Instant::now()) {
            return false;
        }
        tracing::debug!(
            ?wait,
            round = *round,
            "the service is still finishing an operation; waiting"
        );
        tokio::time::sleep(wait).await;
        true
    }

    /// Whether wait number `round` (from 1), lasting `wait` from `now`, is allowed.
    fn may_wait(
        &self,
        round: u32,
        wait: Duration,
        deadline: Option<tokio::time::Instant>,
        now: tokio::time::Instant,
    ) -> bool {
        round <= self.rounds && ends_before(deadline, now, wait)
    }
}

/// Whether `span` from now ends before the deadline of the operation running in this
/// task ([`layers::deadline`](crate::layers::deadline)); always `true` without one. A
/// backend waiting on its own terms (a total budget, a margin for the look after the
/// wait) checks the deadline with this.
pub fn ends_before_deadline(span: Duration) -> bool {
    ends_before(crate::layers::deadline(), tokio::time::Instant::now(), span)
}

fn ends_before(deadline: Option<tokio::time::Instant>, now: tokio::time::Instant, span: Duration) -> bool {
    deadline.is_none_or(|d| now + span < d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Polling = Polling::doubling(Duration::from_millis(100), Duration::from_secs(2), 3);

    #[test]
    fn waits_double_up_to_the_longest() {
        let waits: Vec<_> = (0..7).map(|r| POLL.wait(r).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            Polling::constant(Duration::from_millis(100), 9).wait(5),
            Duration::from_millis(100)
        );
        let unbounded = Polling::doubling(Duration::from_millis(250), Duration::MAX, 5);
        assert_eq!(unbounded.wait(4), Duration::from_secs(4));
        assert_eq!(unbounded.wait(u32::MAX), Duration::from_millis(250) * 65_536);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_stop_after_the_rounds() {
        let mut round = 0;
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            assert!(POLL.pause(&mut round).await);
        }
        assert_eq!(start.elapsed(), Duration::from_millis(700));
        assert!(!POLL.pause(&mut round).await);
        assert_eq!(start.elapsed(), Duration::from_millis(700), "no wait when giving up");
    }

    #[test]
    fn no_wait_reaches_the_deadline() {
        let now = tokio::time::Instant::now();
        let wait = Duration::from_millis(400);
        assert!(POLL.may_wait(1, wait, None, now));
        assert!(POLL.may_wait(1, wait, Some(now + wait + Duration::from_millis(1)), now));
        assert!(
            !POLL.may_wait(1, wait, Some(now + wait), now),
            "a wait ending at the deadline"
        );
        assert!(!POLL.may_wait(4, wait, None, now), "past the rounds");
        assert!(
            ends_before_deadline(Duration::from_secs(3600)),
            "no deadline outside a Timeout layer"
        );
    }
}
