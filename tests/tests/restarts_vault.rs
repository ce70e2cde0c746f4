//! Server restarts where the server keeps state, for Vault: OpenBao on raft storage (not
//! the dev server's memory), run by the test (tests/src/restart.rs), killed with kill -9 in
//! the middle of a workload through the standard layer stack, started again on the same
//! port and data and unsealed. The same provider instance must recover by itself (no
//! rebuild, the AppRole renewal task still alive), every acknowledged write must be there
//! with its exact value and revision, and every failure meanwhile must be a retryable
//! `Unavailable`/`Timeout`.
//!
//! Needs `NEBULA_TEST_VAULT_SERVER_BIN` (the `bao` binary; `cargo xtask emulators up vault`
//! exports it on the native runtime).
#![cfg(feature = "vault")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nebula_credential::vault::{VaultAuth, VaultConfig, VaultProvider};
use nebula_credential::{ProviderConfig, RetryPolicy, StorageMetrics, StorageProvider, Timeouts, layers};
use nebula_credential_core::secrecy::SecretString;
use nebula_credential_tests::emulator_var;
use nebula_credential_tests::restart::{Bao, StateDir, Workload, ids, lost_writes, recovered};

/// The configuration of the test's server: AppRole whose tokens live `ttl`, renewed by a
/// check every second; deadlines and retries short enough that calls during the outage
/// end in seconds.
fn config(addr: String, role_id: String, secret_id: String) -> VaultConfig {
    VaultConfig {
        auth: VaultAuth::AppRole {
            role_id,
            secret_id: SecretString::from(secret_id),
            mount: "approle".into(),
        },
        secret_prefix: "restart".into(),
        renewal_check_interval_secs: 1,
        token_renewal_threshold_secs: 3,
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
        ..VaultConfig::with_token(addr, "unused: AppRole logs in")
    }
}

/// The longest a call may take: its deadline × (retries + 1).
fn budget(c: &VaultConfig) -> Duration {
    Duration::from_millis(c.timeouts.read_ms.max(c.timeouts.write_ms) * (u64::from(c.retry.max_retries) + 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_openbao_killed_mid_workload_comes_back_with_every_acknowledged_write_and_renewal_alive() {
    let bin = emulator_var("NEBULA_TEST_VAULT_SERVER_BIN", "vault");
    let dir = StateDir::new(env!("CARGO_TARGET_TMPDIR"), "restart-vault");
    let path = dir.path().to_path_buf();
    let mut bao = tokio::task::spawn_blocking(move || Bao::start(bin.as_ref(), &path))
        .await
        .unwrap();
    // Tokens of 4 s, at most 12 s: the outage outlives a token, and after it the renewal
    // task has to renew and log in again by itself.
    let (role_id, secret_id) = bao.approle("short", "4s", "12s");
    let config = config(bao.addr(), role_id, secret_id);
    config.validate().expect("valid config");
    // What open() builds (validate, build, layers::standard), keeping the backend's
    // handle for its token counters.
    let backend = Arc::new(VaultProvider::new(config.clone()).await.expect("provider"));
    let metrics = Arc::new(StorageMetrics::new());
    let provider: Arc<dyn StorageProvider> =
        Arc::new(layers::standard(backend.clone(), config.retry, config.timeouts, metrics).unwrap());

    let ids = ids("Restart", 6);
    let workload = Workload::start(provider.clone(), ids.clone(), Duration::from_millis(50));
    tokio::time::sleep(Duration::from_secs(3)).await;

    bao.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut bao = tokio::task::spawn_blocking(move || {
        bao.start_sealed();
        bao
    })
    .await
    .unwrap();
    // Up but sealed for a while: every request gets 503 "Vault is sealed".
    assert_eq!(bao.health(), Some(503), "restarted sealed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bao = tokio::task::spawn_blocking(move || {
        bao.unseal();
        bao
    })
    .await
    .unwrap();
    let restarted = killed.elapsed();
    let recovery = recovered(&*provider, &ids[0], Duration::from_secs(60)).await;
    let at_recovery = backend.token_stats();
    // Past the role's max TTL with traffic: renewals and a re-login after the restart.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let (ledger, tally) = workload.stop().await;

    // Idle (no operation can trigger a login): only the renewal task keeps the token alive.
    let idle_from = backend.token_stats();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let idle_to = backend.token_stats();

    let lost = lost_writes(&*provider, &ledger).await;
    let acknowledged = ledger.values().filter(|e| e.acked.is_some()).count();
    println!("restarts vault kills: 1");
    println!("restarts vault calls: {}", tally.calls);
    println!("restarts vault failed calls: {}", tally.failed);
    println!("restarts vault acknowledged writes lost: {}", lost.len());
    println!("restarts vault misclassified errors: {}", tally.misclassified.len());
    println!(
        "restarts vault down (kill, 5 s, start sealed, 2 s, unseal) ms: {}",
        restarted.as_millis()
    );
    println!("restarts vault recovery after unseal ms: {}", recovery.as_millis());
    println!("restarts vault failures reporting their retries: {}", tally.retried);
    println!("restarts vault longest call ms: {}", tally.longest.as_millis());
    println!(
        "restarts vault longest call / deadline budget: {:.2}",
        tally.longest.as_secs_f64() / budget(&config).as_secs_f64()
    );
    eprintln!(
        "failures by kind: {:?}; token stats at recovery {at_recovery:?}, idle {idle_from:?} -> {idle_to:?}",
        tally.kinds
    );

    tally.assert_survived(acknowledged, ids.len(), &lost);
    assert!(
        idle_to.renewals >= idle_from.renewals + 2,
        "the renewal task does not renew after the restart: {idle_from:?} -> {idle_to:?}"
    );
    assert!(
        idle_to.relogins + idle_to.renewals > at_recovery.relogins + at_recovery.renewals,
        "{at_recovery:?} -> {idle_to:?}"
    );
    // And the same instance still writes.
    provider
        .store(
            &ids[0],
            &nebula_credential_tests::restart::value(u64::MAX),
            &nebula_credential_core::conformance::meta(),
        )
        .await
        .expect("a store after the restart");
    backend.shutdown().await;
    assert_eq!(bao.health(), Some(200));
}
