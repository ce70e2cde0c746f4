//! A concurrent workload under a flapping proxy: workers run mixed operations on
//! credentials of their own while the proxy cycles through resets, latency, cuts and a
//! black hole. Each worker keeps, per credential, the set of values it may hold (one after
//! an acknowledged write or delete, more after a failed one); every answer must be in it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nebula_credential::{CredentialFilter, CredentialId, Operation, StorageProvider};
use nebula_credential_core::conformance::meta;

use super::toxiproxy::{Proxy, Stream, Toxic};
use super::{READ_MS, Recorder, id, number, read_number, value};

/// Workers running at once.
pub const WORKERS: u64 = 8;
/// Operations per worker (200 in all).
pub const OPS_PER_WORKER: u64 = 25;
/// Credentials per worker.
const IDS_PER_WORKER: u64 = 2;
/// How long each fault of the flapping proxy lasts, and the calm between two.
const FAULT_ON: Duration = Duration::from_millis(300);
const FAULT_OFF: Duration = Duration::from_millis(200);

/// The faults the proxy flaps through, in turn.
fn flaps() -> [(Stream, Toxic); 5] {
    [
        (Stream::Downstream, Toxic::ResetPeer { timeout_ms: 0 }),
        (
            Stream::Downstream,
            Toxic::Latency {
                latency_ms: READ_MS * 3 / 2,
                jitter_ms: 0,
            },
        ),
        (Stream::Upstream, Toxic::ResetPeer { timeout_ms: 0 }),
        (Stream::Downstream, Toxic::LimitData { bytes: 200 }),
        (Stream::Upstream, Toxic::Timeout { timeout_ms: 0 }),
    ]
}

/// The values a credential may hold (`None`: absent).
type Possible = BTreeSet<Option<u64>>;

/// A small deterministic generator (xorshift64), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// One worker's state.
struct Worker {
    rec: Recorder,
    provider: Arc<dyn StorageProvider>,
    possible: BTreeMap<CredentialId, Possible>,
    values: Arc<AtomicU64>,
}

impl Worker {
    /// Checks an answer `seen` of `id` against what it may hold, then narrows to it.
    fn saw(&mut self, id: &CredentialId, seen: Option<u64>, how: &str) {
        let possible = self.possible.get_mut(id).expect("own id");
        if !possible.contains(&seen) {
            let deleted = possible.iter().all(Option::is_none);
            self.rec.lost(
                deleted,
                format!("{how} of {id} answered {seen:?}; it may only hold one of {possible:?}"),
            );
        }
        *possible = BTreeSet::from([seen]);
    }

    /// `exists`/`list` told only whether `id` is there.
    fn saw_presence(&mut self, id: &CredentialId, present: bool, how: &str) {
        let possible = self.possible.get_mut(id).expect("own id");
        let narrowed: Possible = possible.iter().filter(|v| v.is_some() == present).copied().collect();
        if narrowed.is_empty() {
            let deleted = present;
            self.rec.lost(
                deleted,
                format!(
                    "{how} says {id} is {}there; it may only hold one of {possible:?}",
                    if present { "" } else { "not " }
                ),
            );
            return;
        }
        *possible = narrowed;
    }

    async fn step(&mut self, rng: &mut Rng, ids: &[CredentialId]) {
        let k = ids[usize::try_from(rng.next(ids.len() as u64)).unwrap_or(0)].clone();
        let p = self.provider.clone();
        match rng.next(10) {
            0..=3 => {
                let n = self.values.fetch_add(1, Ordering::Relaxed);
                let r = self
                    .rec
                    .call(
                        Operation::Store,
                        format!("store {k}"),
                        None,
                        p.store(&k, &value(n), &meta()),
                    )
                    .await;
                let possible = self.possible.get_mut(&k).expect("own id");
                if r.is_ok() {
                    possible.clear();
                }
                possible.insert(Some(n));
            }
            4..=6 => {
                match self
                    .rec
                    .call(Operation::Retrieve, format!("retrieve {k}"), None, p.retrieve(&k))
                    .await
                {
                    Ok(s) => self.saw(&k, Some(number(&s.data)), "retrieve"),
                    Err(e) if e.is_not_found() => self.saw(&k, None, "retrieve"),
                    Err(_) => {}
                }
            }
            7 => {
                let r = self
                    .rec
                    .call(Operation::Delete, format!("delete {k}"), None, p.delete(&k))
                    .await;
                let possible = self.possible.get_mut(&k).expect("own id");
                if r.is_ok() {
                    possible.clear();
                }
                possible.insert(None);
            }
            8 => {
                if let Ok(there) = self
                    .rec
                    .call(Operation::Exists, format!("exists {k}"), None, p.exists(&k))
                    .await
                {
                    self.saw_presence(&k, there, "exists");
                }
            }
            _ => {
                let filter = CredentialFilter::new();
                if let Ok(listed) = self.rec.call(Operation::List, "list", None, p.list(&filter)).await {
                    for k in ids {
                        self.saw_presence(k, listed.contains(k), "list");
                    }
                }
            }
        }
    }
}

/// Runs the workload: [`WORKERS`] × [`OPS_PER_WORKER`] operations while the proxy flaps,
/// then checks every credential straight at the emulator.
pub async fn run(rec: &Recorder, proxy: &mut Proxy, through: Arc<dyn StorageProvider>, direct: &dyn StorageProvider) {
    let values = Arc::new(AtomicU64::new(1_000_000));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let ids: Vec<CredentialId> = (0..IDS_PER_WORKER).map(|i| id(&format!("w{w}-{i}"))).collect();
        let mut worker = Worker {
            rec: rec.clone(),
            provider: through.clone(),
            possible: ids.iter().map(|k| (k.clone(), BTreeSet::from([None]))).collect(),
            values: values.clone(),
        };
        tasks.spawn(async move {
            let mut rng = Rng((w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for _ in 0..OPS_PER_WORKER {
                worker.step(&mut rng, &ids).await;
            }
            worker.possible
        });
    }
    let flapping = async {
        let mut turn = 0;
        while !done.load(Ordering::Relaxed) {
            let (stream, toxic) = flaps()[turn % flaps().len()];
            turn += 1;
            rec.injected();
            let name = proxy.add(stream, toxic).await;
            tokio::time::sleep(FAULT_ON).await;
            proxy.remove(&name).await;
            tokio::time::sleep(FAULT_OFF).await;
        }
    };
    let working = async {
        let mut all = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            all.extend(joined.expect("a workload worker panicked"));
        }
        done.store(true, Ordering::Relaxed);
        all
    };
    let (possible, ()) = tokio::join!(working, flapping);
    for (k, may) in possible {
        let seen = read_number(direct, &k).await;
        if !may.contains(&seen) {
            let deleted = may.iter().all(Option::is_none);
            rec.lost(
                deleted,
                format!("after the workload {k} holds {seen:?}; it may only hold one of {may:?}"),
            );
        }
    }
}
