//! Cross-crate tests of nebula-credential: the conformance suite through
//! `nebula_credential::open`, and each backend against its real emulator (one cargo
//! feature per backend, turned on by `cargo xtask test-integration`). The tests live in
//! `tests/`; this library holds their shared helpers.

/// The value of `name`, set by `cargo xtask` for `backend`'s emulator. Panics with what to
/// run when it is missing: a backend's tests never skip themselves.
pub fn emulator_var(name: &str, backend: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need the {backend} emulator. Run \
             `cargo xtask test-integration --backend {backend}` (it starts the emulator and sets \
             the variables), or `cargo xtask emulators up {backend}` then \
             `eval \"$(cargo xtask emulators env)\"`."
        ),
    }
}

/// A name unique to this test run, for resources on shared emulators.
pub fn unique(prefix: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:08x}", std::process::id())
}

/// A Secrets Manager client for the AWS emulator, for checks behind the provider's back.
#[cfg(feature = "aws")]
pub fn aws_client() -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(emulator_var("NEBULA_TEST_AWS_ENDPOINT", "aws"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
