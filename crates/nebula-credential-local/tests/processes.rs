//! Several processes on one directory, and processes killed mid-write. The test binary
//! spawns itself: with `NEBULA_LOCAL_CHILD` set, a test runs as the child side.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nebula_credential_core::conformance::{bytes, tagged};
use nebula_credential_core::{CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, StorageProvider};
use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};
use rand::RngExt;

const CHILD: &str = "NEBULA_LOCAL_CHILD";
const DIR: &str = "NEBULA_LOCAL_DIR";
const START: &str = "NEBULA_LOCAL_START";
const IDS: usize = 8;

fn id(i: usize) -> CredentialId {
    format!("Shared_{i}").parse().unwrap()
}

/// The value a writer stores: the ciphertext encodes (writer, seq), the metadata repeats it.
fn value(writer: u64, seq: u64) -> (EncryptedData, CredentialMetadata) {
    let mut ciphertext = Vec::with_capacity(4096);
    while ciphertext.len() < 4096 {
        ciphertext.extend_from_slice(&writer.to_le_bytes());
        ciphertext.extend_from_slice(&seq.to_le_bytes());
    }
    let mut metadata = tagged(&[("writer", &writer.to_string()), ("seq", &seq.to_string())]);
    metadata.version = seq;
    let mut data = bytes(ciphertext);
    data.nonce = [0; 12];
    (data, metadata)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn spawn_self(test: &str, role: &str, dir: &Path, start: u64) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .env(DIR, dir)
        .env(START, start.to_string());
    cmd
}

fn child_env() -> Option<(String, PathBuf, u64)> {
    let role = std::env::var(CHILD).ok()?;
    let dir = PathBuf::from(std::env::var(DIR).expect("child needs its directory"));
    let start = std::env::var(START).expect("child needs its start").parse().unwrap();
    Some((role, dir, start))
}

/// Every credential file parses, and holds a value some writer wrote.
async fn check_directory(dir: &Path) -> BTreeMap<CredentialId, u64> {
    let p = LocalStorageProvider::new(LocalStorageConfig::new(dir)).await.unwrap();
    let mut seqs = BTreeMap::new();
    for k in p.list(&CredentialFilter::new()).await.unwrap() {
        let (d, m) = p.retrieve(&k).await.unwrap_or_else(|e| panic!("{k}: {e}")).into_parts();
        let writer: u64 = m.tags["writer"].parse().unwrap();
        let seq: u64 = m.tags["seq"].parse().unwrap();
        assert_eq!(
            (d, m.version),
            (value(writer, seq).0, seq),
            "{k}: data from another write"
        );
        seqs.insert(k, seq);
    }
    seqs
}

#[test]
fn four_processes_with_200_overlapping_writes_each() {
    if let Some((role, dir, writer)) = child_env() {
        assert_eq!(role, "writer");
        return runtime().block_on(async {
            let p = LocalStorageProvider::new(LocalStorageConfig::new(&dir)).await.unwrap();
            for seq in 1..=200u64 {
                let (d, m) = value(writer, seq);
                p.store(&id(seq as usize % IDS), &d, &m).await.unwrap();
            }
        });
    }
    let tmp = tempfile::tempdir().unwrap();
    let children: Vec<_> = (1..=4u64)
        .map(|w| {
            spawn_self(
                "four_processes_with_200_overlapping_writes_each",
                "writer",
                tmp.path(),
                w,
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a writer process failed");
    }
    let seqs = runtime().block_on(check_directory(tmp.path()));
    assert_eq!(seqs.len(), IDS, "every id written");
    let temps = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(temps, 0);
}

#[test]
fn no_acknowledged_write_is_lost_when_writers_are_killed() {
    if let Some((role, dir, start)) = child_env() {
        assert_eq!(role, "crash");
        return runtime().block_on(async {
            let p = LocalStorageProvider::new(LocalStorageConfig::new(&dir)).await.unwrap();
            for seq in start.. {
                let k = id(seq as usize % IDS);
                let (d, m) = value(0, seq);
                p.store(&k, &d, &m).await.unwrap();
                println!("ack {k} {seq}");
            }
        });
    }
    const KILLS: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<CredentialId, u64> = BTreeMap::new();
    let (mut next, mut total_acks) = (1u64, 0usize);
    let mut temps_seen = std::collections::BTreeSet::new();
    let rt = runtime();
    let mut rng = rand::rng();
    for _ in 0..KILLS {
        let mut child = spawn_self(
            "no_acknowledged_write_is_lost_when_writers_are_killed",
            "crash",
            tmp.path(),
            next,
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill at a random moment once the child is writing.
        let mut first = String::new();
        while !first.starts_with("ack ") {
            first = lines.next().expect("child started writing").unwrap();
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        for line in std::iter::once(Ok(first)).chain(lines) {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ack ") else {
                continue;
            };
            let (k, seq) = rest.split_once(' ').unwrap();
            let seq: u64 = seq.parse().unwrap();
            let e = acked.entry(k.parse().unwrap()).or_default();
            *e = (*e).max(seq);
            next = next.max(seq + 1);
            total_acks += 1;
        }
        // A write may have finished after its last ack was printed: skip past it.
        next += IDS as u64;
        temps_seen.extend(
            std::fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp")),
        );
        let stored = rt.block_on(check_directory(tmp.path()));
        for (k, seq) in &acked {
            assert!(stored[k] >= *seq, "{k}: acknowledged {seq}, stored {}", stored[k]);
        }
        assert!(
            stored.keys().all(|k| (0..IDS).any(|i| id(i) == *k)),
            "only credential files are listed"
        );
    }
    println!(
        "crash test: {KILLS} kills, {total_acks} acknowledged writes, {} temp files left by kills (kept until an hour old), 0 lost",
        temps_seen.len()
    );
    assert!(total_acks >= KILLS);
}
