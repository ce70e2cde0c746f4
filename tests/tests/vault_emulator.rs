//! The Vault emulator (OpenBao dev server) through vaultrs: KV v2 set/read/list, AppRole
//! login, token lookup-self and renew-self, and a policy denial.
#![cfg(feature = "vault")]

use std::collections::HashMap;

use nebula_credential_tests::unique;
use nebula_credential_tests::vault::{self, var};
use vaultrs::client::VaultClient;
use vaultrs::error::ClientError;
use vaultrs::{auth, kv2, token};

fn client(token: &str) -> VaultClient {
    vault::client(&vault::addr(), token)
}

fn root() -> VaultClient {
    vault::raw()
}

#[tokio::test]
async fn kv2_set_read_list() {
    let c = root();
    let folder = unique("nebula-smoke");
    let path = format!("{folder}/db_password");
    let data = HashMap::from([("value".to_string(), "s3cr3t".to_string())]);
    let meta = kv2::set(&c, "secret", &path, &data).await.expect("set");
    assert_eq!(meta.version, 1);
    let read: HashMap<String, String> = kv2::read(&c, "secret", &path).await.expect("read");
    assert_eq!(read, data);
    assert_eq!(kv2::list(&c, "secret", &folder).await.expect("list"), ["db_password"]);
    kv2::delete_metadata(&c, "secret", &path).await.expect("delete");
    assert!(kv2::read::<HashMap<String, String>>(&c, "secret", &path).await.is_err());
}

#[tokio::test]
async fn approle_login_then_lookup_and_renew_self() {
    let role_id = var("NEBULA_TEST_VAULT_APPROLE_ROLE_ID");
    let secret_id = var("NEBULA_TEST_VAULT_APPROLE_SECRET_ID");
    let login = auth::approle::login(&root(), "approle", &role_id, &secret_id)
        .await
        .expect("login");
    assert!(login.renewable);
    let c = client(&login.client_token);
    let me = token::lookup_self(&c).await.expect("lookup-self");
    assert!(me.policies.iter().any(|p| p == "nebula-test"), "{:?}", me.policies);
    let renewed = token::renew_self(&c, Some("30m")).await.expect("renew-self");
    assert!(renewed.lease_duration > 0);
    // The AppRole policy covers secret/*; the sys backend stays closed.
    let path = format!("{}/x", unique("nebula-smoke"));
    kv2::set(&c, "secret", &path, &HashMap::from([("k", "v")]))
        .await
        .expect("allowed by policy");
    match vaultrs::sys::policy::list(&c).await {
        Err(ClientError::APIError { code: 403, .. }) => {}
        other => panic!("expected 403 from the policy, got {other:?}"),
    }
    kv2::delete_metadata(&root(), "secret", &path).await.expect("cleanup");
}
