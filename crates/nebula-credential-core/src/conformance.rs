//! The behaviour every provider must show, run against each backend — also yours.
//!
//! [`conformance_tests!`](crate::conformance_tests) expands into one `#[tokio::test]`
//! per case inside a module named after the backend, so a failure names both. The cases
//! come from one list ([`for_each_case!`](crate::for_each_case)), which also builds
//! [`CASES`], so no backend can silently run fewer. Each case gets a fresh provider from
//! the factory in its own namespace (unique per case and run, so cases can share one
//! real server), returns a [`CaseResult`], and everything it stored is deleted
//! afterwards, also when it fails. Cases consult [`Capabilities`](crate::Capabilities)
//! and check the documented behaviour either way (e.g. `Unsupported` for conditional
//! stores on a backend without them).
//!
//! A backend whose objects live in a shared store passes `foreign = HOOK` (a
//! [`Foreign`]) so the suite also proves that an object under our name without our
//! managed-by marker is never read as ours, overwritten or deleted.
//!
//! A remote backend also names its other identities and tools, each given or declared
//! absent with the reason (`read_only = HOOK` or `read_only = absent("why")`, likewise
//! `rejected`, `untrusted_ca`, `other_tools`; see [`Hooks`]). A given hook adds its case; an
//! absent one adds none and says why in the test file, never a case that passes without
//! checking anything. Once one of them is named, all four must be.
//!
//! ```
//! # use nebula_credential_core::MemoryProvider;
//! // a backend with none of the four: each declared absent, with the reason
//! nebula_credential_core::conformance_tests!(
//!     memory,
//!     |_namespace: String| async move { MemoryProvider::new() },
//!     read_only = absent("one identity only"),
//!     rejected = absent("no credentials"),
//!     untrusted_ca = absent("no TLS"),
//!     other_tools = absent("nothing else writes to it"),
//! );
//! ```
//!
//! ```compile_fail
//! # use nebula_credential_core::MemoryProvider;
//! // leaving one out does not compile
//! nebula_credential_core::conformance_tests!(
//!     memory,
//!     |_namespace: String| async move { MemoryProvider::new() },
//!     read_only = absent("one identity only"),
//!     rejected = absent("no credentials"),
//!     untrusted_ca = absent("no TLS"),
//! );
//! ```
//!
//! Third-party backends use it the same way: depend on `nebula-credential-core` with the
//! `conformance` feature in `[dev-dependencies]`, plus `tokio` (`macros`, `rt-multi-thread`).
//!
//! ```
//! // in a provider crate's tests:
//! nebula_credential_core::conformance_tests!(memory, |_namespace: String| async move {
//!     nebula_credential_core::MemoryProvider::new()
//! });
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Duration;

use crate::error::{BoxError, ErrorKind, StorageError};
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::layers::BoxFuture;
use crate::metadata::{CredentialMetadata, Tags, now};
use crate::metrics::StorageMetrics;
use crate::provider::{Revision, StorageProvider};

pub use fixtures::*;

/// What a case returns: `Err` names what did not hold.
pub type CaseResult = Result<(), BoxError>;

/// Fails the case with a formatted message.
macro_rules! fail {
    ($($msg:tt)+) => {
        return Err(format!($($msg)+).into())
    };
}

/// Fails the case unless `cond` holds.
macro_rules! ensure {
    ($cond:expr $(,)?) => {
        if !$cond {
            fail!("check failed: {}", stringify!($cond));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            fail!($($msg)+);
        }
    };
}

/// Fails the case unless both sides are equal, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        ensure_eq!($left, $right, "{}", stringify!($left))
    };
    ($left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    fail!("{}: left {:?} != right {:?}", format!($($msg)+), l, r);
                }
            }
        }
    };
}

/// Test data shared by the suite and by backends' own tests.
pub mod fixtures {
    use crate::data::{EncryptedData, NONCE_LEN};
    use crate::id::CredentialId;
    use crate::metadata::CredentialMetadata;

    /// A credential id; panics on an invalid one (test data is fixed).
    pub fn id(s: &str) -> CredentialId {
        s.parse().expect("valid test id")
    }

    /// Encrypted data of 64 bytes of `fill`, with a nonce of `fill`.
    pub fn data(fill: u8) -> EncryptedData {
        EncryptedData {
            version: EncryptedData::CURRENT_VERSION,
            key_id: "conformance-key".into(),
            nonce: [fill; NONCE_LEN],
            ciphertext: vec![fill; 64],
        }
    }

    /// Encrypted data holding `ciphertext`, with a random nonce.
    pub fn bytes(ciphertext: Vec<u8>) -> EncryptedData {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        EncryptedData {
            version: EncryptedData::CURRENT_VERSION,
            key_id: "conformance-key".into(),
            nonce,
            ciphertext,
        }
    }

    /// Fresh metadata without tags.
    pub fn meta() -> CredentialMetadata {
        CredentialMetadata::new()
    }

    /// Fresh metadata with these tags.
    pub fn tagged(pairs: &[(&str, &str)]) -> CredentialMetadata {
        CredentialMetadata::new().with_tags(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }
}

/// Plants and inspects an object that is not ours under the name a provider in a given
/// namespace would use for an id (written behind the provider's back, without the
/// managed-by marker).
pub trait Foreign: Send + Sync + 'static {
    /// Creates the foreign object where `id` would live in `namespace`.
    fn plant<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult>;
    /// Whether the planted object is still there, unchanged.
    fn intact<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>>;
    /// Removes the planted object.
    fn remove<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult>;
}

/// A provider a hook opened, with the metrics of its layer stack (retries, outcomes).
#[derive(Clone)]
pub struct Opened {
    /// The provider, with the layers an application gets (retry included).
    pub provider: Arc<dyn StorageProvider>,
    /// Its metrics, to prove what was (not) retried.
    pub metrics: Arc<StorageMetrics>,
}

/// Another identity of a remote backend than the factory's full-rights one: a read-only
/// identity, credentials the service rejects, or a client that does not trust the
/// server's CA. Its provider works over the same objects as the factory's provider in the
/// same namespace, unless [`writer`](Self::writer) gives one that does.
pub trait Identity: Send + Sync + 'static {
    /// Opens a provider in `namespace` as this identity (retries as the backend's default
    /// or more, so a retry would show in the metrics).
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>>;

    /// A full-rights provider over the objects this identity's provider sees, when the
    /// factory's provider in `namespace` is not one (e.g. the identity is confined to a
    /// namespace of its own). The default: none, use the factory's.
    fn writer<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Option<Arc<dyn StorageProvider>>, BoxError>> {
        let _ = namespace;
        Box::pin(async { Ok(None) })
    }

    /// What must never show in an error or in the provider's `Debug` (its token), if any.
    fn secret(&self) -> Option<String> {
        None
    }

    /// The backend's own promise about `error`, which `op` (`store`, `create`, `delete`,
    /// `retrieve`, `list`, `check`) on `id` in `namespace` returned: e.g. that it names the
    /// missing role, capability or setting. The default checks nothing more.
    fn explains(&self, namespace: &str, op: &str, id: &CredentialId, error: &StorageError) -> CaseResult {
        let _ = (namespace, op, id, error);
        Ok(())
    }
}

/// What other tools do to the objects we write (cost-allocation tags, labels,
/// annotations), and how the service shows our tags, for the tag-sync case.
pub trait OtherTools: Send + Sync + 'static {
    /// Opens a provider in `namespace` whose configuration adds the default tag
    /// `(key, value)` to every object it writes.
    fn open_with_default_tag<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn StorageProvider>, BoxError>>;

    /// Adds, as another tool would, its own marks to the object holding `id`.
    fn mark<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult>;

    /// Whether every mark [`mark`](Self::mark) added is still there, unchanged.
    fn marked<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>>;

    /// The object's tags (labels) as the service holds them, by their keys there.
    fn raw_tags<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a CredentialId,
    ) -> BoxFuture<'a, Result<std::collections::BTreeMap<String, String>, BoxError>>;

    /// The key of the default tag the case configures: one a credential tag cannot have
    /// (providers refuse a default tag that could collide) and the service accepts.
    fn default_tag_key(&self) -> &'static str {
        "org:team"
    }

    /// The key under which the service holds our credential tag `key` (default tags keep
    /// their key as configured).
    fn tag_key(&self, key: &str) -> String {
        key.to_string()
    }
}

/// The hooks a backend gives the suite; `None` where it has none (see the module docs for
/// how a remote backend declares one absent).
#[derive(Clone, Default)]
pub struct Hooks {
    /// Plants objects that are not ours ([`foreign_object_is_never_ours`](cases::foreign_object_is_never_ours)).
    pub foreign: Option<Arc<dyn Foreign>>,
    /// An identity that may read but not write ([`read_only_identity_is_permission_denied`](cases::read_only_identity_is_permission_denied)).
    pub read_only: Option<Arc<dyn Identity>>,
    /// Credentials the service rejects ([`rejected_credentials_are_authentication_failed`](cases::rejected_credentials_are_authentication_failed)).
    pub rejected: Option<Arc<dyn Identity>>,
    /// A client without the server's CA ([`untrusted_ca_is_refused_and_not_retried`](cases::untrusted_ca_is_refused_and_not_retried)).
    pub untrusted_ca: Option<Arc<dyn Identity>>,
    /// Other tools' marks ([`overwrite_keeps_tags_other_tools_added`](cases::overwrite_keeps_tags_other_tools_added)).
    pub other_tools: Option<Arc<dyn OtherTools>>,
}

type Factory = Arc<dyn Fn(String) -> BoxFuture<'static, Arc<dyn StorageProvider>> + Send + Sync>;

/// What a case works with: a fresh provider in its own namespace, and a way to open
/// more providers in other namespaces (all cleaned up after the case).
#[derive(Clone)]
pub struct Fixture {
    /// The provider under test, in [`namespace`](Self::namespace).
    pub provider: Arc<dyn StorageProvider>,
    /// This case's namespace (prefix, directory, …) as passed to the factory.
    pub namespace: String,
    /// The backend's foreign-object hook, when it has one (also in [`hooks`](Self::hooks)).
    pub foreign: Option<Arc<dyn Foreign>>,
    /// The backend's hooks for this case.
    pub hooks: Hooks,
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

    /// Cleans up after `provider` too when the case ends (a provider a hook opened).
    pub fn track(&self, provider: Arc<dyn StorageProvider>) {
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(provider);
    }
}

/// A case of the suite.
pub type Case = fn(Fixture) -> BoxFuture<'static, CaseResult>;

/// A short random token, unique per test run.
fn run_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| format!("{:08x}", rand::random::<u32>()))
}

/// Runs one case: opens the provider, runs `case` in its own task, then deletes every
/// credential the case's providers hold. Panics (failing the test) with the case's
/// error, its panic, or a failed cleanup.
pub async fn run<F, Fut, P>(case_name: &str, factory: F, foreign: Option<Arc<dyn Foreign>>, case: Case)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = P> + Send + 'static,
    P: StorageProvider + 'static,
{
    run_with_hooks(
        case_name,
        factory,
        Hooks {
            foreign,
            ..Hooks::default()
        },
        case,
    )
    .await;
}

/// [`run`] with every hook of the backend (the cases that need one fail without it).
pub async fn run_with_hooks<F, Fut, P>(case_name: &str, factory: F, hooks: Hooks, case: Case)
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
        foreign: hooks.foreign.clone(),
        hooks,
        factory,
        opened: opened.clone(),
    };
    let outcome = tokio::spawn(case(fixture)).await;
    let providers = opened.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut cleanup = Ok(());
    for p in providers {
        if let Err(e) = clean(p.as_ref()).await {
            cleanup = Err(e);
        }
    }
    match outcome {
        Ok(Ok(())) => {
            if let Err(e) = cleanup {
                panic!("cleanup after `{case_name}` failed: {e}");
            }
        }
        Ok(Err(e)) => panic!("case `{case_name}` failed: {e}"),
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("case `{case_name}` did not finish: {e}"),
        },
    }
}

async fn clean(p: &dyn StorageProvider) -> CaseResult {
    for id in p.list(&CredentialFilter::new()).await? {
        p.delete(&id).await?;
    }
    let left = p.list(&CredentialFilter::new()).await?;
    ensure!(left.is_empty(), "credentials left after cleanup: {left:?}");
    Ok(())
}

/// Calls `$callback!` with the list of every case name, after `$args`. The one list:
/// [`CASES`], [`conformance_tests!`](crate::conformance_tests) and the docs all come
/// from it. `foreign_object_is_never_ours` is listed apart: it needs a [`Foreign`] hook.
#[macro_export]
macro_rules! for_each_case {
    ($callback:path; $($args:tt)*) => {
        $callback!($($args)* ;
            round_trip_bytes_and_metadata,
            overwrite_replaces,
            retrieve_missing_is_not_found,
            delete_missing_is_ok,
            delete_then_retrieve_is_not_found,
            store_after_delete,
            readers_never_see_deleted_or_older_values,
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
            fifty_parallel_operations,
            namespaces_are_isolated,
            check_succeeds,
            revision_changes_on_every_store,
            revision_matches_retrieve,
            revision_of_missing_is_not_found,
            conditional_create_of_existing_is_conflict,
            stale_revision_is_conflict_and_newer_kept,
            concurrent_conditional_writers_one_wins,
        );
    };
}

macro_rules! case_table {
    (; $($case:ident,)*) => {
        /// Every case but `foreign_object_is_never_ours`, by name.
        pub const CASES: &[(&str, Case)] = &[
            $((stringify!($case), |fx| Box::pin(cases::$case(fx))),)*
        ];
    };
}

for_each_case!(case_table;);

/// Expands into one `#[tokio::test]` per conformance case, in `mod $backend`.
///
/// `$factory` is an expression of type `Fn(String) -> impl Future<Output = P>`, called
/// with a namespace unique to the case and run; `P: StorageProvider`. With
/// `foreign = $hook` (an expression whose value implements [`Foreign`]) the foreign-object
/// case runs too. A remote backend then names its four other hooks, in any order, each as
/// an expression or as `absent(REASON)` (a `&str`: why the backend cannot give it):
///
/// - `read_only` ([`Identity`]): [`read_only_identity_is_permission_denied`](cases::read_only_identity_is_permission_denied)
/// - `rejected` ([`Identity`]): [`rejected_credentials_are_authentication_failed`](cases::rejected_credentials_are_authentication_failed)
/// - `untrusted_ca` ([`Identity`]): [`untrusted_ca_is_refused_and_not_retried`](cases::untrusted_ca_is_refused_and_not_retried)
/// - `other_tools` ([`OtherTools`]): [`overwrite_keeps_tags_other_tools_added`](cases::overwrite_keeps_tags_other_tools_added)
///
/// A given hook adds its case; an absent one adds none. Leaving one of the four out (or
/// naming one twice) does not compile. The calling crate needs `tokio` (features `macros`,
/// `rt-multi-thread`) among its dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ident, $factory:expr $(,)?) => {
        $crate::for_each_case!($crate::conformance_tests; @cases $backend, $factory, None, [@none]; );
    };
    ($backend:ident, $factory:expr, foreign = $foreign:expr $(,)?) => {
        $crate::conformance_tests!($backend, $factory, foreign = $foreign, @none);
    };
    ($backend:ident, $factory:expr, foreign = $foreign:expr, $($hooks:tt)+) => {
        $crate::for_each_case!(
            $crate::conformance_tests;
            @cases $backend, $factory,
            Some(::std::sync::Arc::new($foreign) as ::std::sync::Arc<dyn $crate::conformance::Foreign>),
            [$($hooks)+];
            foreign_object_is_never_ours
        );
    };
    ($backend:ident, $factory:expr, $($hooks:tt)+) => {
        $crate::for_each_case!(
            $crate::conformance_tests;
            @cases $backend, $factory, None, [$($hooks)+];
        );
    };
    (@cases $backend:ident, $factory:expr, $foreign:expr, [$($hooks:tt)*]; $($extra:ident)? ; $($case:ident,)*) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::conformance::run(stringify!($case), $factory, $foreign, |fx| {
                        ::std::boxed::Box::pin($crate::conformance::cases::$case(fx))
                    })
                    .await;
                }
            )*
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $extra() {
                    $crate::conformance::run(stringify!($extra), $factory, $foreign, |fx| {
                        ::std::boxed::Box::pin($crate::conformance::cases::$extra(fx))
                    })
                    .await;
                }
            )?
            $crate::conformance_tests!(@hooks $factory; $($hooks)*);
        }
    };
    // No hooks beyond `foreign`.
    (@hooks $factory:expr; @none) => {};
    // All four named: each declared constant below exists exactly once.
    (@hooks $factory:expr;) => {
        /// Every hook was named, given or absent.
        const _: [&str; 4] = [HOOK_READ_ONLY, HOOK_REJECTED, HOOK_UNTRUSTED_CA, HOOK_OTHER_TOOLS];
    };
    (@hooks $factory:expr; $name:ident = absent($why:expr) $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@declare $name, $why);
        $crate::conformance_tests!(@hooks $factory; $($($rest)*)?);
    };
    (@hooks $factory:expr; $name:ident = $hook:expr $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@declare $name, "given");
        $crate::conformance_tests!(@given $factory, $name, $hook);
        $crate::conformance_tests!(@hooks $factory; $($($rest)*)?);
    };
    (@declare read_only, $why:expr) => {
        #[allow(dead_code)]
        const HOOK_READ_ONLY: &str = $why;
    };
    (@declare rejected, $why:expr) => {
        #[allow(dead_code)]
        const HOOK_REJECTED: &str = $why;
    };
    (@declare untrusted_ca, $why:expr) => {
        #[allow(dead_code)]
        const HOOK_UNTRUSTED_CA: &str = $why;
    };
    (@declare other_tools, $why:expr) => {
        #[allow(dead_code)]
        const HOOK_OTHER_TOOLS: &str = $why;
    };
    (@declare $other:ident, $why:expr) => {
        compile_error!(concat!(
            "unknown conformance hook `", stringify!($other),
            "`: the hooks are read_only, rejected, untrusted_ca, other_tools"
        ));
    };
    (@given $factory:expr, read_only, $hook:expr) => {
        $crate::conformance_tests!(@test $factory, read_only_identity_is_permission_denied, read_only, $hook);
    };
    (@given $factory:expr, rejected, $hook:expr) => {
        $crate::conformance_tests!(@test $factory, rejected_credentials_are_authentication_failed, rejected, $hook);
    };
    (@given $factory:expr, untrusted_ca, $hook:expr) => {
        $crate::conformance_tests!(@test $factory, untrusted_ca_is_refused_and_not_retried, untrusted_ca, $hook);
    };
    (@given $factory:expr, other_tools, $hook:expr) => {
        $crate::conformance_tests!(@test $factory, overwrite_keeps_tags_other_tools_added, other_tools, $hook);
    };
    (@given $factory:expr, $other:ident, $hook:expr) => {};
    (@test $factory:expr, $case:ident, $field:ident, $hook:expr) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            $crate::conformance::run_with_hooks(
                stringify!($case),
                $factory,
                $crate::conformance::Hooks {
                    $field: Some(::std::sync::Arc::new($hook)),
                    ..$crate::conformance::Hooks::default()
                },
                |fx| ::std::boxed::Box::pin($crate::conformance::cases::$case(fx)),
            )
            .await;
        }
    };
}

fn at(t: crate::metadata::Timestamp, metadata: CredentialMetadata) -> CredentialMetadata {
    CredentialMetadata {
        created_at: t,
        updated_at: t,
        ..metadata
    }
}

async fn put(
    p: &dyn StorageProvider,
    id: &CredentialId,
    d: crate::data::EncryptedData,
    m: CredentialMetadata,
) -> Result<Revision, BoxError> {
    p.store(id, &d, &m)
        .await
        .map_err(|e| format!("store of '{id}' failed: {e}").into())
}

async fn get(
    p: &dyn StorageProvider,
    id: &CredentialId,
) -> Result<(crate::data::EncryptedData, CredentialMetadata), BoxError> {
    match p.retrieve(id).await {
        Ok(s) => Ok(s.into_parts()),
        Err(e) => Err(format!("retrieve of '{id}' failed: {e}").into()),
    }
}

async fn list(p: &dyn StorageProvider, f: &CredentialFilter) -> Result<Vec<CredentialId>, BoxError> {
    p.list(f)
        .await
        .map_err(|e| format!("list with {f:?} failed: {e}").into())
}

fn ids(names: &[&str]) -> Vec<CredentialId> {
    names.iter().map(|n| id(n)).collect()
}

/// The cases, one `pub async fn` each; see [`conformance_tests!`](crate::conformance_tests).
pub mod cases {
    use super::*;
    use crate::provider::Precondition;

    /// Every byte of data and every metadata field (tags, timestamps, version, expiry)
    /// comes back unchanged.
    pub async fn round_trip_bytes_and_metadata(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let all_bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let d = bytes(all_bytes);
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
        put(p, &k, d.clone(), m.clone()).await?;
        ensure_eq!(get(p, &k).await?, (d, m.clone()));

        let empty = bytes(Vec::new());
        let k2 = id("empty_value");
        let m2 = meta();
        put(p, &k2, empty.clone(), m2.clone()).await?;
        ensure_eq!(get(p, &k2).await?, (empty, m2));
        Ok(())
    }

    /// A second store replaces data and metadata entirely (tags removed too).
    pub async fn overwrite_replaces(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("overwritten");
        put(p, &k, bytes(vec![1; 32]), tagged(&[("a", "1"), ("b", "2")])).await?;
        let d2 = bytes(vec![2; 48]);
        let mut m2 = tagged(&[("a", "x")]);
        m2.version = 2;
        put(p, &k, d2.clone(), m2.clone()).await?;
        ensure_eq!(get(p, &k).await?, (d2, m2));
        ensure_eq!(list(p, &CredentialFilter::new().tag("b", "2")).await?, vec![]);
        ensure_eq!(list(p, &CredentialFilter::new()).await?, vec![k]);
        Ok(())
    }

    /// Retrieving an id never stored is `NotFound` naming the id.
    pub async fn retrieve_missing_is_not_found(fx: Fixture) -> CaseResult {
        let k = id("never_stored");
        match fx.provider.retrieve(&k).await {
            Err(StorageError::NotFound { id, .. }) => ensure_eq!(id, k),
            other => fail!("expected NotFound, got {other:?}"),
        }
        Ok(())
    }

    /// Deleting an id never stored succeeds (delete is idempotent).
    pub async fn delete_missing_is_ok(fx: Fixture) -> CaseResult {
        let k = id("never_stored");
        fx.provider.delete(&k).await?;
        fx.provider.delete(&k).await?;
        Ok(())
    }

    /// After delete: retrieve is `NotFound`, exists is false, list omits it, and a
    /// second delete succeeds.
    pub async fn delete_then_retrieve_is_not_found(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("doomed");
        put(p, &k, bytes(vec![9; 16]), meta()).await?;
        p.delete(&k).await?;
        ensure!(
            matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })),
            "retrieve after delete is NotFound"
        );
        ensure!(!p.exists(&k).await?);
        ensure!(list(p, &CredentialFilter::new()).await?.is_empty());
        p.delete(&k).await?;
        Ok(())
    }

    /// An id can be stored again after it was deleted.
    pub async fn store_after_delete(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("phoenix");
        put(p, &k, bytes(vec![1; 8]), tagged(&[("gen", "1")])).await?;
        p.delete(&k).await?;
        let d = bytes(vec![2; 8]);
        let m = tagged(&[("gen", "2")]);
        put(p, &k, d.clone(), m.clone()).await?;
        ensure_eq!(get(p, &k).await?, (d, m));
        ensure!(p.exists(&k).await?);
        Ok(())
    }

    /// One writer creates one id (`store_if` absent), updates it at its revision,
    /// overwrites it with a plain `store` and deletes it, five times over, then creates
    /// it again, while three readers read it (backends without conditional stores use
    /// plain stores throughout). Every read answers what a sequential history allows: the
    /// state after the last operation acknowledged before the read began, or after one
    /// begun before it ended — never a value whose delete was acknowledged, never one
    /// older than an acknowledged store, never an error. A value read is exactly one
    /// store's: its data, its metadata (version included) and the revision that store
    /// returned.
    pub async fn readers_never_see_deleted_or_older_values(fx: Fixture) -> CaseResult {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

        const CYCLES: u8 = 5;
        const READERS: usize = 3;
        let k = id("revoked");
        let t0 = now() - Duration::hours(1);
        let meta_of = move |generation: u8| CredentialMetadata {
            version: u64::from(generation),
            ..at(
                t0 + Duration::milliseconds(i64::from(generation)),
                tagged(&[("generation", &generation.to_string())]),
            )
        };
        // Operation i (from 1) stores generation g (`Some(g)`) or deletes (`None`); the
        // state after it is the same `Option`, and before any operation it is `None`.
        let mut schedule = Vec::new();
        // Generation g is a create when g % 3 == 1, an update at the last revision when
        // g % 3 == 2, a plain overwrite otherwise.
        for cycle in 0..CYCLES {
            schedule.extend([Some(3 * cycle + 1), Some(3 * cycle + 2), Some(3 * cycle + 3), None]);
        }
        schedule.push(Some(3 * CYCLES + 1));
        let schedule = Arc::new(schedule);
        let state_after = {
            let schedule = schedule.clone();
            move |op: usize| if op == 0 { None } else { schedule[op - 1] }
        };
        let (begun, acked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let done = Arc::new(AtomicBool::new(false));

        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (p, k, begun, acked, done) = (
                    fx.provider.clone(),
                    k.clone(),
                    begun.clone(),
                    acked.clone(),
                    done.clone(),
                );
                let state_after = state_after.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while !done.load(SeqCst) {
                        let from = acked.load(SeqCst);
                        let read = p.retrieve(&k).await;
                        let to = begun.load(SeqCst);
                        let state = match read {
                            Ok(s) => {
                                let generation = u8::try_from(s.metadata.version).unwrap_or(u8::MAX);
                                if (s.data.clone(), s.metadata.clone()) != (data(generation), meta_of(generation)) {
                                    return Err(format!(
                                        "read a value that no store wrote whole (metadata version {})",
                                        s.metadata.version
                                    ));
                                }
                                seen.push((generation, s.revision));
                                Some(generation)
                            }
                            Err(StorageError::NotFound { .. }) => None,
                            Err(e) => return Err(format!("a read racing overwrite/delete/store failed: {e}")),
                        };
                        if !(from..=to).any(|op| state_after(op) == state) {
                            let allowed: Vec<_> = (from..=to).map(&state_after).collect();
                            return Err(format!(
                                "read {state:?} (generation, None = not found) while operations {from}..={to} \
                                 allowed only {allowed:?}: a deleted or older value came back"
                            ));
                        }
                        tokio::task::yield_now().await;
                    }
                    Ok(seen)
                })
            })
            .collect();

        let p = fx.provider.as_ref();
        let conditional = p.capabilities().conditional_store;
        let mut written = std::collections::BTreeMap::new();
        let mut last: Option<Revision> = None;
        let mut outcome = Ok(());
        for (i, op) in schedule.iter().enumerate() {
            begun.store(i + 1, SeqCst);
            let result = match op {
                Some(g) => {
                    let (d, m) = (data(*g), meta_of(*g));
                    let stored = match (conditional, g % 3, &last) {
                        (true, 1, _) => p.store_if(&k, &d, &m, &Precondition::Absent).await,
                        (true, 2, Some(r)) => p.store_if(&k, &d, &m, &Precondition::Revision(r.clone())).await,
                        _ => p.store(&k, &d, &m).await,
                    };
                    stored.map(|r| {
                        last = Some(r.clone());
                        written.insert(*g, r);
                    })
                }
                None => p.delete(&k).await.map(|()| last = None),
            };
            if let Err(e) = result {
                outcome = Err(format!("operation {} ({op:?}) failed: {e}", i + 1));
                break;
            }
            acked.store(i + 1, SeqCst);
        }
        done.store(true, SeqCst);
        for r in readers {
            for (generation, revision) in r.await?? {
                ensure_eq!(
                    Some(&revision),
                    written.get(&generation),
                    "the revision read with generation {generation}"
                );
            }
        }
        outcome?;
        let final_generation = 3 * CYCLES + 1;
        let s = p.retrieve(&k).await?;
        ensure_eq!(
            (s.data, s.metadata),
            (data(final_generation), meta_of(final_generation))
        );
        ensure_eq!(Some(&s.revision), written.get(&final_generation));
        Ok(())
    }

    /// `exists` is true for a stored id and false for another.
    pub async fn exists_true_and_false(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("present");
        ensure!(!p.exists(&k).await?);
        put(p, &k, bytes(vec![1]), meta()).await?;
        ensure!(p.exists(&k).await?);
        ensure!(!p.exists(&id("absent")).await?);
        Ok(())
    }

    /// A fresh namespace lists nothing, with or without filters.
    pub async fn list_empty(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        ensure!(list(p, &CredentialFilter::new()).await?.is_empty());
        ensure!(list(p, &CredentialFilter::new().tag("env", "prod")).await?.is_empty());
        ensure!(list(p, &CredentialFilter::new().id_prefix("x")).await?.is_empty());
        Ok(())
    }

    /// `list` returns ids sorted ascending (byte order: uppercase before lowercase).
    pub async fn list_sorted(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let names = ["delta", "Alpha", "charlie", "bravo", "a-1", "a_1", "Zulu", "0zero"];
        for n in names {
            put(p, &id(n), bytes(vec![1]), meta()).await?;
        }
        let mut expected = ids(&names);
        expected.sort();
        ensure_eq!(list(p, &CredentialFilter::new()).await?, expected);
        Ok(())
    }

    /// A one-tag filter returns exactly the credentials with that tag value.
    pub async fn list_by_one_tag(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        put(p, &id("p1"), bytes(vec![1]), tagged(&[("env", "prod")])).await?;
        put(p, &id("p2"), bytes(vec![1]), tagged(&[("env", "prod"), ("x", "y")])).await?;
        put(p, &id("s1"), bytes(vec![1]), tagged(&[("env", "staging")])).await?;
        put(p, &id("n1"), bytes(vec![1]), meta()).await?;
        put(p, &id("c1"), bytes(vec![1]), tagged(&[("env", "Prod")])).await?;
        let got = list(p, &CredentialFilter::new().tag("env", "prod")).await?;
        ensure_eq!(got, ids(&["p1", "p2"]));
        let none = list(p, &CredentialFilter::new().tag("env", "dev")).await?;
        ensure!(none.is_empty());
        Ok(())
    }

    /// A two-tag filter requires both (AND).
    pub async fn list_by_two_tags(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        put(
            p,
            &id("both"),
            bytes(vec![1]),
            tagged(&[("env", "prod"), ("team", "core")]),
        )
        .await?;
        put(p, &id("env_only"), bytes(vec![1]), tagged(&[("env", "prod")])).await?;
        put(p, &id("team_only"), bytes(vec![1]), tagged(&[("team", "core")])).await?;
        put(
            p,
            &id("other_team"),
            bytes(vec![1]),
            tagged(&[("env", "prod"), ("team", "web")]),
        )
        .await?;
        let f = CredentialFilter::new().tag("env", "prod").tag("team", "core");
        ensure_eq!(list(p, &f).await?, ids(&["both"]));
        Ok(())
    }

    /// An id prefix filter is case-sensitive and exact.
    pub async fn list_by_id_prefix(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        for n in ["db_main", "db_replica", "DB_upper", "dbx", "api_db_key"] {
            put(p, &id(n), bytes(vec![1]), meta()).await?;
        }
        let got = list(p, &CredentialFilter::new().id_prefix("db_")).await?;
        ensure_eq!(got, ids(&["db_main", "db_replica"]));
        let got = list(p, &CredentialFilter::new().id_prefix("db").tag("missing", "x")).await?;
        ensure!(got.is_empty());
        Ok(())
    }

    /// `created_after` / `created_before` select by creation time, exclusively.
    pub async fn list_by_created_range(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let t0 = now() - Duration::days(10);
        for (i, n) in ["old", "middle", "new"].into_iter().enumerate() {
            let t = t0 + Duration::hours(i as i64);
            put(p, &id(n), bytes(vec![1]), at(t, meta())).await?;
        }
        let f = CredentialFilter::new()
            .created_after(t0 + Duration::minutes(30))
            .created_before(t0 + Duration::minutes(90));
        ensure_eq!(list(p, &f).await?, ids(&["middle"]));
        let f = CredentialFilter::new().created_after(t0);
        ensure_eq!(list(p, &f).await?, ids(&["middle", "new"]));
        let f = CredentialFilter::new().created_before(t0 + Duration::hours(1));
        ensure_eq!(list(p, &f).await?, ids(&["old"]));
        Ok(())
    }

    /// `Api_Key`, `api_key` and `API_KEY` are three credentials on every backend.
    pub async fn ids_differing_in_case_are_distinct(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let names = ["Api_Key", "api_key", "API_KEY"];
        for (i, n) in names.iter().enumerate() {
            put(p, &id(n), bytes(vec![i as u8; 4]), tagged(&[("n", n)])).await?;
        }
        for (i, n) in names.iter().enumerate() {
            let (d, m) = get(p, &id(n)).await?;
            ensure_eq!(d.ciphertext, vec![i as u8; 4], "{n}");
            ensure_eq!(m.tags["n"], *n);
        }
        let mut expected = ids(&names);
        expected.sort();
        ensure_eq!(list(p, &CredentialFilter::new()).await?, expected);
        p.delete(&id("api_key")).await?;
        ensure!(p.exists(&id("Api_Key")).await?);
        ensure!(!p.exists(&id("api_key")).await?);
        Ok(())
    }

    /// A 128-character mixed-case id with `_` and `-` round-trips and lists as given.
    pub async fn longest_mixed_case_id_round_trips(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let name: String = "Ab_9-zY".chars().cycle().take(128).collect();
        let k = id(&name);
        let d = bytes(vec![5; 20]);
        let m = tagged(&[("long", "yes")]);
        put(p, &k, d.clone(), m.clone()).await?;
        ensure_eq!(get(p, &k).await?, (d, m));
        ensure!(p.exists(&k).await?);
        ensure_eq!(list(p, &CredentialFilter::new()).await?, vec![k.clone()]);
        let prefix: String = name.chars().take(100).collect();
        ensure_eq!(list(p, &CredentialFilter::new().id_prefix(prefix)).await?, vec![k]);
        Ok(())
    }

    /// A tag value with non-ASCII Unicode round-trips and filters.
    pub async fn unicode_tag_value_round_trips(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let value = "Zürich — 東京 ✓ 🚀 ÆØÅ";
        let k = id("unicode");
        let m = tagged(&[("city", value), ("empty", "")]);
        put(p, &k, bytes(vec![1]), m.clone()).await?;
        ensure_eq!(get(p, &k).await?.1, m);
        ensure_eq!(list(p, &CredentialFilter::new().tag("city", value)).await?, vec![k]);
        Ok(())
    }

    /// The maximum of 10 tags round-trips, and a filter on the last one works.
    pub async fn ten_tags_round_trip(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let tags: Tags = (0..10)
            .map(|i| (format!("key-{i}.x_{i}"), format!("value {i}")))
            .collect();
        ensure_eq!(tags.len(), crate::metadata::MAX_TAGS);
        let k = id("ten_tags");
        let m = CredentialMetadata::new().with_tags(tags);
        put(p, &k, bytes(vec![1]), m.clone()).await?;
        ensure_eq!(get(p, &k).await?.1, m);
        let f = CredentialFilter::new().tag("key-9.x_9", "value 9");
        ensure_eq!(list(p, &f).await?, vec![k]);
        Ok(())
    }

    /// A value of half the provider's payload limit stores and round-trips.
    pub async fn payload_within_limit_stores(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let limit = p.capabilities().max_payload_bytes;
        let k = id("half_limit");
        let d = bytes((0..limit / 2).map(|i| (i % 251) as u8).collect());
        put(p, &k, d.clone(), meta()).await?;
        ensure_eq!(get(p, &k).await?.0, d);
        Ok(())
    }

    /// A value of twice the limit is `TooLarge`, naming both sizes, and nothing is stored.
    pub async fn payload_over_limit_is_too_large(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let limit = p.capabilities().max_payload_bytes;
        let k = id("twice_limit");
        match p.store(&k, &bytes(vec![7; limit * 2]), &meta()).await {
            Err(StorageError::TooLarge { id, size, limit: l, .. }) => {
                ensure_eq!(id, k);
                ensure_eq!(l, limit);
                ensure!(size > limit);
            }
            other => fail!("expected TooLarge, got {other:?}"),
        }
        ensure!(!p.exists(&k).await?);
        Ok(())
    }

    /// 50 concurrent stores of distinct ids all land and read back intact.
    pub async fn concurrent_distinct_ids(fx: Fixture) -> CaseResult {
        let tasks: Vec<_> = (0..50u8)
            .map(|i| {
                let p = fx.provider.clone();
                tokio::spawn(async move {
                    let k = id(&format!("parallel_{i:02}"));
                    p.store(&k, &bytes(vec![i; 100]), &tagged(&[("i", &i.to_string())]))
                        .await
                        .map(|_| k)
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        let p = fx.provider.as_ref();
        let listed = list(p, &CredentialFilter::new()).await?;
        ensure_eq!(listed.len(), 50);
        for i in 0..50u8 {
            let (d, m) = get(p, &id(&format!("parallel_{i:02}"))).await?;
            ensure_eq!(d.ciphertext, vec![i; 100]);
            ensure_eq!(m.tags["i"], i.to_string());
        }
        Ok(())
    }

    /// 50 concurrent stores to one id leave exactly one intact record: data and
    /// metadata from the same writer.
    pub async fn concurrent_same_id(fx: Fixture) -> CaseResult {
        let k = id("contended");
        let tasks: Vec<_> = (0..50u8)
            .map(|i| {
                let p = fx.provider.clone();
                let k = k.clone();
                tokio::spawn(async move {
                    p.store(&k, &bytes(vec![i; 200]), &tagged(&[("writer", &i.to_string())]))
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        let p = fx.provider.as_ref();
        let (d, m) = get(p, &k).await?;
        let writer: u8 = m.tags["writer"].parse()?;
        ensure_eq!(
            d.ciphertext,
            vec![writer; 200],
            "data and metadata from different writers"
        );
        ensure_eq!(list(p, &CredentialFilter::new()).await?, vec![k]);
        Ok(())
    }

    /// 50 tasks at once over 10 seeded ids: each stores an id of its own (with a tag),
    /// reads it back, checks it exists, then one more operation of every kind (read,
    /// exists, list or overwrite of a seed, or delete of its own id). Every operation
    /// succeeds and the end state is exact.
    pub async fn fifty_parallel_operations(fx: Fixture) -> CaseResult {
        let p = fx.provider.clone();
        for i in 0..10u8 {
            put(p.as_ref(), &id(&format!("seed_{i}")), data(i), meta()).await?;
        }
        let tasks: Vec<_> = (0..50u8)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(async move {
                    let own = id(&format!("Par_{i:02}"));
                    let seed = id(&format!("seed_{}", i % 10));
                    p.store(&own, &data(i), &tagged(&[("i", &i.to_string()), ("batch", "one")]))
                        .await?;
                    let (d, m) = p.retrieve(&own).await?.into_parts();
                    if d != data(i) || m.tags["i"] != i.to_string() {
                        return Err(format!("task {i} read another value back").into());
                    }
                    if !p.exists(&own).await? {
                        return Err(format!("task {i}: its own id does not exist").into());
                    }
                    match i % 5 {
                        0 => p.retrieve(&seed).await.map(drop)?,
                        1 => {
                            if !p.exists(&seed).await? {
                                return Err(format!("task {i}: {seed} does not exist").into());
                            }
                        }
                        2 => p.list(&CredentialFilter::new()).await.map(drop)?,
                        3 => p.store(&seed, &data(i), &meta()).await.map(drop)?,
                        _ => p.delete(&own).await?,
                    }
                    Ok::<_, BoxError>(())
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            t.await?.map_err(|e| format!("parallel task {i} failed: {e}"))?;
        }
        let kept: Vec<CredentialId> = (0..50u8)
            .filter(|i| i % 5 != 4)
            .map(|i| id(&format!("Par_{i:02}")))
            .collect();
        let mut expected: Vec<CredentialId> = kept.clone();
        expected.extend((0..10u8).map(|i| id(&format!("seed_{i}"))));
        expected.sort();
        ensure_eq!(list(p.as_ref(), &CredentialFilter::new()).await?, expected);
        ensure_eq!(
            list(p.as_ref(), &CredentialFilter::new().tag("batch", "one")).await?,
            kept,
            "list by tag after parallel writes"
        );
        for s in [3u8, 8] {
            let seed = id(&format!("seed_{s}"));
            let written: Vec<_> = (0..50u8).filter(|j| j % 10 == s).map(data).collect();
            ensure!(
                written.contains(&get(p.as_ref(), &seed).await?.0),
                "{seed} holds a value no writer stored"
            );
        }
        Ok(())
    }

    /// Two providers in different namespaces never see each other's credentials, even
    /// under the same id.
    pub async fn namespaces_are_isolated(fx: Fixture) -> CaseResult {
        let a = fx.provider.clone();
        let b = fx.other_namespace("b").await;
        let shared = id("same_name");
        put(a.as_ref(), &shared, bytes(vec![0xA]), tagged(&[("side", "a")])).await?;
        put(b.as_ref(), &shared, bytes(vec![0xB]), tagged(&[("side", "b")])).await?;
        put(a.as_ref(), &id("only_a"), bytes(vec![1]), tagged(&[("side", "a")])).await?;
        ensure_eq!(get(a.as_ref(), &shared).await?.0.ciphertext, vec![0xA]);
        ensure_eq!(get(b.as_ref(), &shared).await?.0.ciphertext, vec![0xB]);
        ensure_eq!(
            list(a.as_ref(), &CredentialFilter::new()).await?,
            ids(&["only_a", "same_name"])
        );
        ensure_eq!(list(b.as_ref(), &CredentialFilter::new()).await?, ids(&["same_name"]));
        ensure!(
            list(b.as_ref(), &CredentialFilter::new().tag("side", "a"))
                .await?
                .is_empty()
        );
        ensure!(!b.exists(&id("only_a")).await?);
        b.delete(&shared).await?;
        ensure!(a.exists(&shared).await?);
        Ok(())
    }

    /// A backend without atomic conditional stores refuses one at a revision with
    /// `Unsupported` and writes nothing.
    async fn refuses_conditional(p: &dyn StorageProvider, k: &CredentialId) -> CaseResult {
        let rev = p.store(k, &data(1), &meta()).await?;
        let got = p.store_if(k, &data(2), &meta(), &Precondition::Revision(rev)).await;
        ensure!(
            matches!(got, Err(StorageError::Unsupported { .. })),
            "expected Unsupported, got {got:?}"
        );
        ensure_eq!(get(p, k).await?.0, data(1));
        Ok(())
    }

    /// `check` succeeds against a working backend.
    pub async fn check_succeeds(fx: Fixture) -> CaseResult {
        fx.provider.check().await?;
        Ok(())
    }

    /// Every store yields a new revision, and `retrieve` reports the latest.
    pub async fn revision_changes_on_every_store(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("revised");
        let mut seen = Vec::new();
        for fill in 1..=3u8 {
            let written = p.store(&k, &data(fill), &meta()).await?;
            ensure_eq!(
                p.retrieve(&k).await?.revision,
                written.clone(),
                "retrieve reports the revision written"
            );
            ensure!(!seen.contains(&written), "revision {written} repeated");
            seen.push(written);
        }
        Ok(())
    }

    /// `revision` reports what `retrieve` reports, and follows every store.
    pub async fn revision_matches_retrieve(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("revision_only");
        for fill in 1..=3u8 {
            let written = p
                .store(&k, &data(fill), &tagged(&[("round", &fill.to_string())]))
                .await?;
            ensure_eq!(
                p.revision(&k).await?,
                written.clone(),
                "revision reports the revision written"
            );
            ensure_eq!(
                p.retrieve(&k).await?.revision,
                p.revision(&k).await?,
                "revision equals retrieve's revision"
            );
        }
        Ok(())
    }

    /// `revision` of a missing or deleted id is `NotFound`.
    pub async fn revision_of_missing_is_not_found(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("revision_gone");
        match p.revision(&k).await {
            Err(e) if e.is_not_found() => {}
            other => fail!("revision of a missing id: expected NotFound, got {other:?}"),
        }
        p.store(&k, &data(7), &meta()).await?;
        p.delete(&k).await?;
        match p.revision(&k).await {
            Err(e) if e.is_not_found() => {}
            other => fail!("revision of a deleted id: expected NotFound, got {other:?}"),
        }
        Ok(())
    }

    /// A conditional create of an existing id is `Conflict` and leaves the record as it
    /// was; of a missing id it stores. Without atomic conditional stores: `Unsupported`.
    pub async fn conditional_create_of_existing_is_conflict(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("created_once");
        if !p.capabilities().conditional_store {
            let got = p.store_if(&k, &data(1), &meta(), &Precondition::Absent).await;
            ensure!(
                matches!(got, Err(StorageError::Unsupported { .. })),
                "expected Unsupported, got {got:?}"
            );
            ensure!(!p.exists(&k).await?, "a refused conditional store wrote");
            return Ok(());
        }
        let first = tagged(&[("w", "1")]);
        p.store_if(&k, &data(1), &first, &Precondition::Absent).await?;
        let again = p
            .store_if(&k, &data(2), &tagged(&[("w", "2")]), &Precondition::Absent)
            .await;
        ensure!(
            matches!(&again, Err(StorageError::Conflict { .. })),
            "expected Conflict, got {again:?}"
        );
        ensure_eq!(get(p, &k).await?, (data(1), first));
        Ok(())
    }

    /// A store at a stale revision is `Conflict` and keeps the newer value; at the
    /// current revision it stores.
    pub async fn stale_revision_is_conflict_and_newer_kept(fx: Fixture) -> CaseResult {
        let p = fx.provider.as_ref();
        let k = id("stale");
        if !p.capabilities().conditional_store {
            return refuses_conditional(p, &k).await;
        }
        let first = p.store(&k, &data(1), &meta()).await?;
        let second = p
            .store_if(&k, &data(2), &meta(), &Precondition::Revision(first.clone()))
            .await?;
        let stale = p.store_if(&k, &data(3), &meta(), &Precondition::Revision(first)).await;
        match &stale {
            Err(StorageError::Conflict { id: cid, reason, .. }) => {
                ensure_eq!(cid, &k);
                ensure!(reason.contains("re-read"), "the message says what to do: {reason}");
            }
            other => fail!("expected Conflict, got {other:?}"),
        }
        ensure_eq!(get(p, &k).await?.0, data(2));
        p.store_if(&k, &data(4), &meta(), &Precondition::Revision(second))
            .await?;
        ensure_eq!(get(p, &k).await?.0, data(4));
        p.delete(&k).await?;
        let revived = p
            .store_if(&k, &data(5), &meta(), &Precondition::Revision(Revision::new("1")))
            .await;
        ensure!(
            matches!(revived, Err(StorageError::Conflict { .. })),
            "a deleted record has no revision: {revived:?}"
        );
        ensure!(
            !p.exists(&k).await?,
            "a store at a revision must not recreate a deleted record"
        );
        Ok(())
    }

    /// 16 writers storing concurrently from the same revision: exactly one wins, the
    /// others get `Conflict`, and the winner's value is what is stored.
    pub async fn concurrent_conditional_writers_one_wins(fx: Fixture) -> CaseResult {
        let k = id("raced");
        if !fx.provider.capabilities().conditional_store {
            return refuses_conditional(fx.provider.as_ref(), &k).await;
        }
        let base = fx.provider.store(&k, &data(0), &meta()).await?;
        let tasks: Vec<_> = (1..=16u8)
            .map(|i| {
                let (p, k, base) = (fx.provider.clone(), k.clone(), base.clone());
                tokio::spawn(async move {
                    let r = p.store_if(&k, &data(i), &meta(), &Precondition::Revision(base)).await;
                    (i, r)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await? {
                (i, Ok(_)) => winners.push(i),
                (_, Err(StorageError::Conflict { .. })) => {}
                (i, Err(e)) => fail!("writer {i} failed with {e}"),
            }
        }
        ensure_eq!(winners.len(), 1, "winners: {winners:?}");
        ensure_eq!(get(fx.provider.as_ref(), &k).await?.0, data(winners[0]));
        Ok(())
    }

    /// An object under our name without our managed-by marker is never listed, read
    /// as ours, overwritten or deleted: each operation says `Conflict` (or, for
    /// `exists`, that no credential of ours is there), and the object survives.
    pub async fn foreign_object_is_never_ours(fx: Fixture) -> CaseResult {
        let Some(foreign) = fx.foreign.clone() else {
            fail!("foreign_object_is_never_ours needs a `foreign =` hook");
        };
        let p = fx.provider.as_ref();
        let k = id("Foreign_Name");
        foreign.plant(&fx.namespace, &k).await?;
        let outcome = async {
            ensure!(
                list(p, &CredentialFilter::new()).await?.is_empty(),
                "a foreign object was listed"
            );
            let read = p.retrieve(&k).await;
            ensure!(
                matches!(read, Err(StorageError::Conflict { .. })),
                "retrieve: expected Conflict, got {read:?}"
            );
            ensure!(
                !matches!(p.exists(&k).await, Ok(true)),
                "exists reported a foreign object as ours"
            );
            let put = p.store(&k, &data(1), &meta()).await;
            ensure!(
                matches!(put, Err(StorageError::Conflict { .. })),
                "store: expected Conflict, got {put:?}"
            );
            if p.capabilities().conditional_store {
                let put = p.store_if(&k, &data(1), &meta(), &Precondition::Absent).await;
                ensure!(
                    matches!(put, Err(StorageError::Conflict { .. })),
                    "store_if: expected Conflict, got {put:?}"
                );
            }
            let del = p.delete(&k).await;
            ensure!(
                matches!(del, Err(StorageError::Conflict { .. })),
                "delete: expected Conflict, got {del:?}"
            );
            ensure!(
                foreign.intact(&fx.namespace, &k).await?,
                "the foreign object was changed or removed"
            );
            Ok(())
        }
        .await;
        foreign.remove(&fx.namespace, &k).await?;
        outcome
    }

    /// The hook a hooked case needs, or the case fails naming it.
    fn hook<T: ?Sized>(hook: &Option<Arc<T>>, name: &str) -> Result<Arc<T>, BoxError> {
        hook.clone()
            .ok_or_else(|| format!("this case needs the `{name} =` hook of conformance_tests!").into())
    }

    /// `error` is of `kind`, not retryable, without the identity's secret, and says what
    /// the backend promises (the hook's [`explains`](Identity::explains)).
    fn refused(
        identity: &dyn Identity,
        namespace: &str,
        op: &str,
        k: &CredentialId,
        error: &StorageError,
        kind: ErrorKind,
    ) -> CaseResult {
        ensure_eq!(error.kind(), kind, "{op}: {error}");
        ensure!(!error.is_retryable(), "{op}: a refusal is not retryable: {error}");
        if let Some(secret) = identity.secret() {
            ensure!(
                !format!("{error} {error:?}").contains(&secret),
                "{op}: the secret shows in the error"
            );
        }
        identity.explains(namespace, op, k, error)
    }

    /// An identity that may only read reads what a full-rights one stored, and its
    /// writes (an overwrite, a create, a delete) are `PermissionDenied`, not retried,
    /// saying what to grant; the stored value is intact and nothing was created.
    pub async fn read_only_identity_is_permission_denied(fx: Fixture) -> CaseResult {
        let reader_hook = hook(&fx.hooks.read_only, "read_only")?;
        let writer = match reader_hook.writer(&fx.namespace).await? {
            Some(w) => {
                fx.track(w.clone());
                w
            }
            None => fx.provider.clone(),
        };
        let k = id("Guarded");
        let fresh = id("Fresh");
        put(writer.as_ref(), &k, data(1), meta()).await?;
        let Opened {
            provider: reader,
            metrics,
        } = reader_hook.open(&fx.namespace).await?;
        ensure_eq!(get(reader.as_ref(), &k).await?.0, data(1), "read is allowed");
        ensure_eq!(list(reader.as_ref(), &CredentialFilter::new()).await?, vec![k.clone()]);
        let attempts = [
            ("store", &k, reader.store(&k, &data(2), &meta()).await.map(drop)),
            (
                "create",
                &fresh,
                reader.store(&fresh, &data(2), &meta()).await.map(drop),
            ),
            ("delete", &k, reader.delete(&k).await),
        ];
        for (op, target, outcome) in attempts {
            let Err(e) = outcome else {
                fail!("{op} of {target} with a read-only identity succeeded");
            };
            refused(
                reader_hook.as_ref(),
                &fx.namespace,
                op,
                target,
                &e,
                ErrorKind::PermissionDenied,
            )?;
        }
        let m = metrics.snapshot();
        ensure_eq!((m.store.retries, m.delete.retries), (0, 0), "denials are not retried");
        ensure_eq!(get(writer.as_ref(), &k).await?.0, data(1), "the value is intact");
        ensure!(!writer.exists(&fresh).await?, "a denied create wrote");
        Ok(())
    }

    /// Credentials the service rejects make every operation `AuthenticationFailed`, at
    /// once (not retried), and the credential never shows in errors or `Debug`.
    pub async fn rejected_credentials_are_authentication_failed(fx: Fixture) -> CaseResult {
        let rejected = hook(&fx.hooks.rejected, "rejected")?;
        let Opened { provider: p, metrics } = rejected.open(&fx.namespace).await?;
        let k = id("anything");
        let attempts = [
            ("retrieve", p.retrieve(&k).await.map(drop)),
            ("store", p.store(&k, &data(1), &meta()).await.map(drop)),
            ("list", p.list(&CredentialFilter::new()).await.map(drop)),
            ("check", p.check().await),
        ];
        for (op, outcome) in attempts {
            let Err(e) = outcome else {
                fail!("{op} with rejected credentials succeeded");
            };
            refused(
                rejected.as_ref(),
                &fx.namespace,
                op,
                &k,
                &e,
                ErrorKind::AuthenticationFailed,
            )?;
        }
        let m = metrics.snapshot();
        ensure_eq!(
            (m.retrieve.retries, m.store.retries, m.list.retries, m.check.retries),
            (0, 0, 0, 0),
            "rejections are not retried"
        );
        if let Some(secret) = rejected.secret() {
            ensure!(
                !format!("{p:?}").contains(&secret),
                "the secret shows in the provider's Debug"
            );
        }
        Ok(())
    }

    /// A client that does not trust the server's CA is refused at the handshake: a
    /// `Backend` error, not retryable and not retried (though retries are configured),
    /// at once, naming the setting that trusts a CA.
    pub async fn untrusted_ca_is_refused_and_not_retried(fx: Fixture) -> CaseResult {
        let untrusted = hook(&fx.hooks.untrusted_ca, "untrusted_ca")?;
        let Opened { provider: p, metrics } = untrusted.open(&fx.namespace).await?;
        let k = id("anything");
        let started = std::time::Instant::now();
        let attempts = [
            ("check", p.check().await),
            ("retrieve", p.retrieve(&k).await.map(drop)),
            ("exists", p.exists(&k).await.map(drop)),
            ("store", p.store(&k, &data(1), &meta()).await.map(drop)),
        ];
        for (op, outcome) in attempts {
            let Err(e) = outcome else {
                fail!("{op} without the server's CA succeeded");
            };
            refused(untrusted.as_ref(), &fx.namespace, op, &k, &e, ErrorKind::Backend)?;
        }
        let m = metrics.snapshot();
        ensure_eq!(
            (m.check.retries, m.retrieve.retries, m.exists.retries, m.store.retries),
            (0, 0, 0, 0),
            "a refused handshake is not retried"
        );
        let elapsed = started.elapsed();
        ensure!(
            elapsed < std::time::Duration::from_secs(5),
            "refused at once, took {elapsed:?}"
        );
        Ok(())
    }

    /// An overwrite replaces our tags (a removed one, a digested one and all) and keeps
    /// the default tag and every mark another tool added; filters follow the new tags.
    pub async fn overwrite_keeps_tags_other_tools_added(fx: Fixture) -> CaseResult {
        let tools = hook(&fx.hooks.other_tools, "other_tools")?;
        let ns = fx.namespace.as_str();
        let default_key = tools.default_tag_key();
        let p = tools.open_with_default_tag(ns, default_key, "payments").await?;
        fx.track(p.clone());
        let k = id("Shared");
        put(
            p.as_ref(),
            &k,
            data(1),
            tagged(&[("env", "prod"), ("tier", "1"), ("city", "Zürich")]),
        )
        .await?;
        tools.mark(ns, &k).await?;
        ensure!(tools.marked(ns, &k).await?, "the other tool's marks were not added");
        let staging = tagged(&[("env", "staging")]);
        put(p.as_ref(), &k, data(2), staging.clone()).await?;
        ensure!(tools.marked(ns, &k).await?, "an overwrite removed another tool's marks");
        let raw = tools.raw_tags(ns, &k).await?;
        ensure_eq!(
            raw.get(&tools.tag_key("env")).map(String::as_str),
            Some("staging"),
            "{raw:?}"
        );
        for gone in ["tier", "city"] {
            ensure!(
                !raw.contains_key(&tools.tag_key(gone)),
                "our old tag {gone} stayed: {raw:?}"
            );
        }
        ensure_eq!(
            raw.get(default_key).map(String::as_str),
            Some("payments"),
            "the default tag: {raw:?}"
        );
        ensure_eq!(get(p.as_ref(), &k).await?, (data(2), staging));
        ensure_eq!(
            list(p.as_ref(), &CredentialFilter::new().tag("env", "staging")).await?,
            vec![k]
        );
        ensure!(
            list(p.as_ref(), &CredentialFilter::new().tag("tier", "1"))
                .await?
                .is_empty()
        );
        ensure!(
            list(p.as_ref(), &CredentialFilter::new().tag("env", "prod"))
                .await?
                .is_empty()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The hooked cases against memory stores wrapped to refuse as a remote service
    //! would, and proof that each case fails when the hook does not refuse as promised.
    use std::collections::HashMap;
    use std::sync::LazyLock;

    use super::*;
    use crate::data::EncryptedData;
    use crate::memory::MemoryProvider;
    use crate::operation::Operation;
    use crate::provider::{Capabilities, Precondition, Stored};

    /// One memory store per namespace, so every identity of a case sees the same records.
    fn store_of(namespace: &str) -> MemoryProvider {
        static STORES: LazyLock<Mutex<HashMap<String, MemoryProvider>>> = LazyLock::new(Mutex::default);
        STORES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(namespace.to_string())
            .or_default()
            .clone()
    }

    /// What a [`Refusing`] provider refuses.
    #[derive(Debug, Clone, Copy)]
    enum Refuse {
        /// Nothing: a broken hook.
        Nothing,
        /// Writes, as `PermissionDenied`.
        Writes,
        /// Everything, as `AuthenticationFailed` naming `secret` when `leak`.
        Everything { leak: bool },
        /// Everything, as a non-retryable `Backend` error naming `ca_cert`.
        Handshakes,
    }

    const SECRET: &str = "s3cr3t-token";

    /// A namespace's memory store seen through an identity that is refused `refuse`.
    #[derive(Debug)]
    struct Refusing {
        inner: MemoryProvider,
        refuse: Refuse,
    }

    impl Refusing {
        fn refused(&self, operation: Operation, write: bool) -> Result<(), StorageError> {
            match self.refuse {
                Refuse::Nothing => Ok(()),
                Refuse::Writes if write => Err(StorageError::permission_denied(
                    "memory",
                    operation,
                    None,
                    "grant writes",
                )),
                Refuse::Writes => Ok(()),
                Refuse::Everything { leak } => Err(StorageError::authentication_failed(
                    "memory",
                    if leak { SECRET } else { "check the token" },
                )),
                Refuse::Handshakes => Err(StorageError::backend(
                    "memory",
                    operation,
                    None,
                    "the server's certificate is not trusted: set ca_cert",
                )),
            }
        }
    }

    #[crate::async_trait]
    impl StorageProvider for Refusing {
        fn provider_name(&self) -> &'static str {
            "memory"
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
            self.refused(Operation::Store, true)?;
            self.inner.store_if(id, data, metadata, precondition).await
        }

        async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
            self.refused(Operation::Retrieve, false)?;
            self.inner.retrieve(id).await
        }

        async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
            self.refused(Operation::Delete, true)?;
            self.inner.delete(id).await
        }

        async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
            self.refused(Operation::List, false)?;
            self.inner.list(filter).await
        }

        async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
            self.refused(Operation::Exists, false)?;
            self.inner.exists(id).await
        }
    }

    /// An identity whose provider refuses `0`.
    struct As(Refuse);

    impl Identity for As {
        fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
            Box::pin(async move {
                Ok(Opened {
                    provider: Arc::new(Refusing {
                        inner: store_of(namespace),
                        refuse: self.0,
                    }),
                    metrics: Arc::new(StorageMetrics::new()),
                })
            })
        }

        fn secret(&self) -> Option<String> {
            Some(SECRET.into())
        }
    }

    crate::conformance_tests!(
        memory_with_hooks,
        |namespace: String| async move { store_of(&namespace) },
        read_only = As(Refuse::Writes),
        rejected = As(Refuse::Everything { leak: false }),
        untrusted_ca = As(Refuse::Handshakes),
        other_tools = absent("nothing else writes to a memory store"),
    );

    /// Runs `case` with `hooks` over memory stores; the panic message if it failed.
    async fn failure_of(name: &'static str, hooks: Hooks, case: Case) -> Option<String> {
        let outcome = tokio::spawn(run_with_hooks(
            name,
            |namespace: String| async move { store_of(&namespace) },
            hooks,
            case,
        ))
        .await;
        let panic = outcome.err()?.into_panic();
        Some(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_identity_that_may_write_fails_its_case() {
        let hooks = Hooks {
            read_only: Some(Arc::new(As(Refuse::Nothing))),
            ..Hooks::default()
        };
        let failure = failure_of("ro_writes", hooks, |fx| {
            Box::pin(cases::read_only_identity_is_permission_denied(fx))
        })
        .await;
        let message = failure.expect("the case failed");
        assert!(message.contains("with a read-only identity succeeded"), "{message}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rejected_credentials_that_show_the_secret_fail_their_case() {
        let hooks = Hooks {
            rejected: Some(Arc::new(As(Refuse::Everything { leak: true }))),
            ..Hooks::default()
        };
        let failure = failure_of("rejected_leaks", hooks, |fx| {
            Box::pin(cases::rejected_credentials_are_authentication_failed(fx))
        })
        .await;
        let message = failure.expect("the case failed");
        assert!(message.contains("the secret shows in the error"), "{message}");
        assert!(
            !message.contains(SECRET),
            "the failure itself never shows it: {message}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_of_the_wrong_kind_fails_the_untrusted_ca_case() {
        let hooks = Hooks {
            untrusted_ca: Some(Arc::new(As(Refuse::Everything { leak: false }))),
            ..Hooks::default()
        };
        let failure = failure_of("untrusted_kind", hooks, |fx| {
            Box::pin(cases::untrusted_ca_is_refused_and_not_retried(fx))
        })
        .await;
        let message = failure.expect("the case failed");
        assert!(message.contains("Backend"), "{message}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hooked_case_without_its_hook_fails_naming_it() {
        let failure = failure_of("no_hook", Hooks::default(), |fx| {
            Box::pin(cases::overwrite_keeps_tags_other_tools_added(fx))
        })
        .await;
        let message = failure.expect("the case failed");
        assert!(message.contains("`other_tools =` hook"), "{message}");
    }
}
