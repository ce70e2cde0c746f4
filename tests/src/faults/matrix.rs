//! One fault at a time, on one credential: under each fault a read and a write through the
//! proxy; then the fault is lifted and a read must succeed and show the acknowledged value
//! (or, after a failed write, the old or the new one), and a conditional store at the
//! revision read must succeed (revisions stay exact).

use std::time::Duration;

use nebula_credential::{ErrorKind, Operation, Precondition, StorageProvider};
use nebula_credential_core::conformance::meta;

use super::toxiproxy::{Proxy, Stream, Toxic, ToxicName};
use super::{READ_MS, Recorder, WRITE_MS, id, number, value};

/// What a read under a fault must give.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// An error of this kind, after every attempt.
    Fails(ErrorKind),
    /// The value: the fault is shorter or milder than the deadline.
    Succeeds,
    /// Either the value or an error of this kind (the fault acts on some responses only).
    Either(ErrorKind),
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Its name in messages.
    pub name: &'static str,
    /// The toxics it adds.
    pub toxics: Vec<(Stream, Toxic)>,
    /// Whether it takes the proxy down (refusing connections) instead.
    pub down: bool,
    /// Lifts the fault this long after the read starts (a fault shorter than the deadline).
    pub lift_after: Option<Duration>,
    /// What the read under it must give.
    pub expect: Expect,
}

impl Fault {
    fn toxic(name: &'static str, stream: Stream, toxic: Toxic, expect: Expect) -> Self {
        Fault {
            name,
            toxics: vec![(stream, toxic)],
            down: false,
            lift_after: None,
            expect,
        }
    }
}

/// The longest deadline, which the slow faults exceed.
fn longest_deadline_ms() -> u64 {
    READ_MS.max(WRITE_MS)
}

/// The rows: latency, resets, cuts, black holes, trickles, the proxy down.
pub fn faults() -> Vec<Fault> {
    use Expect::{Either, Fails, Succeeds};
    use Stream::{Downstream, Upstream};
    vec![
        Fault::toxic(
            "latency under the deadline",
            Downstream,
            Toxic::Latency {
                latency_ms: READ_MS / 4,
                jitter_ms: 0,
            },
            Succeeds,
        ),
        Fault::toxic(
            "latency beyond the deadline",
            Downstream,
            Toxic::Latency {
                latency_ms: 2 * longest_deadline_ms(),
                jitter_ms: 0,
            },
            Fails(ErrorKind::Timeout),
        ),
        Fault::toxic(
            "reset before the request",
            Upstream,
            Toxic::ResetPeer { timeout_ms: 0 },
            Fails(ErrorKind::Unavailable),
        ),
        Fault::toxic(
            "reset as the response starts",
            Downstream,
            Toxic::ResetPeer { timeout_ms: 0 },
            Fails(ErrorKind::Unavailable),
        ),
        Fault::toxic(
            "connection cut 100 bytes into the response",
            Downstream,
            Toxic::LimitData { bytes: 100 },
            Fails(ErrorKind::Unavailable),
        ),
        Fault::toxic(
            "connection cut 1000 bytes into the response",
            Downstream,
            Toxic::LimitData { bytes: 1000 },
            Either(ErrorKind::Unavailable),
        ),
        Fault::toxic(
            "black hole longer than the deadline",
            Upstream,
            Toxic::Timeout { timeout_ms: 0 },
            Fails(ErrorKind::Timeout),
        ),
        Fault {
            lift_after: Some(Duration::from_millis(READ_MS / 2)),
            ..Fault::toxic(
                "black hole shorter than the deadline",
                Upstream,
                Toxic::Timeout { timeout_ms: 0 },
                Succeeds,
            )
        },
        Fault::toxic(
            "slow trickle (slicer, 64-byte chunks 2 ms apart)",
            Downstream,
            Toxic::Slicer {
                average_size: 64,
                size_variation: 32,
                delay_us: 2_000,
            },
            Succeeds,
        ),
        Fault::toxic(
            "slow trickle (bandwidth 1 KB/s)",
            Downstream,
            Toxic::Bandwidth { rate_kb: 1 },
            Either(ErrorKind::Timeout),
        ),
        Fault {
            name: "proxy down",
            toxics: Vec::new(),
            down: true,
            lift_after: None,
            expect: Fails(ErrorKind::Unavailable),
        },
    ]
}

/// Injects `fault`; returns its toxics for [`lift`].
pub async fn inject(rec: &Recorder, proxy: &mut Proxy, fault: &Fault) -> Vec<ToxicName> {
    rec.injected();
    if fault.down {
        proxy.set_enabled(false).await;
    }
    let mut names = Vec::new();
    for (stream, toxic) in &fault.toxics {
        names.push(proxy.add(*stream, *toxic).await);
    }
    names
}

/// Lifts what [`inject`] did.
pub async fn lift(proxy: &Proxy, fault: &Fault, names: &[ToxicName]) {
    for name in names {
        proxy.remove(name).await;
    }
    if fault.down {
        proxy.set_enabled(true).await;
    }
}

/// Runs every row against one credential.
pub async fn run(rec: &Recorder, proxy: &mut Proxy, through: &dyn StorageProvider, direct: &dyn StorageProvider) {
    let backend = through.provider_name();
    let k = id("matrix");
    let mut next = 1;
    rec.call(
        Operation::Store,
        "first store",
        None,
        through.store(&k, &value(next), &meta()),
    )
    .await
    .unwrap_or_else(|e| panic!("{backend}: the first store through the proxy (no fault yet) failed: {e}"));
    let mut current = next;
    for fault in faults() {
        let name = fault.name;
        let names = inject(rec, proxy, &fault).await;
        let expected = match fault.expect {
            Expect::Fails(kind) | Expect::Either(kind) => Some(kind),
            Expect::Succeeds => None,
        };
        let read = rec.call(
            Operation::Retrieve,
            format!("retrieve under {name}"),
            expected,
            through.retrieve(&k),
        );
        let read = match fault.lift_after {
            Some(after) => {
                let lifting = async {
                    tokio::time::sleep(after).await;
                    lift(proxy, &fault, &names).await;
                };
                tokio::join!(read, lifting).0
            }
            None => read.await,
        };
        match (&read, fault.expect) {
            (Ok(_), Expect::Fails(kind)) => {
                panic!("{backend}: a retrieve under {name} succeeded; expected {kind}: the fault did not act")
            }
            (Err(e), Expect::Succeeds) => {
                rec.unexpected(format!("retrieve under {name} (milder than the deadline) failed: {e}"))
            }
            (Ok(s), _) if number(&s.data) != current => rec.lost(
                false,
                format!(
                    "retrieve under {name} read value {} instead of {current}",
                    number(&s.data)
                ),
            ),
            _ => {}
        }
        next += 1;
        let written = rec
            .call(
                Operation::Store,
                format!("store under {name}"),
                expected,
                through.store(&k, &value(next), &meta()),
            )
            .await;
        if fault.lift_after.is_none() {
            lift(proxy, &fault, &names).await;
        }
        let back = rec
            .call(
                Operation::Retrieve,
                format!("retrieve after {name} was lifted"),
                None,
                through.retrieve(&k),
            )
            .await
            .unwrap_or_else(|e| panic!("{backend}: reads did not recover once {name} was lifted: {e}"));
        let seen = number(&back.data);
        match written {
            Ok(_) if seen != next => rec.lost(
                false,
                format!("the store under {name} was acknowledged but a later read shows value {seen}, not {next}"),
            ),
            Err(_) if seen != next && seen != current => rec.lost(
                false,
                format!(
                    "the store under {name} failed and a later read shows value {seen}: neither the old {current} \
                     nor the new {next}"
                ),
            ),
            _ => {}
        }
        current = seen;
        // Revisions stay exact: a store at the revision just read succeeds (where the backend
        // can compare; elsewhere the direct read must report the revision read here).
        let revision = if through.capabilities().conditional_store {
            next += 1;
            let revision = rec
                .call(
                    Operation::Store,
                    format!("conditional store at the revision read after {name}"),
                    None,
                    through.store_if(
                        &k,
                        &value(next),
                        &meta(),
                        &Precondition::Revision(back.revision.clone()),
                    ),
                )
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{backend}: after {name}, a store at the revision just read failed (revisions not exact): {e}"
                    )
                });
            current = next;
            revision
        } else {
            back.revision.clone()
        };
        let now = direct
            .retrieve(&k)
            .await
            .unwrap_or_else(|e| panic!("{backend}: direct read after {name}: {e}"));
        assert_eq!(number(&now.data), current, "{backend}: direct read after {name}");
        assert_eq!(now.revision, revision, "{backend}: revision after {name}");
    }
}
