//! The status of Entra ID's answers, kept for the error table.
//!
//! azure_identity reads a failed token answer as JSON; a gateway's HTML 502/503 fails that
//! parse and the status is lost (the caller sees a `DataConversion` error wrapped as
//! `Credential`). This policy, on the pipeline of the credentials this crate builds (service
//! principal, workload identity), turns 408, 429 and 5xx answers into a typed
//! [`EntraStatus`] error first, so they map to `Unavailable` / `Throttled` whatever the body.

use std::sync::Arc;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

/// Entra ID (or the token endpoint in front of it) answered 408, 429 or 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntraStatus {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The wait a 429 asked for (`Retry-After`, seconds).
    pub(crate) retry_after: Option<Duration>,
}

impl std::fmt::Display for EntraStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the token endpoint answered HTTP {}", self.status)
    }
}

impl std::error::Error for EntraStatus {}

/// The pipeline policy (see the module docs).
#[derive(Debug)]
pub(crate) struct EntraStatusCheck;

// The trait's `Context` lifetime is late-bound; naming it (`Context<'_>`) breaks the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl Policy for EntraStatusCheck {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let status = u16::from(response.status());
        if matches!(status, 408 | 429 | 500..=599) {
            let retry_after = response
                .headers()
                .get_optional_str(&"retry-after".into())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(azure_core::Error::new(
                ErrorKind::Other,
                EntraStatus { status, retry_after },
            ));
        }
        Ok(response)
    }
}
