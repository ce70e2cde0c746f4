//! `CredentialWatch` health: what subscribers learn while polls fail (outage, revoked
//! access, throttling) and when they answer again, with and without a cache, over a
//! counting in-memory backend whose reads can be made to fail. Tokio's paused clock:
//! no wall-clock thresholds.

#[path = "cache/support.rs"]
mod support;
#[path = "cache/watching.rs"]
mod watching;

use std::time::Duration;

use nebula_credential_core::cache::{Change, WatchEvent, WatchHealth};
use nebula_credential_core::{ErrorKind, Tags};
use support::{Counting, Failure, id};
use watching::{ONE_POLL, next, quiet, reads, stores};

fn version(change: &Change) -> u64 {
    match change {
        Change::Present { metadata, .. } => metadata.version,
        other => panic!("expected a present credential, got {other:?}"),
    }
}

/// An outage: one `Failing` event with the kind and a count of 1, the counters growing
/// in place while it lasts (one failure per poll, no event per poll), `changed` waiting
/// through it; then one `Recovered` with the run's figures, and the change made meanwhile.
async fn outage_then_recovery(cached: bool) {
    let backend = Counting::new();
    let (store, other) = stores(&backend, cached);
    let id = id("db_password");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut events = store.watch(&id).await.unwrap();
    let mut changes = store.watch(&id).await.unwrap();
    assert_eq!(events.health(), WatchHealth::Healthy);

    let before = reads(&backend);
    backend.fail_reads(Some(Failure::Unavailable));
    let WatchEvent::Failing(first) = next(&mut events).await else {
        panic!("expected Failing")
    };
    assert_eq!((first.kind, first.failures), (ErrorKind::Unavailable, 1), "{first}");
    assert!(first.is_transient() && !first.is_access_denied());
    assert!(first.message.contains("'db_password'"), "{}", first.message);
    assert_eq!(first.duration(), Duration::ZERO);

    // Rotated by another writer during the outage: nobody can see it yet.
    other.put(&id, b"v2", Tags::new()).await.unwrap();
    quiet(&mut events, Duration::from_secs(10)).await;
    let WatchHealth::Failing(now) = events.health() else {
        panic!("{:?}", events.health())
    };
    assert_eq!(now.failures, reads(&backend) - before, "one failure per poll");
    assert!(now.failures >= 9, "{now}");
    assert_eq!(now.since, first.since);
    assert!(now.last >= now.since);
    assert!(now.duration() >= Duration::from_secs(8), "{:?}", now.duration());
    assert_eq!(changes.health(), events.health(), "every watch sees the same health");
    assert!(
        tokio::time::timeout(ONE_POLL, changes.changed()).await.is_err(),
        "changed() keeps waiting through the outage"
    );

    backend.fail_reads(None);
    let WatchEvent::Recovered(ended) = next(&mut events).await else {
        panic!("expected Recovered")
    };
    assert_eq!(ended.kind, ErrorKind::Unavailable);
    assert_eq!(ended.since, first.since);
    assert!(ended.failures >= now.failures, "{ended}");
    let WatchEvent::Changed(change) = next(&mut events).await else {
        panic!("expected the change made during the outage")
    };
    assert_eq!(version(&change), 2);
    assert!(events.health().is_healthy());
    let change = tokio::time::timeout(ONE_POLL, changes.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(version(&change), 2, "changed() delivers it too");
    quiet(&mut events, Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_reported_with_kind_and_count_and_recovery_delivers_the_change_made_meanwhile() {
    outage_then_recovery(true).await;
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_reported_the_same_without_a_cache() {
    outage_then_recovery(false).await;
}

/// Access revoked mid-outage: a second `Failing` with the new kind (the run and its count
/// go on), a `while let Ok(change) = watch.changed().await` loop that does not end, and
/// once access is back, the change made meanwhile reaches that loop. Dropping the store
/// ends every watch.
async fn revoked_access(cached: bool) {
    let backend = Counting::new();
    let (store, other) = stores(&backend, cached);
    let id = id("api_key");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut looped = store.watch(&id).await.unwrap();
    let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
    let service = tokio::spawn(async move {
        while let Ok(change) = looped.changed().await {
            seen.send(change).unwrap();
        }
    });
    let mut events = store.watch(&id).await.unwrap();

    backend.fail_reads(Some(Failure::Unavailable));
    let WatchEvent::Failing(outage) = next(&mut events).await else {
        panic!("expected Failing")
    };
    backend.fail_reads(Some(Failure::PermissionDenied));
    let WatchEvent::Failing(denied) = next(&mut events).await else {
        panic!("expected Failing with the new kind")
    };
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);
    assert!(denied.is_access_denied() && !denied.is_transient());
    assert!(denied.failures >= 2, "the run goes on: {denied}");
    assert_eq!(denied.since, outage.since);
    assert!(denied.message.contains("grant read access"), "{}", denied.message);

    quiet(&mut events, Duration::from_secs(20)).await;
    assert!(!service.is_finished(), "revoked access does not end changed()");
    assert!(received.try_recv().is_err());
    assert_eq!(
        events.health().failure().map(|f| f.kind),
        Some(ErrorKind::PermissionDenied)
    );

    other.put(&id, b"v2", Tags::new()).await.unwrap();
    backend.fail_reads(None);
    let WatchEvent::Recovered(ended) = next(&mut events).await else {
        panic!("expected Recovered")
    };
    assert_eq!(ended.kind, ErrorKind::PermissionDenied);
    let WatchEvent::Changed(change) = next(&mut events).await else {
        panic!("expected Changed")
    };
    assert_eq!(version(&change), 2);
    let change = tokio::time::timeout(ONE_POLL, received.recv()).await.unwrap().unwrap();
    assert_eq!(version(&change), 2, "the service loop got the change");
    assert!(!service.is_finished());

    drop(store);
    tokio::time::timeout(ONE_POLL, service)
        .await
        .expect("dropping the store ends changed()")
        .unwrap();
    assert!(events.next_event().await.is_err(), "and next_event()");
    // The rest keep their last values (what the CredentialWatch docs say).
    assert!(events.health().is_healthy(), "{:?}", events.health());
    assert_eq!(version(&events.current()), 2);
}

#[tokio::test(start_paused = true)]
async fn revoked_access_is_reported_and_never_ends_the_changed_loop() {
    revoked_access(true).await;
}

#[tokio::test(start_paused = true)]
async fn revoked_access_is_reported_the_same_without_a_cache() {
    revoked_access(false).await;
}

#[tokio::test(start_paused = true)]
async fn many_subscribers_share_one_poller_and_each_hears_each_transition_once() {
    let backend = Counting::new();
    let (store, other) = stores(&backend, true);
    let id = id("db_password");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..20 {
        watches.push(store.watch(&id).await.unwrap());
    }
    backend.fail_reads(Some(Failure::Unavailable));
    for w in &mut watches {
        assert!(matches!(next(w).await, WatchEvent::Failing(f) if f.failures == 1));
    }
    let before = reads(&backend);
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let polls = reads(&backend) - before;
    assert!(
        (9..=12).contains(&polls),
        "{polls} polls in 10.5 periods for 20 watches"
    );
    assert_eq!(store.watched(), 1);

    // A watch joining the failing poller learns it at once (no backend read needed);
    // a watch of another id cannot start: its first read fails.
    let mut late = store.watch(&id).await.unwrap();
    assert!(!late.health().is_healthy());
    assert!(matches!(
        tokio::time::timeout(Duration::ZERO, late.next_event()).await,
        Ok(Ok(WatchEvent::Failing(_)))
    ));
    let err = store.watch(&support::id("other")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    watches.push(late);

    backend.fail_reads(None);
    for w in &mut watches {
        assert!(matches!(next(w).await, WatchEvent::Recovered(_)));
    }
    for w in &mut watches {
        quiet(w, Duration::ZERO).await;
    }
    quiet(&mut watches[0], Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn the_last_watch_dropped_during_an_outage_stops_the_poller() {
    let backend = Counting::new();
    let (store, other) = stores(&backend, false);
    let id = id("db_password");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut first = store.watch(&id).await.unwrap();
    let second = store.watch(&id).await.unwrap();
    backend.fail_reads(Some(Failure::Unavailable));
    assert!(matches!(next(&mut first).await, WatchEvent::Failing(_)));
    drop(first);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.watched(), 1, "one watch still holds the poller");
    drop(second);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.watched(), 0, "the poller stopped with the last watch");
    let before = reads(&backend);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(reads(&backend), before, "nothing polls any more");

    // A new watch starts afresh and healthy, once the backend answers.
    backend.fail_reads(None);
    let mut again = store.watch(&id).await.unwrap();
    assert!(again.health().is_healthy());
    quiet(&mut again, Duration::from_secs(3)).await;
}

#[tokio::test(start_paused = true)]
async fn throttled_polls_back_off_and_recover_their_period() {
    let backend = Counting::new();
    let (store, other) = stores(&backend, true);
    let id = id("db_password");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut watch = store.watch(&id).await.unwrap();
    backend.fail_reads(Some(Failure::Throttled));
    let WatchEvent::Failing(throttled) = next(&mut watch).await else {
        panic!("expected Failing")
    };
    assert_eq!(throttled.kind, ErrorKind::Throttled);
    // Pauses of 1, 2, 4, 8, 8, … periods (±10 %): about 10 polls in the next minute,
    // against 60 at the poll period.
    let before = reads(&backend);
    quiet(&mut watch, Duration::from_secs(60)).await;
    let polls = reads(&backend) - before;
    assert!((6..=10).contains(&polls), "{polls} throttled polls in 60 s");

    backend.fail_reads(None);
    let recovered = tokio::time::timeout(Duration::from_secs(10), watch.next_event()).await;
    assert!(matches!(recovered, Ok(Ok(WatchEvent::Recovered(_)))), "{recovered:?}");
    let before = reads(&backend);
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let polls = reads(&backend) - before;
    assert!((9..=12).contains(&polls), "{polls} polls in 10.5 periods once answered");
}

/// With no failure at all, `next_event` is a change feed; mixed with `changed`, each
/// change is reported once, by whichever asked first.
async fn changes_as_events(cached: bool) {
    let backend = Counting::new();
    let (store, other) = stores(&backend, cached);
    let id = id("token");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut watch = store.watch(&id).await.unwrap();
    other.put(&id, b"v2", Tags::new()).await.unwrap();
    let WatchEvent::Changed(change) = next(&mut watch).await else {
        panic!("expected Changed")
    };
    assert_eq!(version(&change), 2);
    other.put(&id, b"v3", Tags::new()).await.unwrap();
    let change = tokio::time::timeout(ONE_POLL, watch.changed()).await.unwrap().unwrap();
    assert_eq!(version(&change), 3);
    quiet(&mut watch, Duration::from_secs(3)).await;

    // A recovery that brings a change: `Recovered` from next_event, the change from changed().
    backend.fail_reads(Some(Failure::Unavailable));
    assert!(matches!(next(&mut watch).await, WatchEvent::Failing(_)));
    other.put(&id, b"v4", Tags::new()).await.unwrap();
    backend.fail_reads(None);
    assert!(matches!(next(&mut watch).await, WatchEvent::Recovered(_)));
    let change = tokio::time::timeout(Duration::ZERO, watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(version(&change), 4);
    quiet(&mut watch, Duration::from_secs(3)).await;
    other.delete(&id).await.unwrap();
    assert_eq!(next(&mut watch).await, WatchEvent::Changed(Change::Deleted));
}

#[tokio::test(start_paused = true)]
async fn next_event_reports_each_change_once_alongside_changed() {
    changes_as_events(true).await;
}

#[tokio::test(start_paused = true)]
async fn next_event_reports_each_change_once_without_a_cache() {
    changes_as_events(false).await;
}
