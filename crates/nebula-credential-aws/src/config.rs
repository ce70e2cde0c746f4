//! [`AwsSecretsManagerConfig`] and its validation.

use std::collections::BTreeMap;

use nebula_credential_core::remote::{TagScheme, config_keys, env, redacted_url};
use nebula_credential_core::{
    ConfigError, ProviderConfig, RetryPolicy, StorageError, StorageProvider, Timeouts, async_trait,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PROVIDER;
use crate::provider::AwsSecretsManagerProvider;
use crate::tags::{MAX_AWS_TAGS, validate_default_tag};

/// Longest secret name AWS accepts.
pub const MAX_SECRET_NAME_LEN: usize = 512;

/// What `delete` does on AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// Schedule deletion after a recovery window of
    /// [`recovery_window_days`](AwsSecretsManagerConfig::recovery_window_days). The value
    /// is first overwritten with a tombstone, so restoring the secret (by AWS's
    /// `RestoreSecret` or by storing the id again) never brings the deleted value back.
    #[default]
    Soft,
    /// Delete without recovery. AWS completes it asynchronously: for a short while the
    /// name stays taken, and `store` of the same id waits (bounded) until it is free.
    Purge,
}

/// Configuration keys renamed in this release: `(old, new)`. The old names are accepted,
/// with a warning, until the next one.
const RENAMED_KEYS: &[(&str, &str)] = &[("endpoint_url", "endpoint")];

/// Settings of the AWS Secrets Manager backend (`provider = "aws"`).
///
/// ```toml
/// provider = "aws"
/// region = "eu-west-1"
/// secret_prefix = "myapp/credentials/"
/// kms_key_id = "alias/myapp"
/// delete_mode = "purge"                   # or "soft" (default), with recovery_window_days
/// [default_tags]
/// "myorg:team" = "payments"
/// ```
///
/// Credentials come from the standard chain of `aws-config` (environment, profile, SSO,
/// web identity, IMDS); none are configured here.
///
/// Deprecated keys still accepted, with a warning: `endpoint_url` (now `endpoint`) and
/// `deletion` (`"force"` is now `delete_mode = "purge"`, `{ recovery_window = { days = N } }`
/// is now `delete_mode = "soft"` with `recovery_window_days = N`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct AwsSecretsManagerConfig {
    /// Region code such as `eu-west-1` (any partition: `cn-north-1`, `us-gov-west-1`,
    /// `eusc-de-east-1`, …); `None` takes it from the environment (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Endpoint override for emulators (moto, LocalStack); `None` for AWS itself. An
    /// `http://` URL is accepted only for a loopback host unless `allow_http` is set.
    pub endpoint: Option<String>,
    /// Accept a plain `http://` `endpoint` on a non-loopback host (default `false`):
    /// requests, signatures and values would cross the network unencrypted.
    pub allow_http: bool,
    /// Prepended to every credential id to form the secret name (default
    /// `nebula/credentials/`; must not be empty, so names stay apart from other secrets).
    pub secret_prefix: String,
    /// KMS key of new secrets: key id, key ARN, alias name (`alias/…`), alias ARN, or
    /// `alias/aws/secretsmanager`; `None` uses that AWS-managed key. Applied when a secret
    /// is created only: changing it does not re-key existing secrets (run
    /// `aws secretsmanager update-secret --kms-key-id …` on them, or delete and store them again).
    pub kms_key_id: Option<String>,
    /// Tags put on every secret besides the credential's own.
    pub default_tags: BTreeMap<String, String>,
    /// What `delete` does (default [`DeleteMode::Soft`]: scheduled deletion after a
    /// recovery window).
    pub delete_mode: DeleteMode,
    /// Days before AWS deletes a soft-deleted secret for good, 7..=30 (default 30).
    pub recovery_window_days: u8,
    /// Page size of `ListSecrets`, 1..=100 (default 100).
    pub list_page_size: u32,
    /// Retry policy of the layer stack (`[retry]`); `list` also retries a failed page
    /// with it, from that page on.
    pub retry: RetryPolicy,
    /// Deadlines of the layer stack (`[timeouts]`), each 1..=60 s here. `list` also
    /// bounds each page request by `read_ms`.
    pub timeouts: Timeouts,
}

/// Shows the endpoint through [`redacted_url`]: user info or a query may hold a secret.
impl std::fmt::Debug for AwsSecretsManagerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSecretsManagerConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint.as_deref().map(redacted_url))
            .field("allow_http", &self.allow_http)
            .field("secret_prefix", &self.secret_prefix)
            .field("kms_key_id", &self.kms_key_id)
            .field("default_tags", &self.default_tags)
            .field("delete_mode", &self.delete_mode)
            .field("recovery_window_days", &self.recovery_window_days)
            .field("list_page_size", &self.list_page_size)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl Default for AwsSecretsManagerConfig {
    fn default() -> Self {
        AwsSecretsManagerConfig {
            region: None,
            endpoint: None,
            allow_http: false,
            secret_prefix: "nebula/credentials/".into(),
            kms_key_id: None,
            default_tags: BTreeMap::new(),
            delete_mode: DeleteMode::default(),
            recovery_window_days: 30,
            list_page_size: 100,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

impl<'de> Deserialize<'de> for AwsSecretsManagerConfig {
    /// The derived fields, after moving the deprecated keys to their new names.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AwsSecretsManagerConfig::deserialize(config_keys::Renamed::new(
            d,
            config_keys::Renames {
                provider: PROVIDER,
                keys: RENAMED_KEYS,
                values: &[],
                upgrades: &[config_keys::Upgrade {
                    old: "deletion",
                    claims: &["delete_mode", "recovery_window_days"],
                    upgrade: upgrade_deletion,
                }],
            },
        ))
    }
}

impl Serialize for AwsSecretsManagerConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AwsSecretsManagerConfig::serialize(self, s)
    }
}

/// The entries replacing the deprecated `deletion` key: `"force"` → `delete_mode =
/// "purge"`, `{ recovery_window = { days = N } }` → `delete_mode = "soft"` with
/// `recovery_window_days = N`.
fn upgrade_deletion(old: serde_json::Value) -> Result<Vec<(&'static str, serde_json::Value)>, ConfigError> {
    use serde_json::Value;
    let days = old.get("recovery_window").and_then(|w| w.get("days"));
    match (&old, days) {
        (Value::String(s), _) if s == "force" => Ok(vec![("delete_mode", "purge".into())]),
        (Value::String(s), _) if s == "recovery_window" => Ok(vec![("delete_mode", "soft".into())]),
        (_, Some(days)) => Ok(vec![
            ("delete_mode", "soft".into()),
            ("recovery_window_days", days.clone()),
        ]),
        _ => Err(ConfigError::new(
            PROVIDER,
            "deletion",
            "is deprecated and holds neither \"force\" nor { recovery_window = { days = N } }; write \
             delete_mode = \"purge\", or delete_mode = \"soft\" with recovery_window_days = N",
        )),
    }
}

/// Whether `r` is a region code of the shape the SDK's partitions use
/// (`^(us|eu|ap|…)-\w+-\d+$`, `^us-gov-\w+-\d+$`, `^eusc-(de)-\w+-\d+$`, …): a
/// letter group, one or more lowercase groups, and a number.
pub(crate) fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    let group = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    parts.len() >= 3
        && parts.iter().all(group)
        && (2..=4).contains(&parts[0].len())
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// Whether `p` is an ARN partition: `aws` or `aws-…` (`aws-cn`, `aws-us-gov`,
/// `aws-iso-b`, `aws-eusc`, …).
fn is_partition(p: &str) -> bool {
    p == "aws"
        || p.strip_prefix("aws-").is_some_and(|rest| {
            rest.split('-')
                .all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_lowercase()))
        })
}

fn is_key_id(k: &str) -> bool {
    let uuid = |s: &str| {
        let groups: Vec<&str> = s.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let mrk = |s: &str| s.len() == 36 && s.starts_with("mrk-") && s[4..].chars().all(|c| c.is_ascii_hexdigit());
    let alias = |s: &str| {
        s == "alias/aws/secretsmanager"
            || s.strip_prefix("alias/").is_some_and(|name| {
                !name.is_empty()
                    && name.len() <= 250
                    && !name.starts_with("aws/")
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
            })
    };
    let arn = |s: &str| {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        parts.len() == 6
            && parts[0] == "arn"
            && is_partition(parts[1])
            && parts[2] == "kms"
            && is_region(parts[3])
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && (parts[5].strip_prefix("key/").is_some_and(|id| uuid(id) || mrk(id)) || alias(parts[5]))
    };
    uuid(k) || mrk(k) || alias(k) || arn(k)
}

/// Checks an endpoint URL with the shared service-URL rules.
fn check_endpoint(raw: &str, allow_http: bool) -> Result<(), String> {
    nebula_credential_core::remote::check_service_url(raw, allow_http, "allow_http").map(drop)
}

#[async_trait]
impl ProviderConfig for AwsSecretsManagerConfig {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The default configuration, validated, with these variables when set (empty = unset):
    /// - `AWS_REGION`, else `AWS_DEFAULT_REGION` → `region`;
    /// - `NEBULA_AWS_ENDPOINT`, else the SDK's `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else
    ///   `AWS_ENDPOINT_URL` → `endpoint`;
    /// - `NEBULA_AWS_ALLOW_HTTP` (`true` / `false`) → `allow_http`;
    /// - `NEBULA_AWS_SECRET_PREFIX` → `secret_prefix`;
    /// - `NEBULA_AWS_KMS_KEY_ID` → `kms_key_id`.
    ///
    /// Credentials are read by the SDK's own chain (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, …).
    fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self {
            region: env::var(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            endpoint: env::var(&[
                "NEBULA_AWS_ENDPOINT",
                "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                "AWS_ENDPOINT_URL",
            ]),
            kms_key_id: env::var(&["NEBULA_AWS_KMS_KEY_ID"]),
            ..Self::default()
        };
        if let Some(prefix) = env::var(&["NEBULA_AWS_SECRET_PREFIX"]) {
            c.secret_prefix = prefix;
        }
        if let Some(allow) = env::var(&["NEBULA_AWS_ALLOW_HTTP"]) {
            c.allow_http = env::parse_bool(PROVIDER, "allow_http", "NEBULA_AWS_ALLOW_HTTP", &allow)?;
        }
        c.validate()?;
        Ok(c)
    }

    async fn build(&self) -> Result<Box<dyn StorageProvider>, StorageError> {
        Ok(Box::new(AwsSecretsManagerProvider::new(self.clone()).await?))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &str, rule: String| Err(ConfigError::new(PROVIDER, field, rule));
        if let Some(r) = &self.region
            && !is_region(r)
        {
            return err(
                "region",
                format!("must be a region code such as \"eu-west-1\" (got {r:?})"),
            );
        }
        if let Some(url) = &self.endpoint
            && let Err(rule) = check_endpoint(url, self.allow_http)
        {
            return err("endpoint", rule);
        }
        let p = &self.secret_prefix;
        if p.is_empty() {
            return err(
                "secret_prefix",
                "must not be empty: it keeps this library's secrets apart from the account's others (e.g. \"nebula/credentials/\")".into(),
            );
        }
        if p.len() > MAX_SECRET_NAME_LEN - 128 {
            return err(
                "secret_prefix",
                format!(
                    "has {} characters; at most {} leave room for a 128-character id within AWS's {MAX_SECRET_NAME_LEN}",
                    p.len(),
                    MAX_SECRET_NAME_LEN - 128
                ),
            );
        }
        if let Some(c) = p
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
        {
            return err(
                "secret_prefix",
                format!("contains {c:?}; AWS secret names allow only letters, digits and / _ + = . @ -"),
            );
        }
        if let Some(k) = &self.kms_key_id
            && !is_key_id(k)
        {
            return err(
                "kms_key_id",
                format!("must be a KMS key id, key ARN, alias name (alias/…) or alias ARN (got {k:?})"),
            );
        }
        let reserved = TagScheme::RESERVED_TAGS + nebula_credential_core::MAX_TAGS;
        if self.default_tags.len() + reserved > MAX_AWS_TAGS {
            return err(
                "default_tags",
                format!(
                    "has {} tags; with {} reserved and up to {} per credential, AWS's limit of {MAX_AWS_TAGS} allows at most {}",
                    self.default_tags.len(),
                    TagScheme::RESERVED_TAGS,
                    nebula_credential_core::MAX_TAGS,
                    MAX_AWS_TAGS - reserved
                ),
            );
        }
        for (k, v) in &self.default_tags {
            if let Err(rule) = validate_default_tag(k, v) {
                return err(&format!("default_tags.{k}"), rule);
            }
        }
        if !(7..=30).contains(&self.recovery_window_days) {
            return err(
                "recovery_window_days",
                format!("must be between 7 and 30 (got {})", self.recovery_window_days),
            );
        }
        if !(1..=100).contains(&self.list_page_size) {
            return err(
                "list_page_size",
                format!("must be between 1 and 100 (got {})", self.list_page_size),
            );
        }
        self.retry.validate(PROVIDER)?;
        self.timeouts.validate(PROVIDER)?;
        for (field, ms) in [
            ("timeouts.read_ms", self.timeouts.read_ms),
            ("timeouts.write_ms", self.timeouts.write_ms),
        ] {
            if !(1_000..=60_000).contains(&ms) {
                return err(field, format!("must be between 1 and 60 seconds for AWS (got {ms} ms)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> AwsSecretsManagerConfig {
        AwsSecretsManagerConfig {
            region: Some("us-east-1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(AwsSecretsManagerConfig::default().validate().is_ok());
        assert!(valid().validate().is_ok());
        assert_eq!(valid().secret_prefix, "nebula/credentials/");
    }

    #[test]
    fn key_ids() {
        for ok in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "alias/my-key",
            "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias",
            "alias/aws/secretsmanager",
            "arn:aws-eusc:kms:eusc-de-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x",
            "arn:aws-iso-b:kms:us-isob-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        ] {
            assert!(is_key_id(ok), "{ok}");
        }
        for bad in [
            "",
            "my-key",
            "alias/",
            "alias/aws/other",
            "arn:gcp:kms:us-east-2:111122223333:alias/x",
            "arn:aws-:kms:us-east-2:111122223333:alias/x",
            "arn:aws:kms:us-east-2:1:key/x",
            "1234",
        ] {
            assert!(!is_key_id(bad), "{bad}");
        }
    }

    /// Every region and partition in the SDK's endpoint partitions (aws-sdk-secretsmanager
    /// 1.125, `endpoint_lib.rs`), plus future ones of the same shape.
    #[test]
    fn every_region_and_partition_the_sdk_knows() {
        let regions = [
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-3",
            "ap-south-2",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-west-2",
            "cn-north-1",
            "cn-northwest-1",
            "eusc-de-east-1",
            "us-iso-east-1",
            "us-iso-west-1",
            "us-isob-east-1",
            "us-isob-west-1",
            "eu-isoe-west-1",
            "us-isof-east-1",
            "us-isof-south-1",
            "us-gov-east-1",
            "us-gov-west-1",
        ];
        for r in regions {
            let c = AwsSecretsManagerConfig {
                region: Some(r.into()),
                ..valid()
            };
            assert!(c.validate().is_ok(), "{r}");
        }
        for bad in [
            "",
            "Europe",
            "us-east",
            "us_east_1",
            "US-EAST-1",
            "useastern-x-1",
            "-east-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
        for p in [
            "aws",
            "aws-cn",
            "aws-eusc",
            "aws-iso",
            "aws-iso-b",
            "aws-iso-e",
            "aws-iso-f",
            "aws-us-gov",
        ] {
            assert!(is_partition(p), "{p}");
        }
    }

    #[test]
    fn endpoint_urls_are_parsed() {
        let check = |url: &str, allow_http: bool| {
            AwsSecretsManagerConfig {
                endpoint: Some(url.into()),
                allow_http,
                ..valid()
            }
            .validate()
        };
        for ok in [
            "https://secretsmanager.eu-west-1.amazonaws.com",
            "http://127.0.0.1:4566",
            "http://localhost:5000/",
            "http://[::1]:5000",
            "http://127.8.9.10:1",
        ] {
            assert!(check(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://",
            "http://a b",
            "http://127.0.0.1:99999",
            "localhost:4566",
            "ftp://127.0.0.1",
            "https://user:pw@host",
            "https://host/?x=1",
            "http://moto:5000",
            "http://10.0.0.5:4566",
        ] {
            let e = check(bad, false).expect_err(bad);
            assert_eq!(e.field(), "endpoint", "{bad}: {e}");
        }
        assert!(check("http://moto:5000", true).is_ok(), "allowed explicitly");
        let e = check("http://10.0.0.5:4566", false).unwrap_err();
        assert!(e.rule().contains("allow_http"), "{e}");
    }

    #[test]
    fn validation_table_names_the_field() {
        let tag = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        let many: BTreeMap<String, String> = (0..40).map(|i| (format!("t{i}"), String::new())).collect();
        let cases: Vec<(AwsSecretsManagerConfig, &str)> = vec![
            (
                AwsSecretsManagerConfig {
                    region: Some("Europe".into()),
                    ..valid()
                },
                "region",
            ),
            (
                AwsSecretsManagerConfig {
                    region: Some("us-east".into()),
                    ..valid()
                },
                "region",
            ),
            (
                AwsSecretsManagerConfig {
                    endpoint: Some("localhost:4566".into()),
                    ..valid()
                },
                "endpoint",
            ),
            (
                AwsSecretsManagerConfig {
                    secret_prefix: String::new(),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                AwsSecretsManagerConfig {
                    secret_prefix: "a b/".into(),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                AwsSecretsManagerConfig {
                    secret_prefix: "a:b/".into(),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                AwsSecretsManagerConfig {
                    secret_prefix: "a*".into(),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                AwsSecretsManagerConfig {
                    secret_prefix: "x".repeat(385),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                AwsSecretsManagerConfig {
                    kms_key_id: Some("my-key".into()),
                    ..valid()
                },
                "kms_key_id",
            ),
            (
                AwsSecretsManagerConfig {
                    default_tags: tag("aws:owner", "x"),
                    ..valid()
                },
                "default_tags.aws:owner",
            ),
            (
                AwsSecretsManagerConfig {
                    default_tags: tag(&"k".repeat(129), "x"),
                    ..valid()
                },
                "default_tags",
            ),
            (
                AwsSecretsManagerConfig {
                    default_tags: many,
                    ..valid()
                },
                "default_tags",
            ),
            (
                AwsSecretsManagerConfig {
                    recovery_window_days: 6,
                    ..valid()
                },
                "recovery_window_days",
            ),
            (
                AwsSecretsManagerConfig {
                    recovery_window_days: 31,
                    ..valid()
                },
                "recovery_window_days",
            ),
            (
                AwsSecretsManagerConfig {
                    list_page_size: 0,
                    ..valid()
                },
                "list_page_size",
            ),
            (
                AwsSecretsManagerConfig {
                    timeouts: Timeouts {
                        read_ms: 500,
                        write_ms: 10_000,
                    },
                    ..valid()
                },
                "timeouts.read_ms",
            ),
            (
                AwsSecretsManagerConfig {
                    timeouts: Timeouts {
                        read_ms: 5_000,
                        write_ms: 61_000,
                    },
                    ..valid()
                },
                "timeouts.write_ms",
            ),
            (
                AwsSecretsManagerConfig {
                    retry: RetryPolicy {
                        max_retries: 11,
                        ..Default::default()
                    },
                    ..valid()
                },
                "retry.max_retries",
            ),
        ];
        for (c, field) in cases {
            let e = c.validate().expect_err(field);
            assert!(e.field().starts_with(field), "{field}: {e}");
            assert_eq!(e.provider(), "aws");
        }
    }

    #[test]
    fn toml_shapes() {
        let c: AwsSecretsManagerConfig = toml::from_str("delete_mode = \"purge\"\nregion = \"eu-west-1\"").unwrap();
        assert_eq!(c.delete_mode, DeleteMode::Purge);
        let c: AwsSecretsManagerConfig = toml::from_str("delete_mode = \"soft\"\nrecovery_window_days = 7").unwrap();
        assert_eq!((c.delete_mode, c.recovery_window_days), (DeleteMode::Soft, 7));
        assert!(toml::from_str::<AwsSecretsManagerConfig>("prefix = \"x\"").is_err());
        let c: AwsSecretsManagerConfig = toml::from_str("allow_http = true").unwrap();
        assert!(c.allow_http);
    }

    #[test]
    fn deprecated_keys_are_read_as_their_new_names() {
        let c: AwsSecretsManagerConfig = toml::from_str("endpoint_url = \"http://127.0.0.1:4566\"").unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        let c: AwsSecretsManagerConfig = toml::from_str("deletion = \"force\"\nregion = \"eu-west-1\"").unwrap();
        assert_eq!(c.delete_mode, DeleteMode::Purge);
        let c: AwsSecretsManagerConfig = toml::from_str("deletion = { recovery_window = { days = 7 } }").unwrap();
        assert_eq!((c.delete_mode, c.recovery_window_days), (DeleteMode::Soft, 7));
        let c: AwsSecretsManagerConfig = toml::from_str("deletion = \"recovery_window\"").unwrap();
        assert_eq!((c.delete_mode, c.recovery_window_days), (DeleteMode::Soft, 30));
    }

    #[test]
    fn a_key_set_under_both_names_is_refused() {
        for both in [
            "endpoint_url = \"http://127.0.0.1:1\"\nendpoint = \"http://127.0.0.1:2\"",
            "deletion = \"force\"\ndelete_mode = \"soft\"",
            "deletion = \"force\"\nrecovery_window_days = 7",
        ] {
            let e = toml::from_str::<AwsSecretsManagerConfig>(both).unwrap_err().to_string();
            assert!(e.contains("deprecated") || e.contains("deletion"), "{both}: {e}");
        }
        let e = toml::from_str::<AwsSecretsManagerConfig>("deletion = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("delete_mode"), "{e}");
    }

    #[test]
    fn the_new_names_round_trip() {
        let c = AwsSecretsManagerConfig {
            endpoint: Some("http://127.0.0.1:4566".into()),
            delete_mode: DeleteMode::Purge,
            recovery_window_days: 9,
            ..valid()
        };
        let text = toml::to_string(&c).unwrap();
        assert!(
            text.contains("endpoint = ") && text.contains("delete_mode = \"purge\""),
            "{text}"
        );
        assert_eq!(toml::from_str::<AwsSecretsManagerConfig>(&text).unwrap(), c);
    }

    /// The umbrella's `StorageConfig` is tagged by `provider`: the old keys are accepted
    /// through that too.
    #[test]
    fn deprecated_keys_pass_through_a_provider_tagged_enum() {
        #[derive(Debug, Deserialize, Serialize)]
        #[serde(tag = "provider")]
        enum Tagged {
            #[serde(rename = "aws")]
            Aws(AwsSecretsManagerConfig),
        }
        let Tagged::Aws(c) =
            toml::from_str("provider = \"aws\"\nendpoint_url = \"http://127.0.0.1:4566\"\ndeletion = \"force\"")
                .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(c.delete_mode, DeleteMode::Purge);
        let text = toml::to_string(&Tagged::Aws(c.clone())).unwrap();
        assert!(
            text.contains("provider = \"aws\"") && text.contains("endpoint = "),
            "{text}"
        );
        let Tagged::Aws(back) = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    /// A TOML error still points at its line, old key names or not.
    #[test]
    fn toml_errors_point_at_their_line() {
        let line = |text: &str| {
            let e = toml::from_str::<AwsSecretsManagerConfig>(text).unwrap_err();
            let span = e.span().unwrap_or_else(|| panic!("no span: {e}"));
            text[..span.start].matches('\n').count() + 1
        };
        assert_eq!(line("region = \"eu-west-1\"\nlist_page_size = \"x\"\n"), 2);
        assert_eq!(line("endpoint_url = \"http://127.0.0.1:1\"\nbogus = 1\n"), 2);
        assert_eq!(
            line("deletion = \"force\"\nregion = \"r\"\n[timeouts]\nread_ms = \"x\"\n"),
            4
        );
    }
}
