//! The Kubernetes emulator (a real kube-apiserver with RBAC) through kube-rs: Secrets
//! create/get/list by label as admin, and a real 403 for the restricted user.
#![cfg(feature = "kubernetes")]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use nebula_credential_tests::{emulator_var, kubernetes, unique};

async fn client(var: &str) -> Client {
    kubernetes::client(&emulator_var(var, kubernetes::NAME)).await
}

fn secret(name: &str, run: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([("nebula.test/run".to_string(), run.to_string())])),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([("value".to_string(), "s3cr3t".to_string())])),
        ..Secret::default()
    }
}

#[tokio::test]
async fn admin_creates_gets_and_lists_secrets_by_label() {
    let api: Api<Secret> = Api::namespaced(client("NEBULA_TEST_KUBECONFIG").await, "default");
    let run = unique("smoke");
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &secret(&format!("{run}-{n}"), &run))
            .await
            .expect("create");
    }
    let got = api.get(&format!("{run}-a")).await.expect("get");
    assert_eq!(got.data.expect("data")["value"].0, b"s3cr3t");
    let listed = api
        .list(&ListParams::default().labels(&format!("nebula.test/run={run}")))
        .await
        .expect("list");
    let mut names: Vec<String> = listed.items.iter().filter_map(|s| s.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, [format!("{run}-a"), format!("{run}-b")]);
    let dup = api
        .create(&PostParams::default(), &secret(&format!("{run}-a"), &run))
        .await
        .expect_err("duplicate");
    assert!(matches!(&dup, kube::Error::Api(s) if s.is_already_exists()), "{dup:?}");
    for n in ["a", "b"] {
        api.delete(&format!("{run}-{n}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
}

#[tokio::test]
async fn the_restricted_user_may_read_but_not_write_its_namespace() {
    let namespace = emulator_var("NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE", "kubernetes");
    let restricted = client("NEBULA_TEST_KUBECONFIG_RESTRICTED").await;
    let own: Api<Secret> = Api::namespaced(restricted.clone(), &namespace);
    own.list(&ListParams::default()).await.expect("list is allowed");
    let denied = own
        .create(&PostParams::default(), &secret(&unique("denied"), "x"))
        .await
        .expect_err("create");
    assert!(matches!(&denied, kube::Error::Api(s) if s.is_forbidden()), "{denied:?}");
    let other: Api<Secret> = Api::namespaced(restricted, "default");
    let denied = other.list(&ListParams::default()).await.expect_err("other namespace");
    assert!(matches!(&denied, kube::Error::Api(s) if s.is_forbidden()), "{denied:?}");
}
