//! The HTTPS server: TLS, vault by host name, authentication, faults, logging, dispatch.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::api::{self, Call, Op, Reply};
use crate::auth::{self, Access, Tokens};
use crate::error::ApiError;
use crate::faults::{FaultRule, Faults, LoggedRequest, RequestLog};
use crate::rules::is_vault_name;
use crate::store::{Now, SoftDelete, Vault};
use crate::tls::Tls;

/// Largest request body read.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Prefix of the emulator's own control endpoints, a path the SDKs never use.
pub const CONTROL_PREFIX: &str = "/__emulator/";

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; must be a loopback address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Tenant named in the authentication challenge.
    pub tenant: String,
    /// The accepted and rejected tokens.
    pub tokens: Tokens,
    /// Vault names; the first is the default (for `localhost` / `127.0.0.1` hosts). Other
    /// `NAME.localhost` vaults are created on first use.
    pub vaults: Vec<String>,
    /// Soft-delete timing and retention.
    pub soft_delete: SoftDelete,
}

impl Config {
    /// A configuration for tests: `127.0.0.1:0`, vault `nebula`, random tokens, the given delays.
    pub fn for_tests(delete_delay: Duration, recover_delay: Duration) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant: "00000000-0000-0000-0000-000000000000".into(),
            tokens: Tokens::random(),
            vaults: vec!["nebula".into()],
            soft_delete: SoftDelete {
                delete_delay,
                recover_delay,
                recoverable_days: 90,
            },
        }
    }

    /// Checks the configuration before anything is bound.
    pub fn validate(&self) -> Result<()> {
        if !self.listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {}: the emulator listens on loopback only",
                self.listen
            );
        }
        self.tokens.validate().map_err(anyhow::Error::msg)?;
        if self.vaults.is_empty() {
            bail!("at least one vault name is needed");
        }
        for vault in &self.vaults {
            if !is_vault_name(vault) {
                bail!("invalid vault name {vault:?}: 3-24 characters of [0-9a-zA-Z-]");
            }
        }
        if !(7..=90).contains(&self.soft_delete.recoverable_days) {
            bail!("recoverable days must be 7..=90");
        }
        if self.tenant.is_empty() || self.tenant.contains(['"', ' ', ',']) {
            bail!("invalid tenant {:?}", self.tenant);
        }
        Ok(())
    }
}

struct Shared {
    config: Config,
    port: u16,
    vaults: Mutex<HashMap<String, Vault>>,
    faults: Mutex<Faults>,
    log: Mutex<RequestLog>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    ca_pem: String,
    default_vault: String,
    task: JoinHandle<()>,
}

impl Emulator {
    /// Generates the certificates, binds and starts serving.
    pub async fn start(config: Config) -> Result<Self> {
        config.validate()?;
        let tls = Tls::generate(&config.vaults)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let default_vault = config.vaults[0].to_ascii_lowercase();
        let shared = Arc::new(Shared {
            config,
            port: addr.port(),
            vaults: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(RequestLog::default()),
        });
        let acceptor = TlsAcceptor::from(tls.server_config.clone());
        let task = tokio::spawn(accept_loop(listener, acceptor, shared));
        Ok(Self {
            addr,
            ca_pem: tls.ca_pem,
            default_vault,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The default vault's name.
    pub fn default_vault(&self) -> &str {
        &self.default_vault
    }

    /// `https://VAULT.localhost:PORT`.
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.localhost:{}", self.addr.port())
    }

    /// Stops serving and closes every connection.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        connections.spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                return;
            };
            let service = service_fn(move |request| handle(shared.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// What the host header says: the vault and the base URL ids are built on.
fn vault_of_host(host: &str, default_vault: &str) -> Option<String> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.to_ascii_lowercase();
    if name == "localhost" || name == "127.0.0.1" {
        return Some(default_vault.to_owned());
    }
    let vault = name.strip_suffix(".localhost")?;
    is_vault_name(vault).then(|| vault.to_owned())
}

struct Answer {
    status: u16,
    body: Option<Value>,
    error: Option<ApiError>,
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Self {
        Self {
            status: error.status,
            body: Some(error.body()),
            error: Some(error),
        }
    }
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            error: None,
        }
    }

    fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
            error: None,
        }
    }

    fn into_response(self, shared: &Shared) -> Response<Full<Bytes>> {
        let body = self.body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if self.status != 204 {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        headers.insert(
            "x-ms-keyvault-service-version",
            HeaderValue::from_static("keyvault-emulator"),
        );
        if let Some(error) = &self.error {
            if error.status == 401
                && let Ok(value) = HeaderValue::from_str(&auth::challenge(&shared.config.tenant, shared.port))
            {
                headers.insert(WWW_AUTHENTICATE, value);
            }
            if let Some(seconds) = error.retry_after_s {
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
        }
        response
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(vault) = vault_of_host(&host, &shared.config.vaults[0].to_ascii_lowercase()) else {
        let error = ApiError::bad_parameter(format!("Host {host:?} is not NAME.localhost[:PORT]."));
        return Ok(Answer::from(error).into_response(&shared));
    };
    if path == "/__emulator/health" {
        return Ok(Answer::json(200, json!({ "status": "ok" })).into_response(&shared));
    }
    if path.starts_with(CONTROL_PREFIX) {
        let answer = control(&shared, request, &method, &path).await;
        return Ok(answer.into_response(&shared));
    }
    let answer = serve(&shared, request, &vault, &host, &path, &query).await;
    lock(&shared.log).push(LoggedRequest {
        method: method.to_string(),
        vault,
        path,
        query,
        status: answer.status,
    });
    Ok(answer.into_response(&shared))
}

fn authorization(request: &Request<Incoming>) -> Option<&str> {
    request.headers().get(AUTHORIZATION).and_then(|h| h.to_str().ok())
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|_| {
            ApiError::bad_parameter(format!(
                "The request body is unreadable or over {MAX_BODY_BYTES} bytes."
            ))
        })
}

async fn serve(
    shared: &Shared,
    request: Request<Incoming>,
    vault: &str,
    host: &str,
    path: &str,
    query: &str,
) -> Answer {
    // Authenticate first, as the service does: SDKs send their first request without a token.
    let access = match shared.config.tokens.check(authorization(&request)) {
        Ok(access) => access,
        Err(error) => return error.into(),
    };
    let op = match Op::parse(request.method(), path) {
        Ok(op) => op,
        Err(error) => return error.into(),
    };
    let injection = lock(&shared.faults).next(op.is_list(), vault);
    if let Some(ms) = injection.stall_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match injection.status {
        Some((429, retry_after)) => return ApiError::throttled(retry_after.unwrap_or(1)).into(),
        Some((status, retry_after)) => return ApiError::injected(status, retry_after).into(),
        None => {}
    }
    let query: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if query.get("api-version").is_none_or(String::is_empty) {
        return ApiError::bad_parameter("The api-version query parameter is missing.").into();
    }
    let action = op.action();
    if !action.allowed(access) {
        return ApiError::forbidden_by_rbac(action.name(), vault).into();
    }
    let body = if op.has_body() {
        match read_body(request).await {
            Ok(body) => body,
            Err(error) => return error.into(),
        }
    } else {
        Bytes::new()
    };
    let base = format!("https://{host}");
    let call = Call {
        base: &base,
        path,
        query: &query,
        body: &body,
        empty_page: injection.empty_page,
        now: Now::current(),
    };
    let mut vaults = lock(&shared.vaults);
    let vault = vaults
        .entry(vault.to_owned())
        .or_insert_with(|| Vault::new(shared.config.soft_delete));
    match api::execute(&op, vault, &call) {
        Ok(Reply::Json(body)) => Answer::json(200, body),
        Ok(Reply::NoContent) => Answer::no_content(),
        Err(error) => error.into(),
    }
}

/// `/__emulator/faults` (GET, POST, DELETE) and `/__emulator/requests` (GET, DELETE); full token only.
async fn control(shared: &Shared, request: Request<Incoming>, method: &Method, path: &str) -> Answer {
    match shared.config.tokens.check(authorization(&request)) {
        Ok(Access::Full) => {}
        Ok(Access::ReadOnly) => return ApiError::forbidden_by_rbac("emulator control", "emulator").into(),
        Err(error) => return error.into(),
    }
    let endpoint = path.trim_start_matches(CONTROL_PREFIX).trim_end_matches('/');
    match (endpoint, method) {
        ("faults", &Method::GET) => Answer::json(200, json!({ "faults": lock(&shared.faults).pending() })),
        ("faults", &Method::DELETE) => {
            lock(&shared.faults).clear();
            Answer::no_content()
        }
        ("faults", &Method::POST) => {
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(error) => return error.into(),
            };
            let rule: FaultRule = match serde_json::from_slice(&body) {
                Ok(rule) => rule,
                Err(e) => return ApiError::bad_parameter(format!("Invalid fault rule: {e}")).into(),
            };
            if let Err(message) = rule.validate() {
                return ApiError::bad_parameter(message).into();
            }
            let mut faults = lock(&shared.faults);
            faults.push(rule);
            Answer::json(200, json!({ "faults": faults.pending() }))
        }
        ("requests", &Method::GET) => Answer::json(200, json!({ "requests": lock(&shared.log).entries() })),
        ("requests", &Method::DELETE) => {
            lock(&shared.log).clear();
            Answer::no_content()
        }
        ("faults" | "requests", _) => ApiError::method_not_allowed().into(),
        _ => ApiError::unknown_path(path).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_pick_the_vault() {
        assert_eq!(vault_of_host("nebula.localhost:8443", "d").as_deref(), Some("nebula"));
        assert_eq!(
            vault_of_host("Other-Vault.LOCALHOST", "d").as_deref(),
            Some("other-vault")
        );
        assert_eq!(vault_of_host("localhost:1", "d").as_deref(), Some("d"));
        assert_eq!(vault_of_host("127.0.0.1:1", "d").as_deref(), Some("d"));
        assert_eq!(vault_of_host("example.com", "d"), None);
        assert_eq!(vault_of_host("a.b.localhost", "d"), None);
        assert_eq!(vault_of_host("", "d"), None);
    }

    #[test]
    fn only_loopback_is_accepted() {
        let mut config = Config::for_tests(Duration::ZERO, Duration::ZERO);
        assert!(config.validate().is_ok());
        config.listen = "0.0.0.0:0".parse().unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("loopback"));
        config.listen = "[::1]:0".parse().unwrap();
        assert!(config.validate().is_ok());
    }
}
