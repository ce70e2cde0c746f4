//! AWS Secrets Manager backend for nebula-credential.
//!
//! Each credential is one secret named `secret_prefix + id` (AWS names are
//! case-sensitive and allow `_` and `-`, so ids map unchanged). Its `SecretString` is the
//! versioned JSON record (`{format_version, id, encrypted_data, metadata}`), checked
//! against AWS's 65,536-byte limit before any request. Its tags (the shared
//! `remote::TagScheme` with AWS's limits) mirror the credential's tags, plus configured
//! default tags, a managed-by marker, the creation time and the keys we own, so `list`
//! filters on the server, never returns foreign secrets, and an overwrite keeps tags
//! other tools added. A secret under our name without the marker is never read,
//! overwritten or deleted: every operation reports `Conflict` naming it.
//!
//! Revisions are version ids: `retrieve` reads the `AWSCURRENT` version and reports its
//! id. A conditional store writes the new version under a pending stage label with a
//! `ClientRequestToken` derived from (secret, expected version, value), then moves
//! `AWSCURRENT` from the expected version to it, which AWS refuses once another writer
//! moved it (`Conflict`); a create-if-absent is `CreateSecret`. Every write creates a
//! version; AWS keeps about 100 per secret.
//!
//! `delete` with a recovery window first makes a tombstone the current version, so a
//! restore (ours, when the id is stored again, or AWS's `RestoreSecret`) never brings the
//! deleted value back; readers see "not found" throughout.
//!
//! | operation | calls | IAM actions |
//! |---|---|---|
//! | `store` | `DescribeSecret`, then `CreateSecret` or `PutSecretValue` (+ `RestoreSecret` after a recovery-window delete, `TagResource` / `UntagResource` for changed tags); conditional: `PutSecretValue` + `UpdateSecretVersionStage` | `secretsmanager:DescribeSecret`, `CreateSecret`, `PutSecretValue`, `RestoreSecret`, `TagResource`, `UntagResource`, `UpdateSecretVersionStage` (+ `kms:GenerateDataKey` with a customer key) |
//! | `retrieve` | `DescribeSecret` and `GetSecretValue` (`AWSCURRENT`), concurrently | `secretsmanager:DescribeSecret`, `GetSecretValue` (+ `kms:Decrypt`) |
//! | `exists` | `DescribeSecret` (never reads the value) | `secretsmanager:DescribeSecret` |
//! | `delete` | `DescribeSecret`, `PutSecretValue` (tombstone, recovery window only), `DeleteSecret` | `secretsmanager:DescribeSecret`, `PutSecretValue`, `DeleteSecret` |
//! | `list` | `ListSecrets`, paginated, filtered by name prefix and marker tag; each page with its own deadline and retries | `secretsmanager:ListSecrets` |
//! | `check` | `ListSecrets` of one item | `secretsmanager:ListSecrets` |
//!
//! `kms_key_id` applies to secrets created after it is set; existing secrets keep their
//! key until re-keyed with `UpdateSecret`.
//!
//! Errors map by error code in one table (`errors.rs`), never by message text.

mod config;
mod errors;
mod provider;
mod tags;

pub use config::{AwsSecretsManagerConfig, Deletion, MAX_SECRET_NAME_LEN};
pub use provider::{AwsSecretsManagerProvider, MAX_SECRET_BYTES};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "aws";
