//! The Vault session: one HTTP client (TLS set up from our config only, no redirects),
//! the current token, AppRole (re-)login, and the background task that renews the token.
//!
//! The current [`VaultClient`] sits behind an `Arc` that a login swaps atomically:
//! operations in flight keep the client they started with, later ones get the new token;
//! the replaced token is revoked. Concurrent callers that need a login share one: those
//! queued behind a login get its outcome, and a failed login is held for a backoff (1 s,
//! doubling up to 60 s) before anyone tries again. Tokens never appear in `Debug`
//! output, errors or logs.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use nebula_credential_core::remote::load_ca_cert;
use nebula_credential_core::secrecy::ExposeSecret;
use nebula_credential_core::{Operation, StorageError};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettings};

use crate::PROVIDER;
use crate::config::{VaultAuth, VaultConfig};
use crate::errors::{Context, Kind, TOKEN_REJECTED, VaultError};

/// Counters of the token lifecycle, as returned by
/// [`VaultProvider::token_stats`](crate::VaultProvider::token_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenStats {
    /// Successful `renew-self` calls.
    pub renewals: u64,
    /// Successful AppRole logins after the first one.
    pub relogins: u64,
    /// Checks, renewals or logins that failed.
    pub failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    renewals: AtomicU64,
    relogins: AtomicU64,
    failures: AtomicU64,
}

/// Whether the token may call `auth/token/lookup-self` (the `default` policy grants it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Not probed yet.
    Unknown,
    /// `lookup-self` works: a 403 elsewhere can be checked against it.
    Allowed,
    /// `lookup-self` is refused although the token works (no `default` policy): the
    /// provider cannot see the TTL, nor tell an expired token from a policy denial.
    Denied,
}

const LOOKUP_UNKNOWN: u8 = 0;
const LOOKUP_ALLOWED: u8 = 1;
const LOOKUP_DENIED: u8 = 2;

/// The longest a failed login is held before the next attempt.
const MAX_LOGIN_BACKOFF: Duration = Duration::from_secs(60);

/// Why a login failed, kept so callers queued behind it (and those arriving during its
/// backoff) get the same answer without logging in again.
#[derive(Debug, Clone, Copy)]
struct LoginFailure {
    kind: Kind,
    status: Option<u16>,
    timed_out: bool,
}

#[derive(Debug, Default)]
struct LoginState {
    /// The last failure and until when it is held.
    failure: Option<(LoginFailure, Instant)>,
    /// Failures in a row (sets the backoff).
    consecutive: u32,
}

/// The lease of the current AppRole token as its login (or last renewal) reported it.
#[derive(Debug, Clone, Copy)]
struct Lease {
    expires: Instant,
    ttl: Duration,
}

/// The client and token shared by the provider and its renewal task.
pub(crate) struct Session {
    http: reqwest::Client,
    settings: VaultClientSettings,
    auth: VaultAuth,
    mount_path: String,
    secret_prefix: String,
    current: RwLock<Arc<VaultClient>>,
    login_state: Mutex<LoginState>,
    /// Login attempts finished (successful or not).
    logins_done: AtomicU64,
    lookup: AtomicU8,
    lease: std::sync::Mutex<Option<Lease>>,
    counters: Counters,
    threshold: Duration,
    interval: Duration,
    deadline: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("address", &self.settings.address.as_str())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn config_error(field: &str, rule: String) -> StorageError {
    StorageError::Config(nebula_credential_core::ConfigError::new(PROVIDER, field, rule))
}

/// How much later than the longer deadline the HTTP client gives up on a request by itself.
const CLIENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// The HTTP client's own timeout: a backstop after the longer of the two deadlines, so the
/// Timeout layer (or the deadline around a login or renewal) always ends a slow call first
/// and reports it as `Timeout`. At the deadline itself the two timers race, and the
/// client's error is a transport failure, reported as `Unavailable` (found by the fault
/// matrix, tests/tests/faults.rs).
fn client_timeout(timeouts: &nebula_credential_core::Timeouts) -> Duration {
    Duration::from_millis(timeouts.read_ms.max(timeouts.write_ms)) + CLIENT_TIMEOUT_MARGIN
}

/// The HTTP client: TLS verification always on, the system roots plus `ca_cert`, nothing
/// read from `VAULT_*` variables (vaultrs's own builder reads `VAULT_SKIP_VERIFY` and
/// `VAULT_CACERT`; this client is built without it), no redirects followed (reqwest
/// would re-send `X-Vault-Token` to any origin, https→http included), and https only
/// when the address is https.
fn http_client(config: &VaultConfig) -> Result<reqwest::Client, StorageError> {
    let overall = client_timeout(&config.timeouts);
    let mut builder = reqwest::ClientBuilder::new()
        .tls_backend_rustls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(overall)
        .connect_timeout(overall.min(Duration::from_secs(10)));
    if config.endpoint.starts_with("http://") {
        // Plain http needs no roots (and skips loading the platform verifier).
        builder = builder.tls_certs_only(Vec::new());
    } else {
        builder = builder.https_only(true);
        if let Some(ca) = &config.ca_cert {
            let pem = load_ca_cert(PROVIDER, ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|_| config_error("ca_cert", "is not a PEM certificate (bundle)".into()))?;
            builder = builder.tls_certs_merge(certs);
        }
    }
    builder.build().map_err(|e| {
        StorageError::backend(
            PROVIDER,
            Operation::Check,
            None,
            "cannot build the HTTP client; check ca_cert",
        )
        .with_source(e)
    })
}

impl Session {
    /// Builds the client without any network I/O.
    pub(crate) fn new(config: &VaultConfig) -> Result<Self, StorageError> {
        let http = http_client(config)?;
        let address = url::Url::parse(&config.endpoint)
            .map_err(|e| config_error("endpoint", format!("is not a valid URL ({e})")))?;
        let settings = VaultClientSettings {
            address,
            ca_certs: Vec::new(),
            identity: None,
            timeout: None,
            token: String::new(),
            verify: true,
            version: 1,
            wrapping: false,
            namespace: config.namespace.clone(),
            proxy: None,
        };
        let token = match &config.auth {
            VaultAuth::Token { token } => token.expose_secret().to_string(),
            VaultAuth::AppRole { .. } => String::new(),
        };
        let first = Arc::new(make_client(&http, &settings, &token));
        Ok(Session {
            http,
            settings,
            auth: config.auth.clone(),
            mount_path: config.mount_path.clone(),
            secret_prefix: config.secret_prefix.clone(),
            current: RwLock::new(first),
            login_state: Mutex::new(LoginState::default()),
            logins_done: AtomicU64::new(0),
            lookup: AtomicU8::new(LOOKUP_UNKNOWN),
            lease: std::sync::Mutex::new(None),
            counters: Counters::default(),
            threshold: config.renewal_threshold(),
            interval: config.check_interval(),
            deadline: Duration::from_millis(config.timeouts.read_ms),
        })
    }

    /// A client carrying `token`, sharing the connection pool.
    fn client_with(&self, token: &str) -> VaultClient {
        make_client(&self.http, &self.settings, token)
    }

    fn swap(&self, token: &str) {
        let client = Arc::new(self.client_with(token));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = client;
    }

    /// The client of the current token.
    pub(crate) fn client(&self) -> Arc<VaultClient> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether this session can log in by itself (AppRole).
    pub(crate) fn can_login(&self) -> bool {
        matches!(self.auth, VaultAuth::AppRole { .. })
    }

    fn approle_mount(&self) -> &str {
        match &self.auth {
            VaultAuth::AppRole { mount, .. } => mount,
            VaultAuth::Token { .. } => "approle",
        }
    }

    /// One AppRole login: installs the new token. Token auth: nothing to do.
    async fn login_once(&self) -> Result<(), LoginFailure> {
        let VaultAuth::AppRole {
            role_id,
            secret_id,
            mount,
        } = &self.auth
        else {
            return Ok(());
        };
        let anonymous = self.client_with("");
        let login = vaultrs::auth::approle::login(&anonymous, mount, role_id, secret_id.expose_secret());
        let outcome = tokio::time::timeout(self.deadline, login).await;
        self.logins_done.fetch_add(1, Ordering::SeqCst);
        let info = match outcome {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                let e = VaultError::from(e);
                return Err(LoginFailure {
                    kind: e.kind,
                    status: e.status,
                    timed_out: false,
                });
            }
            Err(_) => {
                return Err(LoginFailure {
                    kind: Kind::Unavailable,
                    status: None,
                    timed_out: true,
                });
            }
        };
        self.swap(&info.client_token);
        let ttl = Duration::from_secs(info.lease_duration);
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = Some(Lease {
            expires: Instant::now() + ttl,
            ttl,
        });
        Ok(())
    }

    /// Logs in with AppRole and installs the new token (the first login, from `new`).
    /// Token auth: nothing to do.
    pub(crate) async fn login(&self) -> Result<(), StorageError> {
        self.login_once().await.map_err(|f| self.login_error(f))
    }

    /// The error of a failed AppRole login.
    fn login_error(&self, f: LoginFailure) -> StorageError {
        let mount = self.approle_mount();
        if f.timed_out {
            return StorageError::timeout(PROVIDER, Operation::Check, None, self.deadline);
        }
        match f.kind {
            // Vault answers a wrong role or secret id with 400, an unknown mount with 403/404.
            Kind::BadRequest | Kind::Denied | Kind::NotFound | Kind::Unauthenticated => {
                StorageError::authentication_failed(
                    PROVIDER,
                    format!(
                        "AppRole login at auth/{mount}/login was refused: check auth.role_id, auth.secret_id (secret \
                         ids expire and may be single-use) and auth.mount"
                    ),
                )
                .with_source(VaultError::bare(f.kind, f.status).into_source())
            }
            _ => VaultError::bare(f.kind, f.status).into_storage(Context {
                operation: Operation::Check,
                id: None,
                path: &format!("auth/{mount}/login"),
                capability: "update",
            }),
        }
    }

    /// After an operation with `stale` met a rejected token, or the token nears its end:
    /// logs in again (AppRole), once for all concurrent callers. `Ok(true)` when a newer
    /// token is in place. Callers queued behind a login share its outcome; a failed login
    /// is held for a backoff, during which callers get it without a new attempt.
    pub(crate) async fn reauthenticate(&self, stale: &Arc<VaultClient>) -> Result<bool, StorageError> {
        if !self.can_login() {
            return Ok(false);
        }
        let seen = self.logins_done.load(Ordering::SeqCst);
        let mut state = self.login_state.lock().await;
        if !Arc::ptr_eq(stale, &self.client()) {
            return Ok(true);
        }
        if let Some((failure, until)) = state.failure
            && (self.logins_done.load(Ordering::SeqCst) != seen || Instant::now() < until)
        {
            return Err(self.login_error(failure));
        }
        let old = self.client();
        match self.login_once().await {
            Ok(()) => {
                state.failure = None;
                state.consecutive = 0;
                self.revoke(&old).await;
                self.counters.relogins.fetch_add(1, Ordering::Relaxed);
                tracing::info!(provider = PROVIDER, "logged in to Vault again with AppRole");
                Ok(true)
            }
            Err(failure) => {
                state.consecutive = state.consecutive.saturating_add(1);
                let backoff =
                    Duration::from_secs(1u64 << state.consecutive.min(7).saturating_sub(1)).min(MAX_LOGIN_BACKOFF);
                state.failure = Some((failure, Instant::now() + backoff));
                let e = self.login_error(failure);
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(provider = PROVIDER, error = %e, ?backoff, "logging in to Vault again with AppRole failed; holding the failure before the next attempt");
                Err(e)
            }
        }
    }

    /// Revokes the token a login replaced (`revoke-self`, in the `default` policy), so
    /// re-logins do not pile up live tokens. Best effort: a token that expired already or
    /// cannot revoke itself ends by its TTL.
    async fn revoke(&self, old: &VaultClient) {
        if old.settings.token.is_empty() {
            return;
        }
        match tokio::time::timeout(self.deadline, vaultrs::token::revoke_self(old)).await {
            Ok(Ok(())) => tracing::debug!(provider = PROVIDER, "revoked the replaced Vault token"),
            Ok(Err(e)) => {
                let e = VaultError::from(e);
                tracing::debug!(provider = PROVIDER, error = %e.kind_text(), "could not revoke the replaced Vault token; it ends with its TTL");
            }
            Err(_) => tracing::debug!(
                provider = PROVIDER,
                "revoking the replaced Vault token timed out; it ends with its TTL"
            ),
        }
    }

    /// What the token may do with `lookup-self`, probing once when not known yet.
    pub(crate) async fn lookup_state(&self) -> Lookup {
        match self.lookup.load(Ordering::SeqCst) {
            LOOKUP_ALLOWED => Lookup::Allowed,
            LOOKUP_DENIED => Lookup::Denied,
            _ => {
                let client = self.client();
                match vaultrs::token::lookup_self(&*client).await.map_err(VaultError::from) {
                    Ok(_) => {
                        self.lookup.store(LOOKUP_ALLOWED, Ordering::SeqCst);
                        Lookup::Allowed
                    }
                    Err(e) if matches!(e.kind, Kind::Denied | Kind::Unauthenticated) => {
                        if self.token_works(&client).await {
                            self.mark_lookup_denied();
                            Lookup::Denied
                        } else {
                            Lookup::Unknown
                        }
                    }
                    Err(_) => Lookup::Unknown,
                }
            }
        }
    }

    /// `lookup-self` is refused although the token works: say so once.
    fn mark_lookup_denied(&self) {
        if self.lookup.swap(LOOKUP_DENIED, Ordering::SeqCst) != LOOKUP_DENIED {
            let then = if self.can_login() {
                "it logs in again with AppRole before the TTL its login reported runs out"
            } else {
                "it cannot renew the token either"
            };
            tracing::warn!(
                provider = PROVIDER,
                "the Vault token works but may not call auth/token/lookup-self (it lacks the `default` policy): the \
                 provider cannot see its TTL, so a 403 is reported as PermissionDenied (an expired or revoked token \
                 looks the same), and {then}; attach the `default` policy, or a policy granting `read` on \
                 auth/token/lookup-self and `update` on auth/token/renew-self"
            );
        }
    }

    /// After `lookup-self` answered 403 for `client`: whether that is because the token
    /// may not call it (no `default` policy) while it works — known already (another task
    /// may have found out while this call was in flight), or proved now by
    /// [`token_works`](Self::token_works) — rather than because it is refused.
    async fn lookup_refused_but_token_works(&self, client: &VaultClient) -> bool {
        match self.lookup.load(Ordering::SeqCst) {
            LOOKUP_DENIED => true,
            LOOKUP_UNKNOWN if self.token_works(client).await => {
                self.mark_lookup_denied();
                true
            }
            _ => false,
        }
    }

    /// Whether the token of `client` works at all although `lookup-self` is refused: a
    /// `LIST` of the prefix (the capability the provider needs anyway) answers 200 or 404.
    async fn token_works(&self, client: &VaultClient) -> bool {
        let listed = vaultrs::kv2::list(client, &self.mount_path, &self.secret_prefix).await;
        match listed.map_err(VaultError::from) {
            Ok(_) => true,
            Err(e) => e.kind == Kind::NotFound && !e.route_missing,
        }
    }

    /// Whether Vault still accepts the token of `client`: `Ok(false)` when `lookup-self`
    /// answers 403. A token that may not call `lookup-self` counts as accepted while the
    /// TTL its login reported lasts (token auth: always, nothing can tell).
    pub(crate) async fn token_accepted(&self, client: &VaultClient) -> Result<bool, VaultError> {
        if self.lookup.load(Ordering::SeqCst) == LOOKUP_DENIED {
            return Ok(!self.lease_over());
        }
        match vaultrs::token::lookup_self(client)
            .await
            .map(drop)
            .map_err(VaultError::from)
        {
            Ok(()) => {
                self.lookup.store(LOOKUP_ALLOWED, Ordering::SeqCst);
                Ok(true)
            }
            Err(e) if matches!(e.kind, Kind::Denied | Kind::Unauthenticated) => {
                if self.lookup_refused_but_token_works(client).await {
                    return Ok(!self.lease_over());
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the AppRole token's lease, as its login reported it, has run out.
    fn lease_over(&self) -> bool {
        self.lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|l| Instant::now() >= l.expires)
    }

    /// `GET /v1/<path>` with the token of `client` and the namespace: the JSON answer, or
    /// the error with Vault's `errors` list (the body is never kept otherwise).
    pub(crate) async fn get_json(&self, client: &VaultClient, path: &str) -> Result<serde_json::Value, VaultError> {
        self.send_json(client, reqwest::Method::GET, path, None).await
    }

    /// `PATCH /v1/<path>` with `body` as a JSON merge patch (keys set to `null` are
    /// removed), with the token of `client` and the namespace.
    pub(crate) async fn patch_json(
        &self,
        client: &VaultClient,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(), VaultError> {
        self.send_json(client, reqwest::Method::PATCH, path, Some(body))
            .await
            .map(drop)
    }

    /// One request to `/v1/<path>`: the JSON answer, or the error with Vault's `errors`
    /// list (the body is never kept otherwise).
    async fn send_json(
        &self,
        client: &VaultClient,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, VaultError> {
        let url = format!("{}/v1/{path}", self.settings.address.as_str().trim_end_matches('/'));
        let mut request = self.http.request(method, url).header("X-Vault-Request", "true");
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/merge-patch+json")
                .body(body.to_string());
        }
        if !client.settings.token.is_empty() {
            request = request.header("X-Vault-Token", client.settings.token.as_str());
        }
        if let Some(ns) = &self.settings.namespace {
            request = request.header("X-Vault-Namespace", ns.as_str());
        }
        let response = request.send().await.map_err(VaultError::transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(VaultError::transport)?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let errors = body
            .get("errors")
            .and_then(|e| e.as_array())
            .map(|list| list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Err(VaultError::api(status, errors))
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> TokenStats {
        TokenStats {
            renewals: self.counters.renewals.load(Ordering::Relaxed),
            relogins: self.counters.relogins.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
        }
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(provider = PROVIDER, %error, "{what}");
    }

    /// Below this remaining TTL a token that cannot be extended any more is replaced
    /// (AppRole) or reported (token auth): the threshold, but never more than half the
    /// token's normal TTL (`creation_ttl`) unless that is under two checks — otherwise a
    /// token whose TTL is below the threshold would be replaced at every check.
    fn replace_below(&self, creation_ttl: Duration) -> Duration {
        self.threshold.min((creation_ttl / 2).max(self.interval * 2))
    }

    /// One check of the token: renew it below the threshold; log in again (AppRole) only
    /// when renewal can no longer extend it (its max TTL caps it, or it is not renewable)
    /// and it nears its end; report what cannot be fixed (token auth).
    pub(crate) async fn maintain(&self) {
        let client = self.client();
        if self.lookup.load(Ordering::SeqCst) == LOOKUP_DENIED {
            return self.maintain_blind(&client).await;
        }
        let lookup = tokio::time::timeout(self.deadline, vaultrs::token::lookup_self(&*client)).await;
        let (ttl, renewable, creation_ttl) = match lookup {
            Ok(Ok(info)) => {
                self.lookup.store(LOOKUP_ALLOWED, Ordering::SeqCst);
                (
                    Duration::from_secs(info.ttl),
                    info.renewable.unwrap_or(false),
                    Duration::from_secs(info.creation_ttl),
                )
            }
            Ok(Err(e)) => {
                let e = VaultError::from(e);
                if matches!(e.kind, Kind::Denied | Kind::Unauthenticated) {
                    if self.lookup_refused_but_token_works(&client).await {
                        return self.maintain_blind(&client).await;
                    }
                    if self.can_login() {
                        // Expired or revoked: log in again.
                        let _ = self.reauthenticate(&client).await;
                    } else {
                        self.failed("the Vault token was rejected", &TOKEN_REJECTED);
                    }
                } else {
                    self.failed("cannot look up the Vault token; will try again", &e.kind_text());
                }
                return;
            }
            Err(_) => {
                self.failed("looking up the Vault token timed out; will try again", &"timeout");
                return;
            }
        };
        // A TTL of 0 never expires (root tokens).
        if ttl.is_zero() || ttl >= self.threshold {
            return;
        }
        let replace_below = self.replace_below(creation_ttl);
        if renewable {
            let renew = tokio::time::timeout(self.deadline, vaultrs::token::renew_self(&*client, None)).await;
            match renew {
                Ok(Ok(info)) => {
                    self.counters.renewals.fetch_add(1, Ordering::Relaxed);
                    let lease = Duration::from_secs(info.lease_duration);
                    tracing::debug!(provider = PROVIDER, ?lease, "renewed the Vault token");
                    if lease >= creation_ttl || lease >= self.threshold || lease >= replace_below {
                        // Extended in full, or still far enough from its max TTL.
                        return;
                    }
                    // Capped by the token's max TTL: it will expire soon whatever we do.
                    if !self.can_login() {
                        self.failed(
                            "the Vault token nears its max TTL and cannot be extended; supply a new token",
                            &format_args!("{lease:?} left"),
                        );
                        return;
                    }
                }
                Ok(Err(e)) => {
                    let e = VaultError::from(e);
                    self.failed("renewing the Vault token failed", &e.kind_text());
                    if !self.can_login() || ttl >= replace_below {
                        return;
                    }
                }
                Err(_) => {
                    self.failed("renewing the Vault token timed out", &"timeout");
                    return;
                }
            }
        } else if ttl >= replace_below {
            return;
        } else if !self.can_login() {
            self.failed(
                "the Vault token is not renewable and expires soon; supply a new token",
                &format_args!("{ttl:?} left"),
            );
            return;
        }
        let _ = self.reauthenticate(&client).await;
    }

    /// A check without `lookup-self`: AppRole logs in again when the TTL its login
    /// reported nears its end; token auth has nothing to go by.
    async fn maintain_blind(&self, client: &Arc<VaultClient>) {
        let lease = *self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(lease) = lease else { return };
        if lease.ttl.is_zero() {
            return;
        }
        let left = lease.expires.saturating_duration_since(Instant::now());
        if left < self.replace_below(lease.ttl) {
            let _ = self.reauthenticate(client).await;
        }
    }
}

impl VaultError {
    pub(crate) fn kind_text(&self) -> String {
        match self.status {
            Some(s) => format!("{:?} (HTTP {s})", self.kind),
            None => format!("{:?}", self.kind),
        }
    }
}

/// A vaultrs client over the shared `http` client, carrying `token`.
fn make_client(http: &reqwest::Client, settings: &VaultClientSettings, token: &str) -> VaultClient {
    let mut settings = settings.clone();
    settings.token = token.to_string();
    VaultClient {
        http: rustify::clients::reqwest::Client::new(settings.address.as_str(), http.clone()),
        middle: EndpointMiddleware {
            token: token.to_string(),
            version: "v1".into(),
            wrap: None,
            namespace: settings.namespace.clone(),
        },
        settings,
    }
}

/// The background task: checks the token every `interval` until `stop` turns true.
pub(crate) async fn renewal_loop(session: Arc<Session>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = session.maintain() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With an https address the client refuses any plain-http URL before connecting
    /// (what a redirect or a mistaken join could produce).
    #[tokio::test]
    async fn an_https_address_makes_the_client_https_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let plain = format!("http://{}/v1/sys/health", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let https = http_client(&VaultConfig::with_token("https://vault.example.com:8200", "s.x")).unwrap();
        let err = https.get(&plain).send().await.unwrap_err();
        assert!(err.is_builder() || err.is_request(), "{err:?}");
        assert!(listener.accept().is_err(), "an https-only client connected over http");
        let http = http_client(&VaultConfig::with_token("http://127.0.0.1:8200", "s.x")).unwrap();
        let _ = http.get(&plain).timeout(Duration::from_millis(200)).send().await;
        assert!(listener.accept().is_ok(), "a plain-http address connects");
    }

    /// The client's own timeout is a backstop after both deadlines: at the deadline it
    /// raced the Timeout layer and a slow answer came back `Unavailable` instead of
    /// `Timeout` (the fault matrix's latency and black-hole rows).
    #[test]
    fn the_client_timeout_comes_after_both_deadlines() {
        use nebula_credential_core::Timeouts;
        for (read_ms, write_ms) in [(1_000, 1_000), (5_000, 10_000), (10_000, 5_000), (1, 1)] {
            let t = Timeouts { read_ms, write_ms };
            let longest = Duration::from_millis(read_ms.max(write_ms));
            assert!(client_timeout(&t) > longest, "{t:?}");
        }
    }

    /// A check whose `lookup-self` answer (403: the token lacks the `default` policy)
    /// arrives after another task found that out is no "token rejected" failure.
    #[tokio::test]
    async fn a_check_racing_the_discovery_that_lookup_self_is_refused_counts_no_failure() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (asked, asked_rx) = std::sync::mpsc::channel::<()>();
        let (answer, answer_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            asked.send(()).unwrap();
            answer_rx.recv().unwrap();
            let body = r#"{"errors":["permission denied"]}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
        let session = Arc::new(Session::new(&VaultConfig::with_token(address, "s.x")).unwrap());
        let check = tokio::spawn({
            let session = session.clone();
            async move { session.maintain().await }
        });
        tokio::task::spawn_blocking(move || asked_rx.recv().unwrap())
            .await
            .unwrap();
        // Another task found out meanwhile that the token may not call lookup-self.
        session.mark_lookup_denied();
        answer.send(()).unwrap();
        check.await.unwrap();
        assert_eq!(session.stats().failures, 0, "{:?}", session.stats());
    }

    #[test]
    fn tokens_below_the_threshold_are_replaced_at_half_their_ttl_not_at_every_check() {
        let session = Session::new(&VaultConfig {
            renewal_check_interval_secs: 300,
            token_renewal_threshold_secs: 3600,
            ..VaultConfig::with_token("http://127.0.0.1:8200", "s.x")
        })
        .unwrap();
        let secs = Duration::from_secs;
        assert_eq!(session.replace_below(secs(20 * 60)), secs(10 * 60));
        assert_eq!(session.replace_below(secs(4 * 3600)), secs(3600));
        assert_eq!(session.replace_below(secs(60)), secs(600), "at least two checks");
    }
}
