//! The Vault session: one HTTP client (TLS set up from our config only), the current
//! token, AppRole (re-)login, and the background task that renews the token.
//!
//! The current [`VaultClient`] sits behind an `Arc` that a login swaps atomically:
//! operations in flight keep the client they started with, later ones get the new token.
//! Tokens never appear in `Debug` output, errors or logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use nebula_credential_core::StorageError;
use nebula_credential_core::secrecy::ExposeSecret;
use tokio::sync::{Mutex, watch};
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettings};
use vaultrs::error::ClientError;

use crate::PROVIDER;
use crate::config::{VaultAuth, VaultConfig, is_inline_pem};
use crate::errors::{Kind, TOKEN_REJECTED, VaultError};

/// Counters of the token lifecycle, as returned by
/// [`HashiCorpVaultProvider::token_stats`](crate::HashiCorpVaultProvider::token_stats).
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

/// The client and token shared by the provider and its renewal task.
pub(crate) struct Session {
    http: reqwest::Client,
    settings: VaultClientSettings,
    auth: VaultAuth,
    current: RwLock<Arc<VaultClient>>,
    login_lock: Mutex<()>,
    counters: Counters,
    threshold: Duration,
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

/// The HTTP client: TLS verification always on, the system roots plus `ca_cert`, and
/// nothing read from `VAULT_*` variables (vaultrs's own builder reads `VAULT_SKIP_VERIFY`
/// and `VAULT_CACERT`; this client is built without it).
fn http_client(config: &VaultConfig) -> Result<reqwest::Client, StorageError> {
    let overall = Duration::from_millis(config.timeouts.read_ms.max(config.timeouts.write_ms));
    let mut builder = reqwest::ClientBuilder::new()
        .tls_backend_rustls()
        .timeout(overall)
        .connect_timeout(overall.min(Duration::from_secs(10)));
    if config.address.starts_with("http://") {
        // Plain http needs no roots (and skips loading the platform verifier).
        builder = builder.tls_certs_only(Vec::new());
    } else if let Some(ca) = &config.ca_cert {
        let pem = if is_inline_pem(ca) {
            ca.as_bytes().to_vec()
        } else {
            std::fs::read(ca).map_err(|e| config_error("ca_cert", format!("cannot read {ca:?} ({e})")))?
        };
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| config_error("ca_cert", "is not a PEM certificate (bundle)".into()))?;
        if certs.is_empty() {
            return Err(config_error("ca_cert", "holds no PEM certificate".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| {
        StorageError::backend(
            PROVIDER,
            nebula_credential_core::Operation::Check,
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
        let address = url::Url::parse(&config.address)
            .map_err(|e| config_error("address", format!("is not a valid URL ({e})")))?;
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
            current: RwLock::new(first),
            login_lock: Mutex::new(()),
            counters: Counters::default(),
            threshold: config.renewal_threshold(),
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

    /// Logs in with AppRole and installs the new token. Token auth: nothing to do.
    pub(crate) async fn login(&self) -> Result<(), StorageError> {
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
        let info = match tokio::time::timeout(self.deadline, login).await {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => return Err(login_error(e, mount)),
            Err(_) => {
                return Err(StorageError::timeout(
                    PROVIDER,
                    nebula_credential_core::Operation::Check,
                    None,
                    self.deadline,
                ));
            }
        };
        self.swap(&info.client_token);
        Ok(())
    }

    /// After an operation with `stale` met a rejected token: logs in again (AppRole),
    /// once for all concurrent callers. `Ok(true)` when a newer token is in place.
    pub(crate) async fn reauthenticate(&self, stale: &Arc<VaultClient>) -> Result<bool, StorageError> {
        if !self.can_login() {
            return Ok(false);
        }
        let _guard = self.login_lock.lock().await;
        if !Arc::ptr_eq(stale, &self.client()) {
            return Ok(true);
        }
        match self.login().await {
            Ok(()) => {
                self.counters.relogins.fetch_add(1, Ordering::Relaxed);
                tracing::info!(provider = PROVIDER, "logged in to Vault again with AppRole");
                Ok(true)
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(provider = PROVIDER, error = %e, "logging in to Vault again with AppRole failed");
                Err(e)
            }
        }
    }

    /// Whether Vault still accepts the token of `client` (`lookup-self`): `Ok(false)` when
    /// it answers 403.
    pub(crate) async fn token_accepted(&self, client: &VaultClient) -> Result<bool, VaultError> {
        match vaultrs::token::lookup_self(client)
            .await
            .map(drop)
            .map_err(VaultError::from)
        {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.kind, Kind::Denied | Kind::Unauthenticated) => Ok(false),
            Err(e) => Err(e),
        }
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

    /// One check of the token: renew it below the threshold, log in again when it cannot
    /// be renewed (AppRole), report what cannot be fixed (token auth).
    pub(crate) async fn maintain(&self) {
        let client = self.client();
        let lookup = tokio::time::timeout(self.deadline, vaultrs::token::lookup_self(&*client)).await;
        let (ttl, renewable) = match lookup {
            Ok(Ok(info)) => (Duration::from_secs(info.ttl), info.renewable.unwrap_or(false)),
            Ok(Err(e)) => {
                let e = VaultError::from(e);
                if matches!(e.kind, Kind::Denied | Kind::Unauthenticated) {
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
        if renewable {
            let renew = tokio::time::timeout(self.deadline, vaultrs::token::renew_self(&*client, None)).await;
            match renew {
                Ok(Ok(info)) => {
                    self.counters.renewals.fetch_add(1, Ordering::Relaxed);
                    let lease = Duration::from_secs(info.lease_duration);
                    tracing::debug!(provider = PROVIDER, ?lease, "renewed the Vault token");
                    if lease >= self.threshold {
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
                    if !self.can_login() {
                        return;
                    }
                }
                Err(_) => {
                    self.failed("renewing the Vault token timed out", &"timeout");
                    return;
                }
            }
        } else if !self.can_login() {
            self.failed(
                "the Vault token is not renewable and expires soon; supply a new token",
                &format_args!("{ttl:?} left"),
            );
            return;
        }
        let _ = self.reauthenticate(&client).await;
    }
}

impl VaultError {
    fn kind_text(&self) -> String {
        match self.status {
            Some(s) => format!("{:?} (HTTP {s})", self.kind),
            None => format!("{:?}", self.kind),
        }
    }
}

/// The error of a failed AppRole login.
fn login_error(e: ClientError, mount: &str) -> StorageError {
    let e = VaultError::from(e);
    match e.kind {
        // Vault answers a wrong role or secret id with 400, an unknown mount with 403/404.
        Kind::BadRequest | Kind::Denied | Kind::NotFound | Kind::Unauthenticated => {
            StorageError::authentication_failed(
                PROVIDER,
                format!(
                    "AppRole login at auth/{mount}/login was refused: check auth.role_id, auth.secret_id (secret ids \
                 expire and may be single-use) and auth.mount"
                ),
            )
            .with_source(e.into_source())
        }
        _ => e.into_storage(crate::errors::Context {
            operation: nebula_credential_core::Operation::Check,
            id: None,
            path: "auth/approle/login",
            capability: "update",
        }),
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
