//! The AWS Secrets Manager emulator (moto) through the real Rust SDK: create, get, list, delete.
#![cfg(feature = "aws")]

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use nebula_credential_tests::aws::client;
use nebula_credential_tests::unique;

#[tokio::test]
async fn create_get_list_delete_through_the_sdk() {
    let c = client();
    let prefix = unique("nebula-smoke");
    let name = format!("{prefix}/api_key");
    c.create_secret()
        .name(&name)
        .secret_string("{\"v\":1}")
        .send()
        .await
        .expect("create");
    let got = c.get_secret_value().secret_id(&name).send().await.expect("get");
    assert_eq!(got.secret_string(), Some("{\"v\":1}"));

    let listed = c
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(&prefix)
                .build(),
        )
        .send()
        .await
        .expect("list");
    let names: Vec<_> = listed.secret_list().iter().filter_map(|s| s.name()).collect();
    assert_eq!(names, [name.as_str()]);

    c.delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete");
    let err = c.get_secret_value().secret_id(&name).send().await.expect_err("gone");
    let service = err.into_service_error();
    assert!(service.is_resource_not_found_exception(), "{service:?}");
}
