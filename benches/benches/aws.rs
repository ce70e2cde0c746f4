//! `cargo bench --bench aws` (or `cargo xtask bench aws`, which starts moto): the AWS
//! provider through `open()`'s full layer stack against moto, beside the raw SDK calls
//! the provider makes for the same operation, against the same moto, in the same run.
//! Needs `NEBULA_TEST_AWS_ENDPOINT`; without it the bench says so and measures nothing.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use nebula_credential::aws::{AwsSecretsManagerConfig, DeleteMode};
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, Precondition, RecordEnvelope, StorageConfig, open,
};
use nebula_credential_benches::{Bench, Samples, micros, sealed, skip};

const SAMPLES: usize = 300;
/// Credentials stored only to be listed; the bench's own five come on top.
const LISTED: usize = 100;

fn main() -> anyhow::Result<()> {
    let Ok(endpoint) = std::env::var("NEBULA_TEST_AWS_ENDPOINT") else {
        skip("aws", "NEBULA_TEST_AWS_ENDPOINT is not set", "moto");
        return Ok(());
    };
    let bench = Bench::new("aws")?;
    let prefix = format!("nebula-bench/{}/", std::process::id());
    let config = AwsSecretsManagerConfig {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.clone()),
        secret_prefix: prefix.clone(),
        delete_mode: DeleteMode::Purge,
        ..AwsSecretsManagerConfig::default()
    };
    let p = bench.block_on(open(&StorageConfig::Aws(config)))?;
    let raw = Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
            .build(),
    );
    let k: CredentialId = "bench_key".parse()?;
    // An overwrite keeps created_at (as CredentialStore does), so the tags stay as they are.
    let meta = CredentialMetadata::new();
    let name = format!("{prefix}bench_key");
    let value = String::from_utf8(
        RecordEnvelope::new(k.clone(), sealed(1024), CredentialMetadata::new()).to_json("aws", usize::MAX)?,
    )?;
    bench.block_on(p.store(&k, &sealed(1024), &meta))?;
    bench.store_listed(p.as_ref(), LISTED)?;

    bench.criterion_pair(
        "retrieve",
        || async { p.retrieve(&k).await.expect("retrieve") },
        "raw_get_secret_value",
        || async {
            raw.get_secret_value()
                .secret_id(&name)
                .version_stage("AWSCURRENT")
                .send()
                .await
                .expect("get")
        },
    );

    bench.compare(
        "store",
        SAMPLES,
        |_| async {
            p.store(&k, &sealed(1024), &meta).await.expect("store");
        },
        |i| {
            let (raw, name, value) = (&raw, &name, &value);
            async move {
                // The calls the provider makes: look (ownership, current version, tags),
                // write under the pending label, move AWSCURRENT to the new version.
                let d = raw.describe_secret().secret_id(name).send().await.expect("describe");
                let current = d
                    .version_ids_to_stages()
                    .into_iter()
                    .flatten()
                    .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
                    .map(|(v, _)| v.clone());
                let token = format!("{:064x}", (u128::from(std::process::id()) << 64) | i as u128);
                raw.put_secret_value()
                    .secret_id(name)
                    .secret_string(value)
                    .client_request_token(&token)
                    .version_stages("NEBULA_PENDING")
                    .send()
                    .await
                    .expect("put");
                raw.update_secret_version_stage()
                    .secret_id(name)
                    .version_stage("AWSCURRENT")
                    .move_to_version_id(&token)
                    .set_remove_from_version_id(current)
                    .send()
                    .await
                    .expect("move AWSCURRENT");
            }
        },
    );
    // moto keeps every version and answers in time growing with their number (AWS lists
    // only labelled ones), so each comparison below interleaves its two sides on fresh
    // secrets that grow alike. A conditional store from the revision just written (no
    // conflicts) beside a plain store: the same three calls.
    let fresh = |n: &str| -> anyhow::Result<CredentialId> {
        let id: CredentialId = n.parse()?;
        bench.block_on(p.store(&id, &sealed(1024), &meta))?;
        Ok(id)
    };
    let (plain_a, conditional_key) = (fresh("bench_plain_a")?, fresh("bench_conditional")?);
    let last = std::sync::Mutex::new(bench.block_on(p.retrieve(&conditional_key))?.revision);
    let (plain_beside_conditional, conditional) = Samples::interleaved(
        bench.runtime(),
        SAMPLES,
        |_| async {
            p.store(&plain_a, &sealed(1024), &meta).await.expect("store");
        },
        |_| async {
            let expected = last.lock().expect("lock").clone();
            let written = p
                .store_if(
                    &conditional_key,
                    &sealed(1024),
                    &meta,
                    &Precondition::Revision(expected),
                )
                .await
                .expect("store_if");
            *last.lock().expect("lock") = written;
        },
    );
    // A plain store beside a single plain PutSecretValue (what the provider did before
    // every version was written the same way: DescribeSecret + PutSecretValue).
    let plain_b = fresh("bench_plain_b")?;
    let put_name = format!("{prefix}bench_put");
    fresh("bench_put")?;
    let single_put = bench.interleaved(
        SAMPLES,
        |_| async {
            p.store(&plain_b, &sealed(1024), &meta).await.expect("store");
        },
        |_| async {
            raw.put_secret_value()
                .secret_id(&put_name)
                .secret_string(&value)
                .send()
                .await
                .expect("put");
        },
    );
    // The raw puts above wrote versions the provider did not: write one of its own, so
    // retrieve measures the common case (a version whose id proves it is ours).
    bench.block_on(p.store(&k, &sealed(1024), &meta))?;
    bench.compare(
        "retrieve",
        SAMPLES,
        |_| async { p.retrieve(&k).await.map(drop).expect("retrieve") },
        |_| async {
            raw.get_secret_value()
                .secret_id(&name)
                .version_stage("AWSCURRENT")
                .send()
                .await
                .map(drop)
                .expect("get")
        },
    );
    // revision: one DescribeSecret, never the value.
    bench.compare(
        "revision",
        SAMPLES,
        |_| async { p.revision(&k).await.map(drop).expect("revision") },
        |_| async {
            raw.describe_secret()
                .secret_id(&name)
                .send()
                .await
                .map(drop)
                .expect("describe")
        },
    );
    bench.revision_beside_retrieve(p.as_ref(), &k, SAMPLES);
    bench.compare(
        "exists",
        SAMPLES,
        |_| async { assert!(p.exists(&k).await.expect("exists")) },
        |_| async {
            raw.describe_secret()
                .secret_id(&name)
                .send()
                .await
                .map(drop)
                .expect("describe")
        },
    );
    bench.compare(
        "list_105",
        SAMPLES / 10,
        |_| async { assert_eq!(p.list(&CredentialFilter::new()).await.expect("list").len(), LISTED + 5) },
        |_| async {
            let mut pages = raw
                .list_secrets()
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::TagKey)
                        .values("nebula-credential:managed")
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(&prefix)
                        .build(),
                )
                .max_results(100)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                page.expect("page");
            }
        },
    );

    {
        let mut figures = bench.figures();
        figures.add_latency("aws_raw_put_secret_value_alone", &single_put.raw);
        figures.add_latency("aws_store_if_revision", &conditional);
        figures.add(
            "aws_store_if_p50_ratio_to_store",
            micros(conditional.p50()) / micros(plain_beside_conditional.p50()),
            "x",
        );
        figures.add("aws_store_p50_ratio_to_a_single_put", single_put.p50_ratio(), "x");
    }

    bench.remove_all(p.as_ref())?;
    bench.finish();
    Ok(())
}
