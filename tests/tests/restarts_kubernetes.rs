//! Server restarts where the server keeps state, for Kubernetes: kube-apiserver and its
//! etcd as two processes of the test (tests/src/restart.rs), each killed with kill -9 in
//! the middle of a workload through `open()`, then both at once, and started again on the
//! same ports, data, certificates and tokens. The same provider instance (its kube client)
//! must recover by itself, every acknowledged write must be there with its exact value
//! and resourceVersion, and every failure meanwhile must be a retryable
//! `Unavailable`/`Timeout`.
//!
//! Needs `NEBULA_TEST_KUBE_APISERVER_BIN` (the launcher; `cargo xtask emulators up
//! kubernetes` builds and exports it on the native runtime).
#![cfg(feature = "kubernetes")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nebula_credential::kubernetes::KubernetesSecretsConfig;
use nebula_credential::{RetryPolicy, StorageConfig, StorageMetrics, StorageProvider, Timeouts, open_with_metrics};
use nebula_credential_tests::emulator_var;
use nebula_credential_tests::restart::{Kube, StateDir, Workload, ids, lost_writes, recovered};

/// What is killed in a phase.
#[derive(Debug, Clone, Copy)]
enum Victim {
    Apiserver,
    Etcd,
    Both,
}

/// Kills `victim`, leaves it down for `outage`, starts it again (etcd first): how long it
/// was down.
async fn kill_and_restart(kube: Kube, victim: Victim, outage: Duration) -> (Kube, Duration) {
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let mut kube = kube;
        match victim {
            Victim::Apiserver => kube.kill_apiserver(),
            Victim::Etcd => kube.kill_etcd(),
            Victim::Both => {
                kube.kill_etcd();
                kube.kill_apiserver();
            }
        }
        std::thread::sleep(outage);
        if matches!(victim, Victim::Etcd | Victim::Both) {
            kube.restart_etcd();
        }
        if matches!(victim, Victim::Apiserver | Victim::Both) {
            kube.restart_apiserver();
        }
        (kube, started.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_apiserver_and_etcd_killed_mid_workload_come_back_with_every_acknowledged_write() {
    let bin = emulator_var("NEBULA_TEST_KUBE_APISERVER_BIN", "kubernetes");
    let dir = StateDir::new(env!("CARGO_TARGET_TMPDIR"), "restart-kube");
    let path = dir.path().to_path_buf();
    let kube = tokio::task::spawn_blocking(move || Kube::start(bin.as_ref(), &path))
        .await
        .unwrap();
    let config = KubernetesSecretsConfig {
        namespace: Some("default".into()),
        kubeconfig_path: Some(kube.kubeconfig()),
        secret_prefix: "nc-restart-".into(),
        timeouts: Timeouts {
            read_ms: 2_000,
            write_ms: 2_000,
        },
        retry: RetryPolicy {
            max_retries: 2,
            base_delay_ms: 100,
            max_delay_ms: 500,
            ..RetryPolicy::default()
        },
        ..KubernetesSecretsConfig::default()
    };
    let metrics = Arc::new(StorageMetrics::new());
    let provider: Arc<dyn StorageProvider> = open_with_metrics(&StorageConfig::Kubernetes(config), metrics)
        .await
        .expect("open");

    let ids = ids("Restart", 6);
    let workload = Workload::start(provider.clone(), ids.clone(), Duration::from_millis(50));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut kube = kube;
    let mut lines = Vec::new();
    for victim in [Victim::Apiserver, Victim::Etcd, Victim::Both] {
        let (back, down) = kill_and_restart(kube, victim, Duration::from_secs(3)).await;
        kube = back;
        let recovery = recovered(&*provider, &ids[0], Duration::from_secs(60)).await;
        lines.push(format!(
            "restarts kubernetes {victim:?} down ms: {}\nrestarts kubernetes {victim:?} recovery after ready ms: {}",
            down.as_millis(),
            recovery.as_millis()
        ));
        // Work goes on between the kills.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let (ledger, tally) = workload.stop().await;
    let lost = lost_writes(&*provider, &ledger).await;
    let acknowledged = ledger.values().filter(|e| e.acked.is_some()).count();
    println!("restarts kubernetes kills: 3");
    println!("restarts kubernetes calls: {}", tally.calls);
    println!("restarts kubernetes failed calls: {}", tally.failed);
    println!("restarts kubernetes acknowledged writes lost: {}", lost.len());
    println!(
        "restarts kubernetes misclassified errors: {}",
        tally.misclassified.len()
    );
    println!(
        "restarts kubernetes failures reporting their retries: {}",
        tally.retried
    );
    println!("restarts kubernetes longest call ms: {}", tally.longest.as_millis());
    // Deadline 2 s × (2 retries + 1).
    println!(
        "restarts kubernetes longest call / deadline budget: {:.2}",
        tally.longest.as_secs_f64() / 6.0
    );
    for line in lines {
        println!("{line}");
    }
    eprintln!("failures by kind: {:?}", tally.kinds);

    tally.assert_survived(acknowledged, ids.len(), &lost);
    provider
        .store(
            &ids[0],
            &nebula_credential_tests::restart::value(u64::MAX),
            &nebula_credential_core::conformance::meta(),
        )
        .await
        .expect("a store after the restarts");
    drop(kube);
}
