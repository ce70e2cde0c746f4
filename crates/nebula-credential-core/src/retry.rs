//! [`RetryPolicy`]: exponential backoff with jitter, applied by the [`Retry`](crate::layers::Retry) layer.

use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// How often and how patiently to retry retryable errors.
///
/// Delay before retry `n` (0-based) is `min(base_delay_ms × multiplierⁿ, max_delay_ms)`,
/// then scaled by a random factor in `1 ± jitter` and capped at `max_delay_ms` again.
///
/// ```
/// use nebula_credential_core::RetryPolicy;
/// let p = RetryPolicy { jitter: 0.0, ..RetryPolicy::default() };
/// assert_eq!(p.calculate_delay(0).as_millis(), 100);
/// assert_eq!(p.calculate_delay(3).as_millis(), 800);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt, 0..=10 (default 5). 0 disables retrying.
    pub max_retries: u32,
    /// Delay before the first retry, in milliseconds (default 100).
    pub base_delay_ms: u64,
    /// Upper bound of any delay, in milliseconds (default 30,000).
    pub max_delay_ms: u64,
    /// Growth factor per retry, 1..=10 (default 2).
    pub multiplier: f64,
    /// Relative jitter, 0..=1 (default 0.25, i.e. ±25 %).
    pub jitter: f64,
}

impl RetryPolicy {
    /// Most retries a policy may ask for.
    pub const MAX_RETRIES: u32 = 10;
    /// Longest delay a policy may ask for: 5 minutes.
    pub const MAX_DELAY_MS: u64 = 300_000;

    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Checks every field; the error names the field (prefixed `retry.`) and the rule.
    pub fn validate(&self, provider: &'static str) -> Result<(), ConfigError> {
        let err = |field: &str, rule: String| Err(ConfigError::new(provider, format!("retry.{field}"), rule));
        if self.max_retries > Self::MAX_RETRIES {
            return err(
                "max_retries",
                format!("must be at most {} (got {})", Self::MAX_RETRIES, self.max_retries),
            );
        }
        if self.base_delay_ms == 0 {
            return err("base_delay_ms", "must be at least 1 millisecond (got 0)".into());
        }
        if self.max_delay_ms > Self::MAX_DELAY_MS {
            return err(
                "max_delay_ms",
                format!(
                    "must be at most {} milliseconds (got {})",
                    Self::MAX_DELAY_MS,
                    self.max_delay_ms
                ),
            );
        }
        if self.base_delay_ms > self.max_delay_ms {
            return err(
                "base_delay_ms",
                format!(
                    "must not exceed max_delay_ms ({} > {})",
                    self.base_delay_ms, self.max_delay_ms
                ),
            );
        }
        if !(1.0..=10.0).contains(&self.multiplier) {
            return err(
                "multiplier",
                format!("must be between 1 and 10 (got {})", self.multiplier),
            );
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return err("jitter", format!("must be between 0 and 1 (got {})", self.jitter));
        }
        Ok(())
    }

    /// The delay before retry `attempt` (0-based) without jitter, capped at `max_delay_ms`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
        let ms = (self.base_delay_ms as f64) * self.multiplier.powi(exp);
        Duration::from_millis(ms.min(self.max_delay_ms as f64) as u64)
    }

    /// The delay before retry `attempt` (0-based), with jitter, never above `max_delay_ms`.
    /// Total even for a policy that fails [`validate`](Self::validate): a jitter outside
    /// 0..=1 is clamped, so no input panics.
    pub fn calculate_delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        let jitter = if self.jitter > 0.0 {
            self.jitter.min(1.0)
        } else {
            return base;
        };
        let factor = 1.0 + rand::rng().random_range(-jitter..=jitter);
        base.mul_f64(factor).min(Duration::from_millis(self.max_delay_ms))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay_ms: 100,
            max_delay_ms: 30_000,
            multiplier: 2.0,
            jitter: 0.25,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> RetryPolicy {
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn exact_exponential_growth_without_jitter() {
        let p = no_jitter();
        let got: Vec<u128> = (0..6).map(|a| p.calculate_delay(a).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200]);
        let p = RetryPolicy {
            multiplier: 3.0,
            base_delay_ms: 10,
            ..no_jitter()
        };
        assert_eq!(p.calculate_delay(4).as_millis(), 810);
    }

    #[test]
    fn capped_at_max_delay() {
        let p = no_jitter();
        assert_eq!(p.calculate_delay(9).as_millis(), 30_000); // 51.2 s uncapped
        assert_eq!(p.calculate_delay(1_000).as_millis(), 30_000);
        let jittered = RetryPolicy::default();
        for _ in 0..1_000 {
            assert!(jittered.calculate_delay(20) <= Duration::from_millis(30_000));
        }
    }

    #[test]
    fn jitter_stays_within_25_percent() {
        let p = RetryPolicy::default();
        let (mut below, mut above) = (false, false);
        for attempt in 0..5 {
            let base = p.base_delay(attempt).as_secs_f64();
            for _ in 0..1_000 {
                let d = p.calculate_delay(attempt).as_secs_f64();
                assert!(d >= base * 0.75 - 1e-9 && d <= base * 1.25 + 1e-9, "{d} vs {base}");
                below |= d < base;
                above |= d > base;
            }
        }
        assert!(below && above, "jitter should go both ways");
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (
                RetryPolicy {
                    max_retries: 11,
                    ..Default::default()
                },
                "retry.max_retries",
            ),
            (
                RetryPolicy {
                    base_delay_ms: 0,
                    ..Default::default()
                },
                "retry.base_delay_ms",
            ),
            (
                RetryPolicy {
                    max_delay_ms: 300_001,
                    ..Default::default()
                },
                "retry.max_delay_ms",
            ),
            (
                RetryPolicy {
                    base_delay_ms: 500,
                    max_delay_ms: 400,
                    ..Default::default()
                },
                "retry.base_delay_ms",
            ),
            (
                RetryPolicy {
                    multiplier: 0.5,
                    ..Default::default()
                },
                "retry.multiplier",
            ),
            (
                RetryPolicy {
                    multiplier: 11.0,
                    ..Default::default()
                },
                "retry.multiplier",
            ),
            (
                RetryPolicy {
                    jitter: -0.1,
                    ..Default::default()
                },
                "retry.jitter",
            ),
            (
                RetryPolicy {
                    multiplier: f64::NAN,
                    ..Default::default()
                },
                "retry.multiplier",
            ),
        ];
        for (p, field) in cases {
            assert_eq!(p.validate("mock").unwrap_err().field(), field, "{p:?}");
        }
        assert!(RetryPolicy::default().validate("mock").is_ok());
        assert!(RetryPolicy::none().validate("mock").is_ok());
    }

    #[test]
    fn serde_defaults() {
        let p: RetryPolicy = toml::from_str("max_retries = 3").unwrap();
        assert_eq!(p.max_retries, 3);
        assert_eq!(p.base_delay_ms, 100);
        assert!(toml::from_str::<RetryPolicy>("max_retry = 3").is_err());
    }
}
