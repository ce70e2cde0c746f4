//! AWS Secrets Manager backend for nebula-credential.
//!
//! Each credential is one secret named `secret_prefix + id` (AWS names are
//! case-sensitive and allow `_` and `-`, so ids map unchanged). Its `SecretString` is the
//! versioned JSON record (`{format_version, id, encrypted_data, metadata}`), checked
//! against AWS's 65,536-byte limit before any request. Its tags (the shared
//! `remote::TagScheme` with AWS's limits) mirror the credential's tags, plus configured
//! default tags, a managed-by marker, the creation time and the keys we own, so `list`
//! filters on the server, never returns foreign secrets, and an overwrite keeps tags
//! other tools added. A secret under our name without the marker is never overwritten or
//! deleted, and never read unless its current value is one this library wrote there:
//! every operation reports `Conflict` naming it (the exception is below).
//!
//! Revisions are version ids: `retrieve` reads the `AWSCURRENT` version and reports its
//! id. Every version after the first is written the same way: `PutSecretValue` under a
//! pending stage label with a `ClientRequestToken` the provider derives, then
//! `UpdateSecretVersionStage` moving `AWSCURRENT` from the version read before to it,
//! which AWS refuses once another writer moved it. A conditional store reports that as
//! `Conflict`; an unconditional one counts as landed and at once overwritten when the
//! other writer was unconditional too (or a delete), and writes again over a conditional
//! winner (whose revision still held, so it came first); a create is `CreateSecret`. No plain `PutSecretValue` moves `AWSCURRENT`,
//! so nothing depends on how an emulator handles that after a stage move (moto 5.2.5/5.2.6
//! get it wrong). Every write creates a version; AWS keeps about 100 per secret.
//!
//! The version id proves authorship: its first half is a digest of (secret name, value),
//! so a `GetSecretValue` answer whose id matches is a value this library wrote under this
//! name, and `retrieve` needs that one call. A value another tool put (its own version id),
//! a copy of our record under another name, versions written before this scheme and
//! foreign secrets are settled by `DescribeSecret` (the marker tag), as are reads AWS
//! refuses because the secret is scheduled for deletion. The marker is checked before every
//! write and delete. `GetSecretValue` answers no tags, so a marker an operator removes from a
//! secret whose current value this library wrote is not seen by `retrieve` until another
//! value is put; granting `GetSecretValue` only on marked secrets (an IAM condition on
//! `aws:ResourceTag/nebula-credential:managed`, see the README) closes that at no cost: a
//! read AWS refuses is settled by `DescribeSecret`, `Conflict` when the marker is missing.
//!
//! `delete` with a recovery window first makes a tombstone the current version (written
//! like any other version), so a restore (ours, when the id is stored again, or AWS's
//! `RestoreSecret`) never brings the deleted value back; readers see "not found" throughout.
//!
//! | operation | calls | IAM actions |
//! |---|---|---|
//! | `store` | `DescribeSecret`, then `CreateSecret`, or `PutSecretValue` + `UpdateSecretVersionStage` (+ `RestoreSecret` after a recovery-window delete, `TagResource` / `UntagResource` for changed tags); a conditional store the same | `secretsmanager:DescribeSecret`, `CreateSecret`, `PutSecretValue`, `UpdateSecretVersionStage`, `RestoreSecret`, `TagResource`, `UntagResource` (+ `kms:GenerateDataKey` with a customer key) |
//! | `retrieve` | `GetSecretValue` (`AWSCURRENT`); `DescribeSecret` only when the answer does not prove the value ours or AWS refuses it | `secretsmanager:GetSecretValue`, `DescribeSecret` (+ `kms:Decrypt`) |
//! | `exists` | `DescribeSecret` (never reads the value) | `secretsmanager:DescribeSecret` |
//! | `delete` | `DescribeSecret`, `PutSecretValue` + `UpdateSecretVersionStage` (tombstone, recovery window only), `DeleteSecret` | `secretsmanager:DescribeSecret`, `PutSecretValue`, `UpdateSecretVersionStage`, `DeleteSecret` |
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
mod versions;

pub use config::{AwsSecretsManagerConfig, DeleteMode, MAX_SECRET_NAME_LEN};
pub use provider::{AwsSecretsManagerProvider, MAX_SECRET_BYTES};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "aws";
