//! The HTTPS server: TLS, vault by host name, authentication, faults, hooks, logging, dispatch.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::api::{self, Call, Op, Reply};
use crate::auth::{self, Access, Tokens};
use crate::error::ApiError;
use crate::faults::{FaultRule, Faults, LoggedRequest, RequestLog, Target};
use crate::hooks::{Hook, Hooks};
use crate::rules::{self, is_vault_name};
use crate::store::{NewVersion, Now, SoftDelete, Vault};
use crate::tls::Tls;

/// The body of every answer: whole, or cut short by a `reset_mid_body` fault.
type Body = BoxBody<Bytes, std::io::Error>;

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
                purge_protection: false,
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
    hooks: Mutex<Hooks>,
    log: Mutex<RequestLog>,
}

impl Shared {
    /// The vault named `name` (lowercase), created with the default settings on first use.
    fn vault<'a>(&self, vaults: &'a mut HashMap<String, Vault>, name: &str) -> &'a mut Vault {
        vaults
            .entry(name.to_owned())
            .or_insert_with(|| Vault::named(name, self.config.soft_delete))
    }
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
            hooks: Mutex::new(Hooks::default()),
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
    /// Cut the body short and drop the connection (`reset_mid_body`).
    cut: bool,
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Self {
        Self {
            status: error.status,
            body: Some(error.body()),
            error: Some(error),
            cut: false,
        }
    }
}

/// A body that sends its first part, pauses so the part is flushed, then fails: hyper drops
/// the connection, and the client has the status, the headers and part of the body.
struct CutBody {
    part: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(part) = self.part.take() {
            return Poll::Ready(Some(Ok(Frame::data(part))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "emulator fault: connection reset mid-body",
            )))),
        }
    }
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            error: None,
            cut: false,
        }
    }

    fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
            error: None,
            cut: false,
        }
    }

    fn into_response(self, shared: &Shared) -> Response<Body> {
        let bytes = self.body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let full_length = bytes.len();
        // An answer without a body (purge's 204) has nothing to cut: it goes out whole.
        let cut = self.cut && full_length > 0;
        let body = if cut {
            CutBody {
                part: Some(bytes.slice(..full_length / 2)),
                pause: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
            }
            .boxed()
        } else {
            Full::new(bytes).map_err(|never| match never {}).boxed()
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if cut {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(full_length));
        }
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

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
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
        let answer = control(&shared, request, &method, &path, &vault).await;
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
    let method = request.method().as_str().to_owned();
    let target = Target {
        method: &method,
        path,
        vault,
        is_list: op.is_list(),
    };
    let injection = lock(&shared.faults).next(target);
    if let Some(ms) = injection.stall_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(injected) = injection.status {
        let mut error = if injection.challenge {
            ApiError::challenge()
        } else {
            ApiError::injected(injected.status, injected.retry_after_s, None, None, None)
        };
        let custom = ApiError::injected(
            injected.status,
            injected.retry_after_s,
            injected.code.as_deref(),
            injected.inner_code.as_deref(),
            injected.message.as_deref(),
        );
        if injected.code.is_some() {
            error.code = custom.code;
        }
        if injected.inner_code.is_some() {
            error.inner = custom.inner;
        }
        if injected.message.is_some() {
            error.message = custom.message;
        }
        return error.into();
    }
    let query: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if let Err(error) = api::check_api_version(&query) {
        return error.into();
    }
    let action = op.action();
    if !action.allowed(access) {
        return ApiError::forbidden_by_rbac(action.name(), vault, access.caller()).into();
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
    let due = match op.name() {
        Some(name) => lock(&shared.hooks).take(vault, name, &method),
        None => Vec::new(),
    };
    let mut vaults = lock(&shared.vaults);
    let store = shared.vault(&mut vaults, vault);
    for hook in due {
        let outcome = hook.run(store, api::new_version_id(), Now::current());
        lock(&shared.hooks).record(hook, &outcome);
    }
    let mut answer = match api::execute(&op, store, &call) {
        Ok(Reply::Json(body)) => Answer::json(200, body),
        Ok(Reply::NoContent) => Answer::no_content(),
        Err(error) => error.into(),
    };
    answer.cut = injection.reset_mid_body;
    answer
}

/// Per-vault settings, as `POST /__emulator/vaults/{vault}` takes them (every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultSettingsBody {
    purge_protection: Option<bool>,
    recoverable_days: Option<u32>,
    delete_delay_ms: Option<u64>,
    recover_delay_ms: Option<u64>,
}

/// A vault's settings, as the vault endpoints answer them.
#[derive(Debug, Serialize)]
struct VaultSettings<'a> {
    vault: &'a str,
    purge_protection: bool,
    recoverable_days: u32,
    recovery_level: &'static str,
    delete_delay_ms: u64,
    recover_delay_ms: u64,
}

/// Longest delete/recover delay a vault may be given (10 minutes).
const MAX_DELAY_MS: u64 = 600_000;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn settings_json(name: &str, sd: SoftDelete) -> Value {
    let settings = VaultSettings {
        vault: name,
        purge_protection: sd.purge_protection,
        recoverable_days: sd.recoverable_days,
        recovery_level: sd.recovery_level(),
        delete_delay_ms: millis(sd.delete_delay),
        recover_delay_ms: millis(sd.recover_delay),
    };
    serde_json::to_value(settings).unwrap_or(Value::Null)
}

/// Applies posted settings to `sd`, refusing what the service refuses.
fn apply_settings(sd: &mut SoftDelete, body: VaultSettingsBody) -> Result<(), String> {
    if body.purge_protection == Some(false) && sd.purge_protection {
        return Err("purge protection cannot be turned off once on (as in the service); use another vault".into());
    }
    if let Some(days) = body.recoverable_days {
        if !(7..=90).contains(&days) {
            return Err(format!("recoverable_days {days} is not 7..=90"));
        }
        sd.recoverable_days = days;
    }
    for (value, slot, field) in [
        (body.delete_delay_ms, &mut sd.delete_delay, "delete_delay_ms"),
        (body.recover_delay_ms, &mut sd.recover_delay, "recover_delay_ms"),
    ] {
        if let Some(ms) = value {
            if ms > MAX_DELAY_MS {
                return Err(format!("{field} {ms} is over {MAX_DELAY_MS}"));
            }
            *slot = Duration::from_millis(ms);
        }
    }
    if let Some(on) = body.purge_protection {
        sd.purge_protection = on;
    }
    Ok(())
}

/// A certificate-backed secret, as `POST /__emulator/managed/{name}` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManagedBody {
    vault: Option<String>,
    value: String,
    content_type: Option<String>,
}

fn parse_control<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_parameter(format!("Invalid {what}: {e}")))
}

/// `/__emulator/…` control endpoints (full token only): `faults`, `requests`, `hooks`
/// (GET, POST, DELETE), `vaults/{vault}` (GET, POST) and `managed/{name}` (POST).
async fn control(shared: &Shared, request: Request<Incoming>, method: &Method, path: &str, host_vault: &str) -> Answer {
    match shared.config.tokens.check(authorization(&request)) {
        Ok(Access::Full) => {}
        Ok(access) => return ApiError::forbidden_by_rbac("emulator control", "emulator", access.caller()).into(),
        Err(error) => return error.into(),
    }
    let endpoint = path.trim_start_matches(CONTROL_PREFIX).trim_end_matches('/').to_owned();
    let body = if *method == Method::POST {
        match read_body(request).await {
            Ok(body) => body,
            Err(error) => return error.into(),
        }
    } else {
        Bytes::new()
    };
    let (collection, item) = match endpoint.split_once('/') {
        Some((collection, item)) => (collection, Some(item)),
        None => (endpoint.as_str(), None),
    };
    match (collection, item, method) {
        ("faults", None, &Method::GET) => Answer::json(200, json!({ "faults": lock(&shared.faults).pending() })),
        ("faults", None, &Method::DELETE) => {
            lock(&shared.faults).clear();
            Answer::no_content()
        }
        ("faults", None, &Method::POST) => {
            let rule: FaultRule = match parse_control(&body, "fault rule") {
                Ok(rule) => rule,
                Err(error) => return error.into(),
            };
            if let Err(message) = rule.validate() {
                return ApiError::bad_parameter(message).into();
            }
            let mut faults = lock(&shared.faults);
            faults.push(rule);
            Answer::json(200, json!({ "faults": faults.pending() }))
        }
        ("hooks", None, &Method::GET) => {
            let hooks = lock(&shared.hooks);
            Answer::json(200, json!({ "hooks": hooks.pending(), "fired": hooks.fired() }))
        }
        ("hooks", None, &Method::DELETE) => {
            lock(&shared.hooks).clear();
            Answer::no_content()
        }
        ("hooks", None, &Method::POST) => {
            let mut hook: Hook = match parse_control(&body, "hook") {
                Ok(hook) => hook,
                Err(error) => return error.into(),
            };
            if let Err(message) = hook.validate() {
                return ApiError::bad_parameter(message).into();
            }
            let vault = hook.vault.take().unwrap_or_else(|| host_vault.to_owned());
            hook.vault = Some(vault.to_ascii_lowercase());
            let mut hooks = lock(&shared.hooks);
            hooks.push(hook);
            Answer::json(200, json!({ "hooks": hooks.pending() }))
        }
        ("requests", None, &Method::GET) => Answer::json(200, json!({ "requests": lock(&shared.log).entries() })),
        ("requests", None, &Method::DELETE) => {
            lock(&shared.log).clear();
            Answer::no_content()
        }
        ("vaults", Some(name), &Method::GET | &Method::POST) => {
            if !is_vault_name(name) {
                return ApiError::bad_parameter(format!(
                    "invalid vault name {name:?}: 3-24 characters of [0-9a-zA-Z-]"
                ))
                .into();
            }
            let name = name.to_ascii_lowercase();
            let mut vaults = lock(&shared.vaults);
            let vault = shared.vault(&mut vaults, &name);
            let mut sd = vault.soft_delete();
            if *method == Method::POST {
                let settings: VaultSettingsBody = match parse_control(&body, "vault settings") {
                    Ok(settings) => settings,
                    Err(error) => return error.into(),
                };
                if let Err(message) = apply_settings(&mut sd, settings) {
                    return ApiError::bad_parameter(message).into();
                }
                vault.set_soft_delete(sd);
            }
            Answer::json(200, settings_json(&name, sd))
        }
        ("managed", Some(name), &Method::POST) => {
            let managed: ManagedBody = match parse_control(&body, "managed secret") {
                Ok(managed) => managed,
                Err(error) => return error.into(),
            };
            let checks = rules::check_name(name)
                .and_then(|()| rules::check_value(&managed.value))
                .and_then(|()| {
                    managed
                        .content_type
                        .as_deref()
                        .map_or(Ok(()), rules::check_content_type)
                });
            if let Err(error) = checks {
                return error.into();
            }
            let vault_name = managed.vault.as_deref().unwrap_or(host_vault).to_ascii_lowercase();
            if !is_vault_name(&vault_name) {
                return ApiError::bad_parameter(format!("invalid vault name {vault_name:?}")).into();
            }
            let new = NewVersion {
                value: managed.value,
                content_type: Some(
                    managed
                        .content_type
                        .unwrap_or_else(|| "application/x-pkcs12".to_owned()),
                ),
                ..NewVersion::default()
            };
            let port = shared.port;
            let base = format!("https://{vault_name}.localhost:{port}");
            let mut vaults = lock(&shared.vaults);
            let vault = shared.vault(&mut vaults, &vault_name);
            let sd = vault.soft_delete();
            match vault.set_managed(name, new, api::new_version_id(), Now::current()) {
                Ok(view) => Answer::json(200, api::bundle(&base, &view, sd, true)),
                Err(error) => error.into(),
            }
        }
        ("faults" | "requests" | "hooks", None, _) | ("vaults" | "managed", Some(_), _) => {
            ApiError::method_not_allowed().into()
        }
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
