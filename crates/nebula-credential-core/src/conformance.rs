//! The behaviour every provider must show, run against each backend.
//!
//! [`conformance_tests!`](crate::conformance_tests) expands into one `#[tokio::test]`
//! per case inside a module named after the backend, so a failure names both. Each case
//! gets a fresh provider from the factory in its own namespace (unique per case and run,
//! so cases can share one real server), and everything the case stored is deleted
//! afterwards, also when it fails.
//!
//! ```
//! // in a provider crate's tests (needs `tokio` with `macros` and `rt-multi-thread`):
//! nebula_credential_core::conformance_tests!(memory, |_namespace: String| async move {
//!     nebula_credential_core::MockStorageProvider::new()
//! });
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Duration;

use crate::data::{EncryptedData, NONCE_LEN};
use crate::error::StorageError;
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::layers::BoxFuture;
use crate::metadata::{CredentialMetadata, Tags, Timestamp, now};
use crate::provider::StorageProvider;

type Factory = Arc<dyn Fn(String) -> BoxFuture<'static, Arc<dyn StorageProvider>> + Send + Sync>;

/// What a case works with: a fresh provider in its own namespace, and a way to open
/// more providers in other namespaces (all cleaned up after the case).
#[derive(Clone)]
pub struct Fixture {
    /// The provider under test, in [`namespace`](Self::namespace).
    pub provider: Arc<dyn StorageProvider>,
    /// This case's namespace (prefix, directory, …) as passed to the factory.
    pub namespace: String,
    factory: Factory,
    opened: Arc<Mutex<Vec<Arc<dyn StorageProvider>>>>,
}

impl Fixture {
    /// Opens another provider in namespace `{namespace}-{suffix}`.
    pub async fn other_namespace(&self, suffix: &str) -> Arc<dyn StorageProvider> {
        let p = (self.factory)(format!("{}-{suffix}", self.namespace)).await;
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(p.clone());
        p
    }
}

/// A short random token, unique per test run.
fn run_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| format!("{:08x}", rand::random::<u32>()))
}

/// Runs one case: opens the provider, runs `case` in its own task, then deletes every
/// credential the case's providers hold, and re-raises the case's panic, if any.
pub async fn run<F, Fut, P>(case_name: &str, factory: F, case: fn(Fixture) -> BoxFuture<'static, ()>)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = P> + Send + 'static,
    P: StorageProvider + 'static,
{
    let factory: Factory = Arc::new(move |ns| {
        let fut = factory(ns);
        Box::pin(async move { Arc::new(fut.await) as Arc<dyn StorageProvider> })
    });
    let namespace = format!("t{}-{}", run_token(), case_name.replace('_', "-"));
    let provider = factory(namespace.clone()).await;
    let opened = Arc::new(Mutex::new(vec![provider.clone()]));
    let fixture = Fixture {
        provider,
        namespace,
        factory,
        opened: opened.clone(),
    };
    let outcome = tokio::spawn(case(fixture)).await;
    let providers = opened.lock().unwrap_or_else(PoisonError::into_inner).clone();
    for p in providers {
        let cleaned = clean(p.as_ref()).await;
        if outcome.is_ok() {
            cleaned.unwrap_or_else(|e| panic!("cleanup after `{case_name}` failed: {e}"));
        }
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("case `{case_name}` did not finish: {e}"),
        }
    }
}

async fn clean(p: &dyn StorageProvider) -> Result<(), StorageError> {
    for id in p.list(&CredentialFilter::new()).await? {
        p.delete(&id).await?;
    }
    let left = p.list(&CredentialFilter::new()).await?;
    assert!(left.is_empty(), "credentials left after cleanup: {left:?}");
    Ok(())
}

/// Expands into one `#[tokio::test]` per conformance case, in `mod $backend`.
///
/// `$factory` is an expression of type `Fn(String) -> impl Future<Output = P>`, called
/// with a namespace unique to the case and run; `P: StorageProvider`. The calling crate
/// needs `tokio` (features `macros`, `rt-multi-thread`) among its dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ident, $factory:expr) => {
        $crate::conformance_tests!(@cases $backend, $factory;
            round_trip_bytes_and_metadata,
            overwrite_replaces,
            retrieve_missing_is_not_found,
            delete_missing_is_ok,
            delete_then_retrieve_is_not_found,
            store_after_delete,
            exists_true_and_false,
            list_empty,
            list_sorted,
            list_by_one_tag,
            list_by_two_tags,
            list_by_id_prefix,
            list_by_created_range,
            ids_differing_in_case_are_distinct,
            longest_mixed_case_id_round_trips,
            unicode_tag_value_round_trips,
            ten_tags_round_trip,
            payload_within_limit_stores,
            payload_over_limit_is_too_large,
            concurrent_distinct_ids,
            concurrent_same_id,
            namespaces_are_isolated,
        );
    };
    (@cases $backend:ident, $factory:expr; $($case:ident,)*) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::conformance::run(stringify!($case), $factory, |fx| {
                        ::std::boxed::Box::pin($crate::conformance::cases::$case(fx))
                    })
                    .await;
                }
            )*
        }
    };
}

/// Test data helpers.
fn id(s: &str) -> CredentialId {
    s.parse().expect("valid test id")
}

fn data(ciphertext: Vec<u8>) -> EncryptedData {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    EncryptedData {
        version: EncryptedData::CURRENT_VERSION,
        key_id: "conformance-key".into(),
        nonce,
        ciphertext,
    }
}

fn meta(tags: &[(&str, &str)]) -> CredentialMetadata {
    CredentialMetadata::new().with_tags(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn at(t: Timestamp, metadata: CredentialMetadata) -> CredentialMetadata {
    CredentialMetadata {
        created_at: t,
        updated_at: t,
        ..metadata
    }
}

async fn must_store(p: &dyn StorageProvider, id: &CredentialId, d: EncryptedData, m: CredentialMetadata) {
    p.store(id, d, m)
        .await
        .unwrap_or_else(|e| panic!("store of '{id}' failed: {e}"));
}

async fn must_get(p: &dyn StorageProvider, id: &CredentialId) -> (EncryptedData, CredentialMetadata) {
    p.retrieve(id)
        .await
        .unwrap_or_else(|e| panic!("retrieve of '{id}' failed: {e}"))
}

async fn must_list(p: &dyn StorageProvider, f: &CredentialFilter) -> Vec<CredentialId> {
    p.list(f)
        .await
        .unwrap_or_else(|e| panic!("list with {f:?} failed: {e}"))
}

fn ids(names: &[&str]) -> Vec<CredentialId> {
    names.iter().map(|n| id(n)).collect()
}

/// The cases, one `pub async fn` each; see [`conformance_tests!`](crate::conformance_tests).
pub mod cases {
    use super::*;

    /// Every byte of data and every metadata field (tags, timestamps, version, expiry)
    /// comes back unchanged.
    pub async fn round_trip_bytes_and_metadata(fx: Fixture) {
        let p = fx.provider.as_ref();
        let all_bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let d = data(all_bytes);
        let t = now() - Duration::days(3);
        let m = CredentialMetadata {
            created_at: t,
            updated_at: t + Duration::milliseconds(1234),
            version: 7,
            tags: [("env", "prod"), ("team", "payments")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            expires_at: Some(t + Duration::days(90)),
        };
        let k = id("round_trip");
        must_store(p, &k, d.clone(), m.clone()).await;
        assert_eq!(must_get(p, &k).await, (d, m.clone()));

        let empty = data(Vec::new());
        let k2 = id("empty_value");
        let m2 = meta(&[]);
        must_store(p, &k2, empty.clone(), m2.clone()).await;
        assert_eq!(must_get(p, &k2).await, (empty, m2));
    }

    /// A second store replaces data and metadata entirely (tags removed too).
    pub async fn overwrite_replaces(fx: Fixture) {
        let p = fx.provider.as_ref();
        let k = id("overwritten");
        must_store(p, &k, data(vec![1; 32]), meta(&[("a", "1"), ("b", "2")])).await;
        let d2 = data(vec![2; 48]);
        let mut m2 = meta(&[("a", "x")]);
        m2.version = 2;
        must_store(p, &k, d2.clone(), m2.clone()).await;
        assert_eq!(must_get(p, &k).await, (d2, m2));
        assert_eq!(must_list(p, &CredentialFilter::new().tag("b", "2")).await, vec![]);
        assert_eq!(must_list(p, &CredentialFilter::new()).await, vec![k]);
    }

    /// Retrieving an id never stored is `NotFound` naming the id.
    pub async fn retrieve_missing_is_not_found(fx: Fixture) {
        let k = id("never_stored");
        match fx.provider.retrieve(&k).await {
            Err(StorageError::NotFound { id, .. }) => assert_eq!(id, k),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    /// Deleting an id never stored succeeds (delete is idempotent).
    pub async fn delete_missing_is_ok(fx: Fixture) {
        let k = id("never_stored");
        fx.provider.delete(&k).await.expect("first delete");
        fx.provider.delete(&k).await.expect("second delete");
    }

    /// After delete: retrieve is `NotFound`, exists is false, list omits it, and a
    /// second delete succeeds.
    pub async fn delete_then_retrieve_is_not_found(fx: Fixture) {
        let p = fx.provider.as_ref();
        let k = id("doomed");
        must_store(p, &k, data(vec![9; 16]), meta(&[])).await;
        p.delete(&k).await.expect("delete");
        assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
        assert!(!p.exists(&k).await.expect("exists"));
        assert!(must_list(p, &CredentialFilter::new()).await.is_empty());
        p.delete(&k).await.expect("delete again");
    }

    /// An id can be stored again after it was deleted.
    pub async fn store_after_delete(fx: Fixture) {
        let p = fx.provider.as_ref();
        let k = id("phoenix");
        must_store(p, &k, data(vec![1; 8]), meta(&[("gen", "1")])).await;
        p.delete(&k).await.expect("delete");
        let d = data(vec![2; 8]);
        let m = meta(&[("gen", "2")]);
        must_store(p, &k, d.clone(), m.clone()).await;
        assert_eq!(must_get(p, &k).await, (d, m));
        assert!(p.exists(&k).await.expect("exists"));
    }

    /// `exists` is true for a stored id and false for another.
    pub async fn exists_true_and_false(fx: Fixture) {
        let p = fx.provider.as_ref();
        let k = id("present");
        assert!(!p.exists(&k).await.expect("exists before"));
        must_store(p, &k, data(vec![1]), meta(&[])).await;
        assert!(p.exists(&k).await.expect("exists after"));
        assert!(!p.exists(&id("absent")).await.expect("exists other"));
    }

    /// A fresh namespace lists nothing, with or without filters.
    pub async fn list_empty(fx: Fixture) {
        let p = fx.provider.as_ref();
        assert!(must_list(p, &CredentialFilter::new()).await.is_empty());
        assert!(
            must_list(p, &CredentialFilter::new().tag("env", "prod"))
                .await
                .is_empty()
        );
        assert!(must_list(p, &CredentialFilter::new().id_prefix("x")).await.is_empty());
    }

    /// `list` returns ids sorted ascending (byte order: uppercase before lowercase).
    pub async fn list_sorted(fx: Fixture) {
        let p = fx.provider.as_ref();
        let names = ["delta", "Alpha", "charlie", "bravo", "a-1", "a_1", "Zulu", "0zero"];
        for n in names {
            must_store(p, &id(n), data(vec![1]), meta(&[])).await;
        }
        let mut expected = ids(&names);
        expected.sort();
        assert_eq!(must_list(p, &CredentialFilter::new()).await, expected);
    }

    /// A one-tag filter returns exactly the credentials with that tag value.
    pub async fn list_by_one_tag(fx: Fixture) {
        let p = fx.provider.as_ref();
        must_store(p, &id("p1"), data(vec![1]), meta(&[("env", "prod")])).await;
        must_store(p, &id("p2"), data(vec![1]), meta(&[("env", "prod"), ("x", "y")])).await;
        must_store(p, &id("s1"), data(vec![1]), meta(&[("env", "staging")])).await;
        must_store(p, &id("n1"), data(vec![1]), meta(&[])).await;
        must_store(p, &id("c1"), data(vec![1]), meta(&[("env", "Prod")])).await;
        let got = must_list(p, &CredentialFilter::new().tag("env", "prod")).await;
        assert_eq!(got, ids(&["p1", "p2"]));
        let none = must_list(p, &CredentialFilter::new().tag("env", "dev")).await;
        assert!(none.is_empty());
    }

    /// A two-tag filter requires both (AND).
    pub async fn list_by_two_tags(fx: Fixture) {
        let p = fx.provider.as_ref();
        must_store(
            p,
            &id("both"),
            data(vec![1]),
            meta(&[("env", "prod"), ("team", "core")]),
        )
        .await;
        must_store(p, &id("env_only"), data(vec![1]), meta(&[("env", "prod")])).await;
        must_store(p, &id("team_only"), data(vec![1]), meta(&[("team", "core")])).await;
        must_store(
            p,
            &id("other_team"),
            data(vec![1]),
            meta(&[("env", "prod"), ("team", "web")]),
        )
        .await;
        let f = CredentialFilter::new().tag("env", "prod").tag("team", "core");
        assert_eq!(must_list(p, &f).await, ids(&["both"]));
    }

    /// An id prefix filter is case-sensitive and exact.
    pub async fn list_by_id_prefix(fx: Fixture) {
        let p = fx.provider.as_ref();
        for n in ["db_main", "db_replica", "DB_upper", "dbx", "api_db_key"] {
            must_store(p, &id(n), data(vec![1]), meta(&[])).await;
        }
        let got = must_list(p, &CredentialFilter::new().id_prefix("db_")).await;
        assert_eq!(got, ids(&["db_main", "db_replica"]));
        let got = must_list(p, &CredentialFilter::new().id_prefix("db").tag("missing", "x")).await;
        assert!(got.is_empty());
    }

    /// `created_after` / `created_before` select by creation time, exclusively.
    pub async fn list_by_created_range(fx: Fixture) {
        let p = fx.provider.as_ref();
        let t0 = now() - Duration::days(10);
        for (i, n) in ["old", "middle", "new"].into_iter().enumerate() {
            let t = t0 + Duration::hours(i as i64);
            must_store(p, &id(n), data(vec![1]), at(t, meta(&[]))).await;
        }
        let f = CredentialFilter::new()
            .created_after(t0 + Duration::minutes(30))
            .created_before(t0 + Duration::minutes(90));
        assert_eq!(must_list(p, &f).await, ids(&["middle"]));
        let f = CredentialFilter::new().created_after(t0);
        assert_eq!(must_list(p, &f).await, ids(&["middle", "new"]));
        let f = CredentialFilter::new().created_before(t0 + Duration::hours(1));
        assert_eq!(must_list(p, &f).await, ids(&["old"]));
    }

    /// `Api_Key`, `api_key` and `API_KEY` are three credentials on every backend.
    pub async fn ids_differing_in_case_are_distinct(fx: Fixture) {
        let p = fx.provider.as_ref();
        let names = ["Api_Key", "api_key", "API_KEY"];
        for (i, n) in names.iter().enumerate() {
            must_store(p, &id(n), data(vec![i as u8; 4]), meta(&[("n", n)])).await;
        }
        for (i, n) in names.iter().enumerate() {
            let (d, m) = must_get(p, &id(n)).await;
            assert_eq!(d.ciphertext, vec![i as u8; 4], "{n}");
            assert_eq!(m.tags["n"], *n);
        }
        let mut expected = ids(&names);
        expected.sort();
        assert_eq!(must_list(p, &CredentialFilter::new()).await, expected);
        p.delete(&id("api_key")).await.expect("delete");
        assert!(p.exists(&id("Api_Key")).await.expect("exists"));
        assert!(!p.exists(&id("api_key")).await.expect("exists"));
    }

    /// A 128-character mixed-case id with `_` and `-` round-trips and lists as given.
    pub async fn longest_mixed_case_id_round_trips(fx: Fixture) {
        let p = fx.provider.as_ref();
        let name: String = "Ab_9-zY".chars().cycle().take(128).collect();
        let k = id(&name);
        let d = data(vec![5; 20]);
        let m = meta(&[("long", "yes")]);
        must_store(p, &k, d.clone(), m.clone()).await;
        assert_eq!(must_get(p, &k).await, (d, m));
        assert!(p.exists(&k).await.expect("exists"));
        assert_eq!(must_list(p, &CredentialFilter::new()).await, vec![k.clone()]);
        let prefix: String = name.chars().take(100).collect();
        assert_eq!(must_list(p, &CredentialFilter::new().id_prefix(prefix)).await, vec![k]);
    }

    /// A tag value with non-ASCII Unicode round-trips and filters.
    pub async fn unicode_tag_value_round_trips(fx: Fixture) {
        let p = fx.provider.as_ref();
        let value = "Zürich — 東京 ✓ 🚀 ÆØÅ";
        let k = id("unicode");
        let m = meta(&[("city", value), ("empty", "")]);
        must_store(p, &k, data(vec![1]), m.clone()).await;
        assert_eq!(must_get(p, &k).await.1, m);
        assert_eq!(must_list(p, &CredentialFilter::new().tag("city", value)).await, vec![k]);
    }

    /// The maximum of 10 tags round-trips, and a filter on the last one works.
    pub async fn ten_tags_round_trip(fx: Fixture) {
        let p = fx.provider.as_ref();
        let tags: Tags = (0..10)
            .map(|i| (format!("key-{i}.x_{i}"), format!("value {i}")))
            .collect();
        assert_eq!(tags.len(), crate::metadata::MAX_TAGS);
        let k = id("ten_tags");
        let m = CredentialMetadata::new().with_tags(tags);
        must_store(p, &k, data(vec![1]), m.clone()).await;
        assert_eq!(must_get(p, &k).await.1, m);
        let f = CredentialFilter::new().tag("key-9.x_9", "value 9");
        assert_eq!(must_list(p, &f).await, vec![k]);
    }

    /// A value of half the provider's payload limit stores and round-trips.
    pub async fn payload_within_limit_stores(fx: Fixture) {
        let p = fx.provider.as_ref();
        let limit = p.limits().max_payload_bytes;
        let k = id("half_limit");
        let d = data((0..limit / 2).map(|i| (i % 251) as u8).collect());
        must_store(p, &k, d.clone(), meta(&[])).await;
        assert_eq!(must_get(p, &k).await.0, d);
    }

    /// A value of twice the limit is `TooLarge`, naming both sizes, and nothing is stored.
    pub async fn payload_over_limit_is_too_large(fx: Fixture) {
        let p = fx.provider.as_ref();
        let limit = p.limits().max_payload_bytes;
        let k = id("twice_limit");
        match p.store(&k, data(vec![7; limit * 2]), meta(&[])).await {
            Err(StorageError::TooLarge { id, size, limit: l, .. }) => {
                assert_eq!(id, k);
                assert_eq!(l, limit);
                assert!(size > limit);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(!p.exists(&k).await.expect("exists"));
    }

    /// 50 concurrent stores of distinct ids all land and read back intact.
    pub async fn concurrent_distinct_ids(fx: Fixture) {
        let tasks: Vec<_> = (0..50u8)
            .map(|i| {
                let p = fx.provider.clone();
                tokio::spawn(async move {
                    let k = id(&format!("parallel_{i:02}"));
                    p.store(&k, data(vec![i; 100]), meta(&[("i", &i.to_string())]))
                        .await
                        .map(|_| k)
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("store");
        }
        let p = fx.provider.as_ref();
        let listed = must_list(p, &CredentialFilter::new()).await;
        assert_eq!(listed.len(), 50);
        for i in 0..50u8 {
            let (d, m) = must_get(p, &id(&format!("parallel_{i:02}"))).await;
            assert_eq!(d.ciphertext, vec![i; 100]);
            assert_eq!(m.tags["i"], i.to_string());
        }
    }

    /// 50 concurrent stores to one id leave exactly one intact record: data and
    /// metadata from the same writer.
    pub async fn concurrent_same_id(fx: Fixture) {
        let k = id("contended");
        let tasks: Vec<_> = (0..50u8)
            .map(|i| {
                let p = fx.provider.clone();
                let k = k.clone();
                tokio::spawn(async move {
                    p.store(&k, data(vec![i; 200]), meta(&[("writer", &i.to_string())]))
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("store");
        }
        let p = fx.provider.as_ref();
        let (d, m) = must_get(p, &k).await;
        let writer: u8 = m.tags["writer"].parse().expect("writer tag");
        assert_eq!(
            d.ciphertext,
            vec![writer; 200],
            "data and metadata from different writers"
        );
        assert_eq!(must_list(p, &CredentialFilter::new()).await, vec![k]);
    }

    /// Two providers in different namespaces never see each other's credentials, even
    /// under the same id.
    pub async fn namespaces_are_isolated(fx: Fixture) {
        let a = fx.provider.clone();
        let b = fx.other_namespace("b").await;
        let shared = id("same_name");
        must_store(a.as_ref(), &shared, data(vec![0xA]), meta(&[("side", "a")])).await;
        must_store(b.as_ref(), &shared, data(vec![0xB]), meta(&[("side", "b")])).await;
        must_store(a.as_ref(), &id("only_a"), data(vec![1]), meta(&[("side", "a")])).await;
        assert_eq!(must_get(a.as_ref(), &shared).await.0.ciphertext, vec![0xA]);
        assert_eq!(must_get(b.as_ref(), &shared).await.0.ciphertext, vec![0xB]);
        assert_eq!(
            must_list(a.as_ref(), &CredentialFilter::new()).await,
            ids(&["only_a", "same_name"])
        );
        assert_eq!(
            must_list(b.as_ref(), &CredentialFilter::new()).await,
            ids(&["same_name"])
        );
        assert!(
            must_list(b.as_ref(), &CredentialFilter::new().tag("side", "a"))
                .await
                .is_empty()
        );
        assert!(!b.exists(&id("only_a")).await.expect("exists"));
        b.delete(&shared).await.expect("delete in b");
        assert!(a.exists(&shared).await.expect("exists in a"));
    }
}
