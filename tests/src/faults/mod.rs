//! The network fault matrix (issue 23): a provider opened through `open()` with short
//! deadlines talks to its emulator through a Toxiproxy proxy, and the matrix injects faults
//! between them ([`toxiproxy`]). Every call is timed against its budget, every error's kind
//! is checked, and a model of each credential's possible values catches lost acknowledged
//! writes and values read back from deleted credentials.
//!
//! A backend's test builds a [`Target`] (the proxy, a configuration through it with
//! [`retry`] and [`timeouts`], and the same namespace reached directly) and calls [`run`],
//! which runs [`matrix`] and then [`workload`], prints the figures and fails on any
//! lost write, misclassified error or hang.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nebula_credential::{
    CredentialId, EncryptedData, ErrorKind, Operation, RetryPolicy, StorageConfig, StorageError, StorageProvider,
    Timeouts,
};

use crate::open_config;

pub mod matrix;
pub mod toxiproxy;
pub mod workload;

use toxiproxy::Proxy;

/// The deadline of reads (`retrieve`, `exists`, `list`) in the matrix.
pub const READ_MS: u64 = 1_000;
/// The deadline of writes (`store`, `delete`) in the matrix.
pub const WRITE_MS: u64 = 1_000;
/// Retries after the first attempt in the matrix.
pub const RETRIES: u32 = 2;
/// A call that has not returned after this many budgets has hung (the test fails).
pub const HANG_FACTOR: u32 = 3;

/// The retry policy of the provider under test: [`RETRIES`] retries, short backoff.
pub fn retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: RETRIES,
        base_delay_ms: 50,
        max_delay_ms: 200,
        multiplier: 2.0,
        jitter: 0.25,
    }
}

/// The deadlines of the provider under test: [`READ_MS`], [`WRITE_MS`].
pub fn timeouts() -> Timeouts {
    Timeouts {
        read_ms: READ_MS,
        write_ms: WRITE_MS,
    }
}

/// The longest a call of `operation` may take through the standard layers: its deadline
/// per attempt × (retries + 1), plus the longest backoff between attempts (with jitter).
pub fn budget(operation: Operation) -> Duration {
    let policy = retry();
    let deadline = timeouts().for_operation(operation);
    let backoff: Duration = (0..policy.max_retries)
        .map(|attempt| policy.base_delay(attempt).mul_f64(1.0 + policy.jitter))
        .sum();
    deadline * (policy.max_retries + 1) + backoff
}

/// One backend under test.
pub struct Target {
    /// The backend's name, in the figures lines.
    pub backend: &'static str,
    /// The proxy in front of its emulator.
    pub proxy: Proxy,
    /// A configuration through the proxy, with [`retry`] and [`timeouts`].
    pub through: StorageConfig,
    /// The same namespace, straight to the emulator (for checks behind the faults).
    pub direct: StorageConfig,
}

/// What the run counted, printed as the figures lines.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Faults injected (each toxic added, each time the proxy went down).
    pub injected: u64,
    /// Calls made through the proxy.
    pub calls: u64,
    /// Acknowledged writes not seen by a later read.
    pub lost: u64,
    /// Values read back from credentials known to be deleted.
    pub deleted_values: u64,
    /// Longest call ÷ its budget ([`budget`]).
    pub worst_ratio: f64,
    /// What the longest call was.
    pub worst_call: String,
    /// Errors of a kind wrong for a network fault, or not marked by the retry layer.
    pub misclassified: u64,
    /// Calls that failed, by error kind (`NotFound` answers left out).
    pub failures: std::collections::BTreeMap<&'static str, u64>,
    /// Reads that failed under a fault milder than the deadline (a shorter black hole,
    /// small latency, a fast trickle).
    pub unexpected: u64,
    /// One line per misclassified error, lost write or unexpected failure, for the
    /// failure message.
    pub problems: Vec<String>,
}

/// The figures of one backend, shared by the matrix and the workload.
#[derive(Clone)]
pub struct Recorder {
    backend: &'static str,
    figures: Arc<Mutex<Figures>>,
}

impl Recorder {
    /// An empty record for `backend`.
    pub fn new(backend: &'static str) -> Self {
        Recorder {
            backend,
            figures: Arc::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Figures) -> T) -> T {
        f(&mut self.figures.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Counts a fault injected.
    pub fn injected(&self) {
        self.with(|f| f.injected += 1);
    }

    /// Counts a lost acknowledged write (or a deleted credential's value read back).
    pub fn lost(&self, deleted_value: bool, what: String) {
        self.with(|f| {
            if deleted_value {
                f.deleted_values += 1;
            } else {
                f.lost += 1;
            }
            f.problems.push(what);
        });
    }

    /// Counts a read that failed under a fault milder than the deadline.
    pub fn unexpected(&self, what: String) {
        self.with(|f| {
            f.unexpected += 1;
            f.problems.push(what);
        });
    }

    /// Runs `call` of `operation` through the proxy: times it against [`budget`] (panicking
    /// if it hangs past [`HANG_FACTOR`] budgets), and checks any error but `NotFound`
    /// is one a network fault may give: a transient kind (in `expected` when given) that
    /// the retry layer gave up on after every attempt.
    pub async fn call<T>(
        &self,
        operation: Operation,
        what: impl fmt::Display,
        expected: Option<ErrorKind>,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let budget = budget(operation);
        let started = Instant::now();
        let Ok(result) = tokio::time::timeout(budget * HANG_FACTOR, call).await else {
            panic!(
                "{}: {operation:?} ({what}) hung: no answer within {HANG_FACTOR} × its budget of {budget:?}",
                self.backend
            );
        };
        let took = started.elapsed();
        let ratio = took.as_secs_f64() / budget.as_secs_f64();
        let problem = match &result {
            Err(e) if !e.is_not_found() => misclassified(e, expected),
            _ => None,
        };
        let failed = match &result {
            Err(e) if !e.is_not_found() => Some(e.kind().as_str()),
            _ => None,
        };
        self.with(|f| {
            f.calls += 1;
            if let Some(kind) = failed {
                *f.failures.entry(kind).or_default() += 1;
            }
            if ratio > f.worst_ratio {
                f.worst_ratio = ratio;
                f.worst_call = format!("{operation:?} ({what}) took {took:?} of {budget:?}");
            }
            if let Some(p) = problem {
                f.misclassified += 1;
                f.problems.push(format!("{operation:?} ({what}): {p}"));
            }
        });
        result
    }

    /// What was counted so far.
    pub fn figures(&self) -> Figures {
        self.with(|f| f.clone())
    }

    /// Prints the figures lines straight to the process's stderr (not through the test
    /// harness's capture, so `cargo test` and `cargo xtask test-integration` show them
    /// without `--nocapture`).
    pub fn print(&self) {
        use std::io::Write;
        let f = self.figures();
        let b = self.backend;
        let text = format!(
            "faults {b} injected: {}\nfaults {b} calls: {}\nfaults {b} acknowledged writes lost: {}\n\
             faults {b} longest call / deadline budget: {:.2}\nfaults {b} misclassified errors: {}\n",
            f.injected, f.calls, f.lost, f.worst_ratio, f.misclassified
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = writeln!(
            err,
            "  ({b}: failed calls by kind {:?}; longest call: {})",
            f.failures, f.worst_call
        );
    }
}

/// Why `e` is not what a network fault should give, if it is not (with its source chain).
fn misclassified(e: &StorageError, expected: Option<ErrorKind>) -> Option<String> {
    why_misclassified(e, expected).map(|why| {
        let chain: Vec<String> = nebula_credential::remote::source_chain(e)
            .skip(1)
            .map(|s| format!("{s} [{s:?}]"))
            .collect();
        format!("{why}; caused by: {}", chain.join(" <- "))
    })
}

/// Why `e` is not what a network fault should give, if it is not.
fn why_misclassified(e: &StorageError, expected: Option<ErrorKind>) -> Option<String> {
    let kind = e.kind();
    if !kind.is_transient() {
        return Some(format!("kind {kind} is not transient: {e}"));
    }
    if let Some(want) = expected.filter(|w| *w != kind) {
        return Some(format!("kind {kind}, expected {want}: {e}"));
    }
    match e.retried() {
        Some(r) if r.attempts == RETRIES + 1 => None,
        Some(r) => Some(format!(
            "retried() says {} attempts, expected {}: {e}",
            r.attempts,
            RETRIES + 1
        )),
        None => Some(format!("retried() is None: the retry layer did not mark it: {e}")),
    }
}

/// Encrypted data standing for value number `n` (its ciphertext is `n`).
pub fn value(n: u64) -> EncryptedData {
    nebula_credential_core::conformance::bytes(n.to_be_bytes().to_vec())
}

/// The value number of `data` (see [`value`]); panics on data the matrix did not write.
pub fn number(data: &EncryptedData) -> u64 {
    let bytes: [u8; 8] = data.ciphertext.as_slice().try_into().unwrap_or_else(|_| {
        panic!(
            "a value the fault matrix did not write: {} bytes",
            data.ciphertext.len()
        )
    });
    u64::from_be_bytes(bytes)
}

/// A credential id of the matrix.
pub fn id(name: &str) -> CredentialId {
    name.parse().expect("valid id")
}

/// Runs the matrix then the workload against `target`, prints the figures, cleans up,
/// and fails on any lost write, value of a deleted credential or misclassified error.
pub async fn run(mut target: Target) {
    let through = open_config(&target.through).await;
    let direct = open_config(&target.direct).await;
    let rec = Recorder::new(target.backend);
    matrix::run(&rec, &mut target.proxy, through.as_ref(), direct.as_ref()).await;
    workload::run(&rec, &mut target.proxy, through.clone(), direct.as_ref()).await;
    rec.print();
    crate::cleanup(direct.as_ref()).await;
    target.proxy.delete().await;
    let f = rec.figures();
    assert!(
        f.lost == 0 && f.deleted_values == 0 && f.misclassified == 0 && f.unexpected == 0,
        "{}: {} acknowledged writes lost, {} values of deleted credentials, {} misclassified errors, \
         {} failures under faults milder than the deadline:\n  {}",
        target.backend,
        f.lost,
        f.deleted_values,
        f.misclassified,
        f.unexpected,
        f.problems.join("\n  ")
    );
}

/// `provider`'s value number of `id` (`None`: not found); panics on any other error.
pub async fn read_number(provider: &dyn StorageProvider, id: &CredentialId) -> Option<u64> {
    match provider.retrieve(id).await {
        Ok(s) => Some(number(&s.data)),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("direct read of {id} failed (no fault on that path): {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_every_attempt_plus_the_longest_backoff() {
        // 3 attempts of 1 s, then backoffs of 50 and 100 ms, each up to 25 % longer.
        assert_eq!(budget(Operation::Retrieve), Duration::from_micros(3_187_500));
        assert_eq!(budget(Operation::Store), budget(Operation::Delete));
    }

    #[test]
    fn values_carry_their_number() {
        for n in [0, 1, 1_000_000, u64::MAX] {
            assert_eq!(number(&value(n)), n);
        }
    }

    #[test]
    fn only_transient_errors_given_up_on_after_every_attempt_are_well_classified() {
        let id = id("k");
        let given_up = |e: StorageError, attempts| {
            e.mark_retried(nebula_credential::Retried {
                attempts,
                elapsed: Duration::ZERO,
            })
        };
        let timeout = || StorageError::timeout("x", Operation::Retrieve, Some(&id), Duration::from_secs(1));
        assert!(misclassified(&given_up(timeout(), RETRIES + 1), Some(ErrorKind::Timeout)).is_none());
        assert!(misclassified(&given_up(timeout(), RETRIES + 1), Some(ErrorKind::Unavailable)).is_some());
        assert!(misclassified(&given_up(timeout(), 1), None).is_some());
        assert!(misclassified(&timeout(), None).is_some());
        let backend = StorageError::backend("x", Operation::Retrieve, Some(&id), "refused");
        assert!(misclassified(&backend, None).is_some());
    }
}
