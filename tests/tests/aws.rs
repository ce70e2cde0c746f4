//! The AWS Secrets Manager provider against moto, through `open()`'s full layer stack:
//! the conformance suite (with foreign secrets planted by the raw SDK and other tools'
//! tags; moto has no read-only or rejected identity and no TLS, see the row), then what only
//! AWS shows (tags, KMS, pagination, recovery windows and tombstones, request counts).
//! The untrusted-TLS check runs in the crate's own tests (`crates/nebula-credential-aws/tests/tls.rs`).
#![cfg(feature = "aws")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use nebula_credential::aws::{AwsSecretsManagerConfig, DeleteMode};
use nebula_credential::{CredentialFilter, CredentialId, StorageConfig, StorageError, StorageProvider};
use nebula_credential_core::conformance::{data, id, meta, tagged};
use nebula_credential_core::{BoxError, Precondition};
use nebula_credential_tests::aws::{self, FOREIGN_VALUE, client as aws_client, config, provider};
use nebula_credential_tests::{cleanup, unique};

nebula_credential_core::conformance_tests!(
    aws_via_open,
    |namespace: String| async move { provider(config(&namespace)).await },
    foreign = aws::Foreign,
    read_only = absent(aws::READ_ONLY_ABSENT),
    rejected = absent(aws::REJECTED_ABSENT),
    untrusted_ca = absent(aws::UNTRUSTED_CA_ABSENT),
    other_tools = aws::OtherTools,
);

async fn aws_tags(name: &str) -> BTreeMap<String, String> {
    aws::tags(name).await.expect("describe")
}

async fn force_delete(name: &str) {
    aws::force_delete(name).await.expect("force delete");
}

#[tokio::test]
async fn tags_are_visible_with_describe_secret_and_synced_on_overwrite() {
    let ns = unique("tags");
    let mut c = config(&ns);
    c.default_tags = BTreeMap::from([("org:team".to_string(), "payments".to_string())]);
    let p = provider(c).await;
    let k = id("tagged");
    let name = format!("nebula-test/{ns}/tagged");
    p.store(&k, &data(1), &tagged(&[("env", "prod"), ("tier", "1"), ("city", "🚀")]))
        .await
        .unwrap();
    let tags = aws_tags(&name).await;
    assert_eq!(tags["env"], "prod");
    assert_eq!(tags["tier"], "1");
    assert!(
        tags["city"].starts_with("sha256:"),
        "values AWS cannot hold are digests"
    );
    assert_eq!(tags["org:team"], "payments");
    assert_eq!(tags["nebula-credential:managed"], "true");
    assert!(tags.contains_key("nebula-credential:created-at"));

    p.store(&k, &data(2), &tagged(&[("env", "staging")])).await.unwrap();
    let tags = aws_tags(&name).await;
    assert_eq!(tags["env"], "staging");
    assert!(
        !tags.contains_key("tier") && !tags.contains_key("city"),
        "removed tags are untagged: {tags:?}"
    );
    assert_eq!(tags["org:team"], "payments");
    assert_eq!(
        p.list(&CredentialFilter::new().tag("env", "staging")).await.unwrap(),
        vec![k.clone()]
    );
    assert!(
        p.list(&CredentialFilter::new().tag("env", "prod"))
            .await
            .unwrap()
            .is_empty()
    );
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn the_kms_key_id_is_applied() {
    let ns = unique("kms");
    let p = provider(AwsSecretsManagerConfig {
        kms_key_id: Some("alias/nebula-test".into()),
        ..config(&ns)
    })
    .await;
    p.store(&id("sealed"), &data(1), &meta()).await.unwrap();
    let d = aws_client()
        .describe_secret()
        .secret_id(format!("nebula-test/{ns}/sealed"))
        .send()
        .await
        .unwrap();
    assert_eq!(d.kms_key_id(), Some("alias/nebula-test"));
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn list_pages_through_120_credentials() {
    let ns = unique("pages");
    let p = provider(AwsSecretsManagerConfig {
        list_page_size: 7,
        ..config(&ns)
    })
    .await;
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                let group = if i % 10 == 0 { "tenth" } else { "rest" };
                p.store(
                    &id(&format!("item_{i:03}")),
                    &data(i as u8),
                    &tagged(&[("group", group)]),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = p.list(&CredentialFilter::new()).await.unwrap();
    let expected: Vec<CredentialId> = (0..120).map(|i| id(&format!("item_{i:03}"))).collect();
    assert_eq!(all, expected, "17+ pages of 7, sorted, nothing lost or doubled");
    assert_eq!(
        p.list(&CredentialFilter::new().tag("group", "tenth"))
            .await
            .unwrap()
            .len(),
        12
    );
    assert_eq!(
        p.list(&CredentialFilter::new().id_prefix("item_11"))
            .await
            .unwrap()
            .len(),
        10
    );
    cleanup(p.as_ref()).await;
}

/// A recovery-window delete leaves only a tombstone behind: AWS's own `RestoreSecret`
/// brings back the tombstone (read as not found), never the deleted value, and storing
/// the id again works.
#[tokio::test]
async fn a_restore_after_a_recovery_window_delete_brings_back_only_a_tombstone() {
    let ns = unique("window");
    let p = provider(AwsSecretsManagerConfig {
        delete_mode: DeleteMode::Soft,
        recovery_window_days: 7,
        ..config(&ns)
    })
    .await;
    let k = id("phoenix");
    let name = format!("nebula-test/{ns}/phoenix");
    p.store(&k, &data(1), &tagged(&[("gen", "1")])).await.unwrap();
    p.delete(&k).await.unwrap();
    let d = aws_client().describe_secret().secret_id(&name).send().await.unwrap();
    assert!(d.deleted_date().is_some(), "scheduled, not gone");
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert!(!p.exists(&k).await.unwrap());
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    p.delete(&k).await.expect("deleting again is fine");

    aws_client().restore_secret().secret_id(&name).send().await.unwrap();
    let raw = aws_client()
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    assert!(
        !raw.secret_string().unwrap_or_default().contains("ciphertext"),
        "the restored current version holds no record"
    );
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert!(!p.exists(&k).await.unwrap());
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());

    p.store(&k, &data(2), &tagged(&[("gen", "2")]))
        .await
        .expect("store again");
    let (got, meta) = p.retrieve(&k).await.unwrap().into_parts();
    assert_eq!((got, meta.tags["gen"].as_str()), (data(2), "2"));
    p.delete(&k).await.unwrap();
    // Created anew over the tombstone: store_if(Absent) counts a deleted id as absent.
    p.store_if(&k, &data(3), &meta, &Precondition::Absent)
        .await
        .expect("a deleted id is absent");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(3));
    force_delete(&name).await;
}

/// Readers racing delete → store cycles (recovery window) see a value or `NotFound`,
/// never an error, and never a value whose delete was acknowledged before they read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_value_never_comes_back_to_concurrent_readers() {
    let ns = unique("revoke");
    let p = provider(AwsSecretsManagerConfig {
        delete_mode: DeleteMode::Soft,
        recovery_window_days: 7,
        ..config(&ns)
    })
    .await;
    let k = id("leaked");
    const CYCLES: u8 = 30;
    p.store(&k, &data(1), &meta()).await.unwrap();
    // Generations up to this one have been deleted (acknowledged).
    let deleted = Arc::new(AtomicU8::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (p, k, deleted, done) = (p.clone(), k.clone(), deleted.clone(), done.clone());
            tokio::spawn(async move {
                let (mut values, mut missing) = (0u32, 0u32);
                while !done.load(Ordering::SeqCst) {
                    let floor = deleted.load(Ordering::SeqCst);
                    match p.retrieve(&k).await {
                        Ok(s) => {
                            let generation = s.data.nonce[0];
                            assert!(
                                generation > floor,
                                "read generation {generation} after its delete was acknowledged (deleted up to {floor})"
                            );
                            values += 1;
                        }
                        Err(StorageError::NotFound { .. }) => missing += 1,
                        Err(e) => panic!("a read racing delete/store failed: {e}"),
                    }
                }
                (values, missing)
            })
        })
        .collect();
    for generation in 1..CYCLES {
        p.delete(&k).await.unwrap();
        deleted.store(generation, Ordering::SeqCst);
        p.store(&k, &data(generation + 1), &meta()).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (mut values, mut missing) = (0, 0);
    for r in readers {
        let (v, m) = r.await.unwrap();
        values += v;
        missing += m;
    }
    println!("{CYCLES} cycles: {values} reads returned a live value, {missing} NotFound, 0 errors");
    assert!(values + missing > 0);
    force_delete(&format!("nebula-test/{ns}/leaked")).await;
}

#[tokio::test]
async fn foreign_secrets_in_the_same_account_are_never_listed_or_touched() {
    let ns = unique("foreign");
    let prefix = format!("nebula-test/{ns}/");
    let raw = aws_client();
    for name in [
        format!("{prefix}foreign"),
        format!("{prefix}deep/path"),
        format!("nebula-test/{ns}-other/x"),
    ] {
        raw.create_secret()
            .name(name)
            .secret_string(FOREIGN_VALUE)
            .send()
            .await
            .unwrap();
    }
    let p = provider(AwsSecretsManagerConfig {
        delete_mode: DeleteMode::Soft,
        recovery_window_days: 7,
        ..config(&ns)
    })
    .await;
    p.store(&id("mine"), &data(1), &meta()).await.unwrap();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![id("mine")]);
    let k = id("foreign");
    for (op, outcome) in [
        ("exists", p.exists(&k).await.map(drop)),
        ("retrieve", p.retrieve(&k).await.map(drop)),
        ("store", p.store(&k, &data(1), &meta()).await.map(drop)),
        ("delete", p.delete(&k).await),
    ] {
        let err = outcome.expect_err(op);
        assert!(err.is_conflict(), "{op}: {err}");
        assert!(err.to_string().contains(&format!("{prefix}foreign")), "{op}: {err}");
    }
    let untouched = raw
        .get_secret_value()
        .secret_id(format!("{prefix}foreign"))
        .send()
        .await
        .unwrap();
    assert_eq!(untouched.secret_string(), Some(FOREIGN_VALUE));
    p.delete(&id("mine")).await.unwrap();
    for name in [
        format!("{prefix}mine"),
        format!("{prefix}foreign"),
        format!("{prefix}deep/path"),
        format!("nebula-test/{ns}-other/x"),
    ] {
        force_delete(&name).await;
    }
}

/// The harness's moto keeps one `AWSCURRENT` (and each label on one version) as real AWS
/// does, through the raw SDK alone: a stage move, then a plain put. moto 5.2.5/5.2.6 as
/// released leave two versions labelled `AWSCURRENT` and read back the older value; xtask
/// patches that (test-servers/moto/README.md).
#[tokio::test]
async fn the_harness_moto_moves_awscurrent_as_aws_does() {
    let name = format!("nebula-test/{}/stages", unique("moto"));
    let raw = aws_client();
    let (a, b, c) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
    raw.create_secret()
        .name(&name)
        .secret_string("v1")
        .client_request_token(&a)
        .send()
        .await
        .unwrap();
    raw.put_secret_value()
        .secret_id(&name)
        .secret_string("v2")
        .client_request_token(&b)
        .version_stages("PENDING")
        .send()
        .await
        .unwrap();
    raw.update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&b)
        .remove_from_version_id(&a)
        .send()
        .await
        .unwrap();
    raw.put_secret_value()
        .secret_id(&name)
        .secret_string("v3")
        .client_request_token(&c)
        .send()
        .await
        .unwrap();
    let d = raw.describe_secret().secret_id(&name).send().await.unwrap();
    let stages: BTreeMap<String, Vec<String>> = d
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .map(|(v, l)| {
            let mut l = l.clone();
            l.sort();
            (v.clone(), l)
        })
        .collect();
    let current: Vec<&String> = stages
        .iter()
        .filter(|(_, l)| l.contains(&"AWSCURRENT".to_string()))
        .map(|(v, _)| v)
        .collect();
    assert_eq!(current, [&c], "one AWSCURRENT, on the last put: {stages:?}");
    assert_eq!(stages[&b], ["AWSPREVIOUS", "PENDING"], "{stages:?}");
    let got = raw
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("v3"));
    force_delete(&name).await;
}

/// The conformance case of overwrite → delete → re-put under concurrent readers, with a
/// recovery window (tombstones, `RestoreSecret`) instead of the suite's forced deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_deleted_or_older_values_with_a_recovery_window() {
    nebula_credential_core::conformance::run(
        "readers_recovery_window",
        |namespace: String| async move {
            provider(AwsSecretsManagerConfig {
                delete_mode: DeleteMode::Soft,
                recovery_window_days: 7,
                ..config(&namespace)
            })
            .await
        },
        None,
        |fx| Box::pin(nebula_credential_core::conformance::cases::readers_never_see_deleted_or_older_values(fx)),
    )
    .await;
}

/// Every request the SDK client sends, by operation (`GetSecretValue`, …).
#[derive(Debug, Clone, Default)]
struct Calls(Arc<std::sync::Mutex<Vec<String>>>);

impl Calls {
    /// The operations sent since the last call, in order.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl aws_sdk_secretsmanager::config::Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_secretsmanager::config::RuntimeComponents,
        _: &mut aws_sdk_secretsmanager::config::ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        let operation = target.strip_prefix("secretsmanager.").unwrap_or(target);
        self.0.lock().unwrap().push(operation.to_string());
        Ok(())
    }
}

/// The provider over a client that records every request it sends.
fn counted(c: AwsSecretsManagerConfig) -> (nebula_credential::aws::AwsSecretsManagerProvider, Calls) {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let calls = Calls::default();
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(aws::endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            .interceptor(calls.clone())
            .build(),
    );
    let p = nebula_credential::aws::AwsSecretsManagerProvider::with_client(client, c).expect("provider");
    (p, calls)
}

/// A read is one `GetSecretValue` when its version id proves the value is ours (every
/// version this library writes), also for a tombstone; `DescribeSecret` settles only what
/// that answer cannot: another tool's value in our secret, a copy of our record under
/// another id, a secret scheduled for deletion, a foreign secret. Writes cost what the
/// README says.
#[tokio::test]
async fn a_read_is_one_get_secret_value_unless_the_answer_cannot_prove_it_is_ours() {
    let ns = unique("calls");
    let (p, calls) = counted(AwsSecretsManagerConfig {
        delete_mode: DeleteMode::Soft,
        recovery_window_days: 7,
        ..config(&ns)
    });
    let ops = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let (k, other) = (id("counted"), id("copied"));
    let name = |k: &CredentialId| format!("nebula-test/{ns}/{k}");
    // One metadata throughout (an overwrite keeps created_at, as CredentialStore does), so
    // the tags stay as they are and no TagResource is due.
    let m = meta();
    let first = p.store(&k, &data(1), &m).await.unwrap();
    assert_eq!(calls.take(), ops(&["DescribeSecret", "CreateSecret"]));
    let second = p.store(&k, &data(2), &m).await.unwrap();
    assert_eq!(
        calls.take(),
        ops(&["DescribeSecret", "PutSecretValue", "UpdateSecretVersionStage"]),
        "an overwrite: look, write under the pending label, make it current"
    );
    p.store_if(&k, &data(3), &m, &Precondition::Revision(second.clone()))
        .await
        .unwrap();
    assert_eq!(
        calls.take(),
        ops(&["DescribeSecret", "PutSecretValue", "UpdateSecretVersionStage"]),
        "a conditional store costs what an overwrite does"
    );
    assert_ne!(first, second);
    for _ in 0..5 {
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(3));
    }
    assert_eq!(calls.take(), ops(&["GetSecretValue"; 5]), "one call per read");

    // Another tool puts a value into our secret: not provably ours, so DescribeSecret
    // decides (ours by the marker; the value is not a record).
    let raw = aws_client();
    raw.put_secret_value()
        .secret_id(name(&k))
        .secret_string("set by hand")
        .send()
        .await
        .unwrap();
    calls.take();
    let err = p.retrieve(&k).await.unwrap_err();
    assert!(matches!(err, StorageError::Corrupted { .. }), "{err}");
    assert_eq!(calls.take(), ops(&["GetSecretValue", "DescribeSecret"]));

    // A copy of our record under another of our ids: the digest names the secret, so the
    // copy is not taken as written there; the record names another credential.
    p.store(&k, &data(4), &m).await.unwrap();
    p.store(&other, &data(5), &m).await.unwrap();
    let ours = raw.get_secret_value().secret_id(name(&k)).send().await.unwrap();
    raw.put_secret_value()
        .secret_id(name(&other))
        .secret_string(ours.secret_string().unwrap())
        .client_request_token(ours.version_id().unwrap())
        .send()
        .await
        .unwrap();
    calls.take();
    let err = p.retrieve(&other).await.unwrap_err();
    assert!(matches!(err, StorageError::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains("holds credential 'counted'"), "{err}");
    assert_eq!(calls.take(), ops(&["GetSecretValue", "DescribeSecret"]));

    // Deleted with a recovery window: AWS refuses the read, DescribeSecret confirms.
    p.delete(&k).await.unwrap();
    assert_eq!(
        calls.take(),
        ops(&[
            "DescribeSecret",
            "PutSecretValue",
            "UpdateSecretVersionStage",
            "DeleteSecret"
        ]),
        "a tombstone is written like any version"
    );
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert_eq!(calls.take(), ops(&["GetSecretValue", "DescribeSecret"]));
    // Restored by hand: the current version is our tombstone, provably, so one call.
    raw.restore_secret().secret_id(name(&k)).send().await.unwrap();
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert_eq!(calls.take(), ops(&["GetSecretValue"]));
    assert!(matches!(
        p.retrieve(&id("never_stored")).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(calls.take(), ops(&["GetSecretValue"]));

    // A foreign secret under our name: DescribeSecret finds no marker.
    raw.create_secret()
        .name(name(&id("planted")))
        .secret_string(FOREIGN_VALUE)
        .send()
        .await
        .unwrap();
    let err = p.retrieve(&id("planted")).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    for n in ["counted", "copied", "planted"] {
        force_delete(&name(&id(n))).await;
    }
}

/// Marker tag of our secrets (`TagScheme::DEFAULT.managed_key`).
const MARKER: &str = "nebula-credential:managed";

/// An operator removes or changes the marker on a secret this library wrote: from then on
/// `exists`, `store`, `delete` and `list` refuse it (`Conflict`, or not listed). `retrieve`
/// is one `GetSecretValue`, which cannot see tags: it goes on reading the value this
/// library wrote there (its version id proves that) until another value is put, then it
/// answers `Conflict` too. The README says so and gives the IAM condition that closes it on
/// AWS at no cost (mocked: `a_read_refused_by_an_iam_condition_on_the_marker_is_a_conflict`).
#[tokio::test]
async fn a_secret_whose_marker_was_removed_or_changed_is_refused_once_not_provably_ours() {
    let ns = unique("unmarked");
    let p = provider(config(&ns)).await;
    let raw = aws_client();
    for (n, how) in [("removed", None), ("changed", Some("false"))] {
        let k = id(n);
        let name = format!("nebula-test/{ns}/{n}");
        p.store(&k, &data(1), &meta()).await.unwrap();
        p.store(&k, &data(2), &meta()).await.unwrap();
        match how {
            None => {
                raw.untag_resource()
                    .secret_id(&name)
                    .tag_keys(MARKER)
                    .send()
                    .await
                    .unwrap();
            }
            Some(v) => {
                raw.tag_resource()
                    .secret_id(&name)
                    .tags(
                        aws_sdk_secretsmanager::types::Tag::builder()
                            .key(MARKER)
                            .value(v)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
        assert!(p.exists(&k).await.unwrap_err().is_conflict(), "{n}");
        assert!(p.store(&k, &data(3), &meta()).await.unwrap_err().is_conflict(), "{n}");
        assert!(p.delete(&k).await.unwrap_err().is_conflict(), "{n}");
        assert!(
            p.list(&CredentialFilter::new()).await.unwrap().iter().all(|i| i != &k),
            "{n}"
        );
        assert_eq!(
            p.retrieve(&k).await.unwrap().data,
            data(2),
            "{n}: the value this library wrote is still read (documented)"
        );
        // The tool that took the secret over writes its own value: refused from then on.
        raw.put_secret_value()
            .secret_id(&name)
            .secret_string(FOREIGN_VALUE)
            .send()
            .await
            .unwrap();
        let err = p.retrieve(&k).await.map(|s| s.data).unwrap_err();
        assert!(err.is_conflict(), "{n}: {err}");
        force_delete(&name).await;
    }
}

/// Someone else (the console, the CLI) schedules our secret for deletion, without the
/// tombstone our own delete writes first: the credential is absent, so a create
/// (`store_if(Absent)`) succeeds and never brings the deleted value back.
#[tokio::test]
async fn a_create_over_a_secret_deleted_by_someone_else_never_revives_the_old_value() {
    let ns = unique("opdel");
    let p = provider(AwsSecretsManagerConfig {
        delete_mode: DeleteMode::Soft,
        recovery_window_days: 7,
        ..config(&ns)
    })
    .await;
    let k = id("gone");
    let name = format!("nebula-test/{ns}/gone");
    p.store(&k, &data(1), &meta()).await.unwrap();
    aws_client()
        .delete_secret()
        .secret_id(&name)
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert!(!p.exists(&k).await.unwrap());
    let created = p.store_if(&k, &data(2), &meta(), &Precondition::Absent).await;
    let now = p.retrieve(&k).await.map(|s| s.data);
    assert!(
        created.is_ok(),
        "a deleted credential is absent: {created:?}, and now reads {now:?}"
    );
    assert_eq!(now.unwrap(), data(2));
    // A conditional store at the old revision stays refused and revives nothing.
    p.delete(&k).await.unwrap();
    force_delete(&name).await;
}

/// A store racing a delete of the same id (forced, or with a recovery window) and a create
/// lands (re-creating or restoring the secret) or is overwritten; it never answers
/// `NotFound`, the delete always succeeds, the create succeeds or answers `Conflict`, and
/// afterwards `exists` and `retrieve` agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_racing_a_delete_and_a_create_never_answers_not_found() {
    for (delete_mode, recovery_window_days) in [(DeleteMode::Purge, 7), (DeleteMode::Soft, 7)] {
        let ns = unique("stdel");
        let p = provider(AwsSecretsManagerConfig {
            delete_mode,
            recovery_window_days,
            ..config(&ns)
        })
        .await;
        let k = id("raced");
        let mut failures = Vec::new();
        for round in 0..30u8 {
            p.store(&k, &data(round), &meta()).await.unwrap();
            let (a, b, c) = (p.clone(), p.clone(), p.clone());
            let (ka, kb, kc) = (k.clone(), k.clone(), k.clone());
            let store = tokio::spawn(async move { a.store(&ka, &data(100), &meta()).await });
            let delete = tokio::spawn(async move { b.delete(&kb).await });
            let create = tokio::spawn(async move { c.store_if(&kc, &data(200), &meta(), &Precondition::Absent).await });
            if let Err(err) = store.await.unwrap() {
                failures.push(format!("{delete_mode:?} round {round}: store: {err}"));
            }
            if let Err(err) = delete.await.unwrap() {
                failures.push(format!("{delete_mode:?} round {round}: delete: {err}"));
            }
            match create.await.unwrap() {
                Err(err) if !err.is_conflict() => {
                    failures.push(format!("{delete_mode:?} round {round}: create: {err}"))
                }
                _ => {}
            }
            let exists = p.exists(&k).await.unwrap();
            let read = p.retrieve(&k).await.map(|s| s.data);
            match (&read, exists) {
                (Ok(d), true) if *d == data(100) || *d == data(200) => {}
                (Err(StorageError::NotFound { .. }), false) => {}
                _ => failures.push(format!("{delete_mode:?} round {round}: exists {exists}, read {read:?}")),
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        cleanup(p.as_ref()).await;
        // Gone already with `Force`; scheduled, and so still named, with a window.
        let _ = aws_client()
            .delete_secret()
            .secret_id(format!("nebula-test/{ns}/raced"))
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
}

/// Fifty writers on one id (plain stores, then stores at one revision): one version holds
/// `AWSCURRENT`, reads return the last acknowledged write's value, exactly one
/// conditional writer wins, and the losers' pending versions never become current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_writers_on_one_id_leave_one_current_version() {
    let ns = unique("fifty");
    let p = provider(config(&ns)).await;
    let k = id("hot");
    let name = format!("nebula-test/{ns}/hot");
    let base = p.store(&k, &data(0), &meta()).await.unwrap();
    let tasks: Vec<_> = (1..=50u8)
        .map(|i| {
            let (p, k) = (p.clone(), k.clone());
            tokio::spawn(async move { p.store(&k, &data(i), &meta()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("a plain store never fails on a race");
    }
    let one_current = || async {
        let d = aws_client().describe_secret().secret_id(&name).send().await.unwrap();
        let stages = d.version_ids_to_stages().unwrap().clone();
        let current: Vec<_> = stages
            .iter()
            .filter(|(_, l)| l.iter().any(|l| l == "AWSCURRENT"))
            .collect();
        assert_eq!(current.len(), 1, "{stages:?}");
        let pending: Vec<_> = stages
            .iter()
            .filter(|(_, l)| l.iter().any(|l| l == "NEBULA_PENDING"))
            .collect();
        assert!(pending.len() <= 1, "{stages:?}");
        current[0].0.clone()
    };
    let current = one_current().await;
    let got = p.retrieve(&k).await.unwrap();
    assert_eq!(got.revision.as_str(), current);
    assert_ne!(got.revision, base);

    let from = got.revision.clone();
    let tasks: Vec<_> = (1..=50u8)
        .map(|i| {
            let (p, k, from) = (p.clone(), k.clone(), from.clone());
            tokio::spawn(async move {
                p.store_if(&k, &data(100 + i), &meta(), &Precondition::Revision(from))
                    .await
                    .map(|r| (i, r))
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(w) => won.push(w),
            Err(e) => assert!(e.is_conflict(), "{e}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let current = one_current().await;
    let got = p.retrieve(&k).await.unwrap();
    assert_eq!(
        (got.data, got.revision.as_str()),
        (data(100 + won[0].0), current.as_str())
    );
    assert_eq!(got.revision, won[0].1);
    force_delete(&name).await;
}

/// `CredentialStore::put` racing itself on one id: every acknowledged put has its own
/// version, and `get` returns the value of the highest acknowledged version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_credential_store_puts_get_exact_versions() {
    use nebula_credential::prelude::ExposeSecret as _;
    use nebula_credential::{CredentialStore, EncryptionKey, Keyring, Tags};
    let ns = unique("versions");
    let p = provider(config(&ns)).await;
    let store = Arc::new(CredentialStore::new(p.clone(), Keyring::new(EncryptionKey::generate())));
    let k = id("counted");
    let tasks: Vec<_> = (0..20u8)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move { store.put(&k, &[i], Tags::new()).await.map(|m| (m.version, i)) })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => acked.push(v),
            Err(e) => assert!(e.is_conflict(), "{e}"),
        }
    }
    acked.sort();
    let mut versions: Vec<_> = acked.iter().map(|(v, _)| *v).collect();
    versions.dedup();
    assert_eq!(
        versions.len(),
        acked.len(),
        "every acknowledged put has its own version: {acked:?}"
    );
    let (last_version, last_value) = *acked.last().unwrap();
    let (got, m) = store.get_with_metadata(&k).await.unwrap();
    assert_eq!(
        (m.version, got.expose_secret().to_vec()),
        (last_version, vec![last_value])
    );
    cleanup(p.as_ref()).await;
}

/// A write retried after its answer was lost (the same call again, as the `Retry` layer
/// sends it) recognises its own earlier success by the version id it derives, and writes
/// no second version.
#[tokio::test]
async fn a_retried_write_finds_its_own_earlier_success() {
    let ns = unique("retried");
    let (p, calls) = counted(config(&ns));
    let k = id("again");
    let name = format!("nebula-test/{ns}/again");
    let m = meta();
    let r0 = p.store(&k, &data(1), &m).await.unwrap();
    let created = p
        .store_if(&id("fresh"), &data(1), &m, &Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        p.store_if(&id("fresh"), &data(1), &m, &Precondition::Absent)
            .await
            .unwrap(),
        created,
        "a retried create"
    );
    let r1 = p
        .store_if(&k, &data(2), &m, &Precondition::Revision(r0.clone()))
        .await
        .unwrap();
    calls.take();
    assert_eq!(
        p.store_if(&k, &data(2), &m, &Precondition::Revision(r0.clone()))
            .await
            .unwrap(),
        r1,
        "a retried conditional store"
    );
    assert_eq!(calls.take(), ["DescribeSecret"], "no second version");
    // A create over a deleted (tombstoned) id, retried.
    let mut window = config(&ns);
    window.delete_mode = DeleteMode::Soft;
    window.recovery_window_days = 7;
    let (w, _) = counted(window);
    w.delete(&id("fresh")).await.unwrap();
    let again = w
        .store_if(&id("fresh"), &data(3), &m, &Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        w.store_if(&id("fresh"), &data(3), &m, &Precondition::Absent)
            .await
            .unwrap(),
        again,
        "a retried create over a tombstone"
    );
    let versions = aws_client()
        .list_secret_version_ids()
        .secret_id(&name)
        .send()
        .await
        .unwrap()
        .versions()
        .len();
    assert_eq!(versions, 2);
    force_delete(&name).await;
    force_delete(&format!("nebula-test/{ns}/fresh")).await;
}

/// A plain store racing a conditional store from the same revision: when both succeed, the
/// conditional one must have come first (its revision still held), so the plain store's
/// value is the one left. A plain store must not count itself "landed and overwritten"
/// by a writer whose precondition its landing would have broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_store_and_a_conditional_store_both_acknowledged_leave_the_plain_value() {
    let ns = unique("mixed");
    let p = provider(config(&ns)).await;
    let k = id("mixed");
    let mut broken = Vec::new();
    for round in 0..30u8 {
        let from = p.store(&k, &data(round), &meta()).await.unwrap();
        let (a, b, ka, kb) = (p.clone(), p.clone(), k.clone(), k.clone());
        let plain = tokio::spawn(async move { a.store(&ka, &data(100), &meta()).await });
        let cond = tokio::spawn(async move {
            b.store_if(&kb, &data(200), &meta(), &Precondition::Revision(from))
                .await
        });
        let (plain, cond) = (plain.await.unwrap(), cond.await.unwrap());
        plain.expect("a plain store never fails on a race");
        let now = p.retrieve(&k).await.unwrap().data;
        if cond.is_ok() && now != data(100) {
            broken.push(round);
        }
    }
    assert!(
        broken.is_empty(),
        "both acknowledged, conditional value left, in rounds {broken:?}"
    );
    cleanup(p.as_ref()).await;
}

/// Ten deletes of one id at once (forced, or with a recovery window): every one succeeds,
/// and the credential reads as deleted afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_of_one_id_all_succeed() {
    for (delete_mode, recovery_window_days) in [(DeleteMode::Purge, 7), (DeleteMode::Soft, 7)] {
        let ns = unique("deletes");
        let p = provider(AwsSecretsManagerConfig {
            delete_mode,
            recovery_window_days,
            ..config(&ns)
        })
        .await;
        let k = id("doomed");
        for round in 0..5u8 {
            p.store(&k, &data(round), &meta()).await.unwrap();
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let (p, k) = (p.clone(), k.clone());
                    tokio::spawn(async move { p.delete(&k).await })
                })
                .collect();
            for t in tasks {
                t.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{delete_mode:?} round {round}: {e}"));
            }
            assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
            assert!(!p.exists(&k).await.unwrap());
        }
        let _ = aws_client()
            .delete_secret()
            .secret_id(format!("nebula-test/{ns}/doomed"))
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
}

/// `revision` is one `DescribeSecret` and never reads the value (no `GetSecretValue`, so no
/// `kms:Decrypt` on AWS), counted at the SDK client: it reports the version id `retrieve`
/// reports, follows every store, and answers what `retrieve` answers for a foreign secret
/// (`Conflict`), a secret scheduled for deletion, our tombstone restored by hand and a
/// missing one (`NotFound`).
#[tokio::test]
async fn revision_is_one_describe_secret_never_the_value() {
    let ns = unique("revision");
    let (p, calls) = counted(AwsSecretsManagerConfig {
        delete_mode: DeleteMode::Soft,
        recovery_window_days: 7,
        ..config(&ns)
    });
    let ops = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let name = |k: &CredentialId| format!("nebula-test/{ns}/{k}");
    let k = id("revised");
    let mut seen = Vec::new();
    for fill in 1..=3u8 {
        let written = p.store(&k, &data(fill), &meta()).await.unwrap();
        calls.take();
        let revision = p.revision(&k).await.unwrap();
        assert_eq!(calls.take(), ops(&["DescribeSecret"]), "round {fill}");
        assert_eq!(revision, written);
        assert_eq!(p.retrieve(&k).await.unwrap().revision, revision);
        assert_eq!(calls.take(), ops(&["GetSecretValue"]));
        assert!(!seen.contains(&revision), "a new revision per store");
        seen.push(revision);
    }

    // Another tool puts a value into a secret of ours: its version is the revision, still
    // one DescribeSecret (ours by the marker). On a secret created and never overwritten
    // by us: moto mishandles a plain put after a stage move (see FACTS).
    let raw = aws_client();
    let by_hand = id("by_hand");
    p.store(&by_hand, &data(9), &meta()).await.unwrap();
    let put = raw
        .put_secret_value()
        .secret_id(name(&by_hand))
        .secret_string("set by hand")
        .send()
        .await
        .unwrap();
    calls.take();
    assert_eq!(p.revision(&by_hand).await.unwrap().as_str(), put.version_id().unwrap());
    assert_eq!(calls.take(), ops(&["DescribeSecret"]));

    // Deleted with a recovery window, then restored by hand: the tombstone is current.
    p.delete(&k).await.unwrap();
    calls.take();
    assert!(p.revision(&k).await.unwrap_err().is_not_found());
    raw.restore_secret().secret_id(name(&k)).send().await.unwrap();
    assert!(p.revision(&k).await.unwrap_err().is_not_found());
    assert!(p.revision(&id("never_stored")).await.unwrap_err().is_not_found());
    assert_eq!(calls.take(), ops(&["DescribeSecret"; 3]));

    // A foreign secret under our name: no marker, so `Conflict`, as `retrieve` answers.
    let planted = id("planted");
    raw.create_secret()
        .name(name(&planted))
        .secret_string(FOREIGN_VALUE)
        .send()
        .await
        .unwrap();
    calls.take();
    let err = p.revision(&planted).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(calls.take(), ops(&["DescribeSecret"]));
    assert!(p.retrieve(&planted).await.unwrap_err().is_conflict());
    for k in [k, by_hand, planted] {
        force_delete(&name(&k)).await;
    }
}

/// Another writer (a second provider over the same prefix) rotates a credential a cached
/// store serves: the watch fires within `poll_ms` plus jitter, `refresh(seen)` and the end
/// of `fresh_ms` each bring the new value, and a delete is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_another_writer_rotate_and_delete() {
    let ns = unique("watch");
    let watched =
        nebula_credential_tests::watch::another_writer_rotates(StorageConfig::Aws(config(&ns)), &id("rotated")).await;
    println!(
        "aws: watch fired {:?} after the rotation (poll {:?})",
        watched.fired_after, watched.poll
    );
}
