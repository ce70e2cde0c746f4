//! `CredentialWatch` health in the logs: one warning per transition, one info line on
//! recovery, never a secret. Alone in its test binary: a subscriber set for one thread
//! misses events when other tests hit the same callsites at once.

#[path = "support/logs.rs"]
mod logs;
#[path = "cache/support.rs"]
mod support;
#[path = "cache/watching.rs"]
mod watching;

use std::time::Duration;

use logs::Captured;
use nebula_credential_core::{ErrorKind, Tags};
use support::{Counting, Failure, id};
use watching::{next, quiet, stores};

/// Lines of the watch's health logs at `level`.
fn lines(captured: &Captured, level: &str) -> Vec<String> {
    captured
        .text()
        .lines()
        .filter(|l| l.contains(level) && l.contains("watch poll"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn logs_warn_once_per_transition_and_say_when_polls_answer_again() {
    const CANARY: &[u8] = b"CANARY-5d1e-never-logged";
    let (captured, _guard) = Captured::install(tracing::Level::INFO);

    let backend = Counting::new();
    let (store, other) = stores(&backend, true);
    let id = id("db_password");
    other.put(&id, CANARY, Tags::new()).await.unwrap();
    let mut watch = store.watch(&id).await.unwrap();
    backend.fail_reads(Some(Failure::Unavailable));
    next(&mut watch).await;
    quiet(&mut watch, Duration::from_secs(30)).await;
    assert_eq!(lines(&captured, "WARN").len(), 1, "30 failed polls, one warning");
    // An outage that turns into throttling is the same outage: no event, no warning.
    backend.fail_reads(Some(Failure::Throttled));
    quiet(&mut watch, Duration::from_secs(60)).await;
    assert_eq!(lines(&captured, "WARN").len(), 1, "throttled polls within the outage");
    assert_eq!(watch.health().failure().map(|f| f.kind), Some(ErrorKind::Throttled));
    // Back to unavailable (which ends the throttling back-off): still the same outage.
    backend.fail_reads(Some(Failure::Unavailable));
    quiet(&mut watch, Duration::from_secs(30)).await;
    assert_eq!(lines(&captured, "WARN").len(), 1, "unavailable again within the outage");
    backend.fail_reads(Some(Failure::PermissionDenied));
    next(&mut watch).await;
    quiet(&mut watch, Duration::from_secs(30)).await;
    let warnings = lines(&captured, "WARN");
    assert_eq!(warnings.len(), 2, "one more for the new kind: {warnings:#?}");
    assert!(warnings[0].contains("error.kind=\"unavailable\""), "{}", warnings[0]);
    assert!(
        warnings[1].contains("error.kind=\"permission_denied\""),
        "{}",
        warnings[1]
    );
    assert!(warnings[1].contains("previous_kind=\"unavailable\""), "{}", warnings[1]);
    assert!(lines(&captured, "INFO").is_empty());
    backend.fail_reads(None);
    next(&mut watch).await;
    let info = lines(&captured, "INFO");
    assert_eq!(info.len(), 1, "{info:#?}");
    assert!(info[0].contains("answers again") && info[0].contains("credential_id=\"db_password\""));
    let everything = captured.text();
    assert!(!everything.contains(std::str::from_utf8(CANARY).unwrap()));
}
