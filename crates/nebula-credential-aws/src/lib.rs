//! AWS Secrets Manager backend for nebula-credential.
//!
//! Each credential is one secret named `secret_prefix + id` (AWS names are
//! case-sensitive and allow `_` and `-`, so ids map unchanged). Its `SecretString` is the
//! versioned JSON record (`{format_version, id, encrypted_data, metadata}`), checked
//! against AWS's 65,536-byte limit before any request. Its tags mirror the credential's
//! tags, plus configured default tags, a managed-by marker and the creation time, so
//! `list` filters on the server and never returns foreign secrets.
//!
//! | operation | calls | IAM actions |
//! |---|---|---|
//! | `store` | `DescribeSecret`, then `CreateSecret` or `PutSecretValue` (+ `RestoreSecret` after a recovery-window delete, `TagResource` / `UntagResource` to sync tags) | `secretsmanager:DescribeSecret`, `CreateSecret`, `PutSecretValue`, `RestoreSecret`, `TagResource`, `UntagResource` (+ `kms:GenerateDataKey` with a customer key) |
//! | `retrieve` | `GetSecretValue` | `secretsmanager:GetSecretValue` (+ `kms:Decrypt`) |
//! | `exists` | `DescribeSecret` (never reads the value) | `secretsmanager:DescribeSecret` |
//! | `delete` | `DeleteSecret` (recovery window or force) | `secretsmanager:DeleteSecret` |
//! | `list` | `ListSecrets`, paginated, filtered by name prefix and marker tag | `secretsmanager:ListSecrets` |
//!
//! Errors map by error code in one table (`errors.rs`), never by message text.

#![deny(missing_docs)]

mod config;
mod errors;
mod provider;
mod tags;

pub use config::{AwsSecretsManagerConfig, Deletion, MAX_SECRET_NAME_LEN};
pub use provider::{AwsSecretsManagerProvider, MAX_SECRET_BYTES};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "aws";
