//! [`AwsSecretsManagerConfig`] and its validation.

use std::collections::BTreeMap;

use nebula_credential_core::{ConfigError, ProviderConfig, RetryPolicy, Timeouts};
use serde::{Deserialize, Serialize};

use crate::PROVIDER;
use crate::tags::{MAX_AWS_TAGS, RESERVED_TAGS, validate_aws_tag};

/// Longest secret name AWS accepts.
pub const MAX_SECRET_NAME_LEN: usize = 512;

/// What `delete` does on AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deletion {
    /// Schedule deletion after a recovery window of 7..=30 days; the secret can be
    /// restored meanwhile (storing the id again restores it).
    RecoveryWindow {
        /// Days before AWS deletes the secret for good.
        days: u8,
    },
    /// Delete at once, without recovery; the name is reusable immediately.
    Force,
}

impl Default for Deletion {
    fn default() -> Self {
        Deletion::RecoveryWindow { days: 30 }
    }
}

/// Settings of the AWS Secrets Manager backend (`provider = "aws"`).
///
/// ```toml
/// provider = "aws"
/// region = "eu-west-1"
/// secret_prefix = "myapp/credentials/"
/// kms_key_id = "alias/myapp"
/// deletion = "force"                      # or { recovery_window = { days = 7 } }
/// [default_tags]
/// team = "payments"
/// ```
///
/// Credentials come from the standard chain of `aws-config` (environment, profile, SSO,
/// web identity, IMDS); none are configured here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSecretsManagerConfig {
    /// Region code such as `eu-west-1`; `None` takes it from the environment
    /// (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Endpoint override for emulators (moto, LocalStack); `None` for AWS itself.
    pub endpoint_url: Option<String>,
    /// Prepended to every credential id to form the secret name (default `nebula/credentials/`).
    pub secret_prefix: String,
    /// KMS key for new secrets: key id, key ARN, alias name (`alias/…`) or alias ARN;
    /// `None` uses the AWS-managed key `aws/secretsmanager`.
    pub kms_key_id: Option<String>,
    /// Tags put on every secret besides the credential's own.
    pub default_tags: BTreeMap<String, String>,
    /// What `delete` does (default: a 30-day recovery window).
    pub deletion: Deletion,
    /// Page size of `ListSecrets`, 1..=100 (default 100).
    pub list_page_size: i32,
    /// Retry policy of the layer stack (`[retry]`).
    pub retry: RetryPolicy,
    /// Deadlines of the layer stack (`[timeouts]`), each 1..=60 s here.
    pub timeouts: Timeouts,
}

impl Default for AwsSecretsManagerConfig {
    fn default() -> Self {
        AwsSecretsManagerConfig {
            region: None,
            endpoint_url: None,
            secret_prefix: "nebula/credentials/".into(),
            kms_key_id: None,
            default_tags: BTreeMap::new(),
            deletion: Deletion::default(),
            list_page_size: 100,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

impl AwsSecretsManagerConfig {
    /// The default configuration with `region` and `endpoint_url` from `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`) and `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or `AWS_ENDPOINT_URL`),
    /// and the prefix from `NEBULA_AWS_SECRET_PREFIX`, when set.
    pub fn from_env() -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        let mut c = Self {
            region: var(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            endpoint_url: var(&["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"]),
            ..Self::default()
        };
        if let Some(prefix) = var(&["NEBULA_AWS_SECRET_PREFIX"]) {
            c.secret_prefix = prefix;
        }
        c
    }
}

fn is_region(r: &str) -> bool {
    // e.g. us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn is_key_id(k: &str) -> bool {
    let uuid = |s: &str| {
        let groups: Vec<&str> = s.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let mrk = |s: &str| s.len() == 36 && s.starts_with("mrk-") && s[4..].chars().all(|c| c.is_ascii_hexdigit());
    let alias = |s: &str| {
        s.strip_prefix("alias/").is_some_and(|name| {
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
            && parts[1].starts_with("aws")
            && parts[2] == "kms"
            && is_region(parts[3])
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && (parts[5].strip_prefix("key/").is_some_and(|id| uuid(id) || mrk(id)) || alias(parts[5]))
    };
    uuid(k) || mrk(k) || alias(k) || arn(k)
}

impl ProviderConfig for AwsSecretsManagerConfig {
    fn provider_name(&self) -> &'static str {
        PROVIDER
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
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return err(
                "endpoint_url",
                format!("must start with https:// or http:// (got {url:?})"),
            );
        }
        let p = &self.secret_prefix;
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
        if self.default_tags.len() + RESERVED_TAGS + nebula_credential_core::MAX_TAGS > MAX_AWS_TAGS {
            return err(
                "default_tags",
                format!(
                    "has {} tags; with {} reserved and up to {} per credential, AWS's limit of {MAX_AWS_TAGS} allows at most {}",
                    self.default_tags.len(),
                    RESERVED_TAGS,
                    nebula_credential_core::MAX_TAGS,
                    MAX_AWS_TAGS - RESERVED_TAGS - nebula_credential_core::MAX_TAGS
                ),
            );
        }
        for (k, v) in &self.default_tags {
            if let Err(rule) = validate_aws_tag(k, v) {
                return err(&format!("default_tags.{k}"), rule);
            }
        }
        if let Deletion::RecoveryWindow { days } = self.deletion
            && !(7..=30).contains(&days)
        {
            return err(
                "deletion.recovery_window.days",
                format!("must be between 7 and 30 (got {days})"),
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
        ] {
            assert!(is_key_id(ok), "{ok}");
        }
        for bad in [
            "",
            "my-key",
            "alias/",
            "alias/aws/secretsmanager",
            "arn:aws:kms:us-east-2:1:key/x",
            "1234",
        ] {
            assert!(!is_key_id(bad), "{bad}");
        }
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
                    endpoint_url: Some("localhost:4566".into()),
                    ..valid()
                },
                "endpoint_url",
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
                    deletion: Deletion::RecoveryWindow { days: 6 },
                    ..valid()
                },
                "deletion.recovery_window.days",
            ),
            (
                AwsSecretsManagerConfig {
                    deletion: Deletion::RecoveryWindow { days: 31 },
                    ..valid()
                },
                "deletion.recovery_window.days",
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
        let c: AwsSecretsManagerConfig = toml::from_str("deletion = \"force\"\nregion = \"eu-west-1\"").unwrap();
        assert_eq!(c.deletion, Deletion::Force);
        let c: AwsSecretsManagerConfig = toml::from_str("deletion = { recovery_window = { days = 7 } }").unwrap();
        assert_eq!(c.deletion, Deletion::RecoveryWindow { days: 7 });
        assert!(toml::from_str::<AwsSecretsManagerConfig>("prefix = \"x\"").is_err());
    }
}
