//! The provider's HTTP edges against small local HTTPS servers standing in for Key Vault and
//! Entra ID (hermetic): what the Key Vault emulator cannot show — Entra ID failing or
//! unreachable, a challenge naming another resource, a redirect.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use nebula_credential_azure::{AzureCredential, AzureKeyVaultConfig, AzureKeyVaultProvider};
use nebula_credential_core::{CredentialId, ErrorKind, StorageError, StorageProvider};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const GUID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const HOSTS: [&str; 4] = ["vault.localhost", "entra.localhost", "localhost", "127.0.0.1"];

/// A private CA (PEM) and a TLS configuration serving a certificate it signed for [`HOSTS`].
fn tls() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(HOSTS.map(String::from).to_vec())
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), CertificateDer::from(ca_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    (ca_cert.pem(), Arc::new(config))
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorized: bool,
}

/// A reply: status, extra headers, body.
type Reply = (u16, Vec<(&'static str, String)>, String);

/// An HTTPS server on 127.0.0.1 answering every request with `reply`, recording them.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Server {
    async fn start(tls: Arc<rustls::ServerConfig>, reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let reply = Arc::new(reply);
        let log = seen.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (acceptor, reply, log) = (acceptor.clone(), reply.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = stream.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.lines();
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let (method, path) = (first.next().unwrap_or_default(), first.next().unwrap_or_default());
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)))
                            .map(|(_, v)| v.trim().to_string())
                    };
                    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    while buf.len() < head_end + length {
                        let Ok(n) = stream.read(&mut chunk).await else { return };
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let request = Seen {
                        method: method.to_string(),
                        path: path.to_string(),
                        authorized: header("authorization").is_some(),
                    };
                    log.lock().unwrap().push(request.clone());
                    let (status, headers, body) = reply(&request);
                    let mut out = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&body);
                    let _ = stream.write_all(out.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server {
            addr,
            seen,
            connections,
        }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The 401 challenge Key Vault answers an unauthenticated request with, for `resource`.
fn challenge(resource: &str) -> Reply {
    (
        401,
        vec![(
            "www-authenticate",
            format!(r#"Bearer authorization="https://login.microsoftonline.com/{GUID}", resource="{resource}""#),
        )],
        r#"{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}"#.into(),
    )
}

#[derive(Debug)]
struct StaticToken;

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "static-token",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

fn config(vault: &Server, ca: &str) -> AzureKeyVaultConfig {
    AzureKeyVaultConfig {
        allow_custom_host: true,
        ca_cert: Some(ca.to_string()),
        credential: AzureCredential::custom(Arc::new(StaticToken)),
        ..AzureKeyVaultConfig::new(vault.url("vault.localhost"))
    }
}

fn id() -> CredentialId {
    "api_key".parse().unwrap()
}

/// A service principal whose Entra ID is `authority` (trusting `ca`, SDK retries off).
fn service_principal(authority: String, ca: &str, port: u16) -> Arc<dyn TokenCredential> {
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(ca.as_bytes()).unwrap())
        .resolve("entra.localhost", SocketAddr::from(([127, 0, 0, 1], port)))
        .no_proxy()
        .build()
        .unwrap();
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = authority;
    ClientSecretCredential::new(
        GUID,
        GUID.into(),
        Secret::new("hunter2-client-secret"),
        Some(ClientSecretCredentialOptions {
            client_options: ClientOptions {
                cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
                transport: Some(Transport::new(Arc::new(http))),
                retry: RetryOptions::none(),
                ..ClientOptions::default()
            },
        }),
    )
    .unwrap()
}

/// Entra ID unreachable, failing (5xx) or throttling (429) is `Unavailable` / `Throttled`,
/// retryable, found in the source chain of azure_identity's `Credential` error; a refused
/// client secret stays `AuthenticationFailed`. No client secret in any error.
#[tokio::test]
async fn entra_id_unreachable_or_failing_is_retryable() {
    let (ca, tls) = tls();
    let vault = Server::start(tls.clone(), |_| challenge("https://localhost")).await;
    let entra_reply = Arc::new(Mutex::new((503u16, Vec::new(), String::new())));
    let reply = entra_reply.clone();
    let entra = Server::start(tls, move |_| reply.lock().unwrap().clone()).await;
    let port = entra.addr.port();
    let cases: Vec<(Reply, Option<String>, ErrorKind)> =
        vec![
        // (A body that is not JSON loses the status inside azure_identity, which then reports
        // a parse error: such answers stay `AuthenticationFailed`.)
        (
            (503, vec![], r#"{"error":"temporarily_unavailable"}"#.into()),
            None,
            ErrorKind::Unavailable,
        ),
        ((500, vec![], "{}".into()), None, ErrorKind::Unavailable),
        ((429, vec![("retry-after", "2".into())], "{}".into()), None, ErrorKind::Throttled),
        (
            (
                400,
                vec![],
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#
                    .into(),
            ),
            None,
            ErrorKind::AuthenticationFailed,
        ),
        // Nobody listens on port 1: connection refused.
        ((200, vec![], String::new()), Some("https://entra.localhost:1".into()), ErrorKind::Unavailable),
    ];
    for (reply, authority, kind) in cases {
        let status = reply.0;
        *entra_reply.lock().unwrap() = reply;
        let authority = authority.unwrap_or_else(|| entra.url("entra.localhost"));
        let credential = service_principal(authority, &ca, port);
        let p = AzureKeyVaultProvider::with_credential(config(&vault, &ca), credential).unwrap();
        let e = p.retrieve(&id()).await.unwrap_err();
        assert_eq!(e.kind(), kind, "Entra {status}: {e}");
        assert_eq!(
            e.is_retryable(),
            kind != ErrorKind::AuthenticationFailed,
            "{status}: {e}"
        );
        if kind == ErrorKind::Throttled {
            assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(2)), "{e:?}");
        }
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    assert!(
        vault.seen().iter().all(|r| !r.authorized),
        "no token ever reached the vault"
    );
}

/// A vault whose challenge names another resource (a private DNS name in front of a real
/// vault: the challenge says `https://vault.azure.net`) gets a `Config` error on
/// `endpoint` saying what to do, and no token is sent.
#[tokio::test]
async fn a_challenge_for_another_resource_is_a_config_error_naming_endpoint() {
    let (ca, tls) = tls();
    let vault = Server::start(tls, |_| challenge("https://vault.azure.net")).await;
    let p = AzureKeyVaultProvider::with_credential(config(&vault, &ca), Arc::new(StaticToken)).unwrap();
    for outcome in [p.retrieve(&id()).await.map(drop), p.check().await] {
        let e = outcome.unwrap_err();
        let StorageError::Config(c) = &e else { panic!("{e:?}") };
        assert_eq!(c.field(), "endpoint", "{e}");
        assert!(
            c.rule().contains("https://vault.azure.net") && c.rule().contains("private endpoint"),
            "{e}"
        );
        assert!(!e.is_retryable());
    }
    assert!(vault.seen().iter().all(|r| !r.authorized), "{:?}", vault.seen());
}

/// A redirect is never followed: the request with the bearer token goes to the vault only,
/// and the caller gets an error saying so.
#[tokio::test]
async fn redirects_are_never_followed() {
    let (ca, tls) = tls();
    let other = Server::start(tls.clone(), |_| (200, vec![], "{}".into())).await;
    // `localhost` resolves everywhere: a followed redirect would reach the other server.
    let elsewhere = format!("{}/secrets/stolen", other.url("localhost"));
    let plain = format!("http://localhost:{}/secrets/stolen", other.addr.port());
    for location in [elsewhere, plain] {
        let target = location.clone();
        let vault = Server::start(tls.clone(), move |r| {
            if r.authorized {
                (307, vec![("location", target.clone())], String::new())
            } else {
                challenge("https://localhost")
            }
        })
        .await;
        let p = AzureKeyVaultProvider::with_credential(config(&vault, &ca), Arc::new(StaticToken)).unwrap();
        let e = p.retrieve(&id()).await.unwrap_err();
        assert!(e.to_string().contains("redirect"), "{location}: {e}");
        assert!(!e.is_retryable(), "{e}");
        let sent = vault.seen();
        assert!(
            sent.iter()
                .any(|r| r.authorized && r.method == "GET" && r.path.starts_with("/secrets/nebula-api--key")),
            "{sent:?}"
        );
    }
    let reached = other.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reached, 0, "a redirect was followed: {:?}", other.seen());
}

/// A service principal the provider builds from its configuration sees Entra ID's 5xx as
/// `Unavailable` whatever the body (a gateway's HTML page, which azure_identity cannot
/// parse). The test runs itself again in a child process whose `AZURE_AUTHORITY_HOST`
/// names a local stand-in for Entra ID (the environment of this process stays untouched).
#[tokio::test]
async fn a_configured_service_principal_sees_entra_5xx_with_any_body_as_unavailable() {
    const NAME: &str = "a_configured_service_principal_sees_entra_5xx_with_any_body_as_unavailable";
    if let Ok(endpoint) = std::env::var("NEBULA_TRANSPORT_CHILD_VAULT") {
        let config = AzureKeyVaultConfig {
            allow_custom_host: true,
            ca_cert: std::env::var("NEBULA_TRANSPORT_CHILD_CA").ok(),
            credential: AzureCredential::ServicePrincipal {
                tenant_id: GUID.into(),
                client_id: GUID.into(),
                client_secret: "hunter2-client-secret".into(),
            },
            ..AzureKeyVaultConfig::new(endpoint)
        };
        let p = AzureKeyVaultProvider::new(config).await.unwrap();
        let e = p.retrieve(&id()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.is_retryable());
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
        return;
    }
    let (ca, tls) = tls();
    let vault = Server::start(tls.clone(), |_| challenge("https://localhost")).await;
    let entra = Server::start(tls, |_| (502, vec![], "<html>502 Bad Gateway</html>".into())).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([NAME, "--exact", "--nocapture"])
        .env("NEBULA_TRANSPORT_CHILD_VAULT", vault.url("vault.localhost"))
        .env("NEBULA_TRANSPORT_CHILD_CA", &ca)
        .env("AZURE_AUTHORITY_HOST", entra.url("localhost"));
    let out = tokio::task::spawn_blocking(move || child.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
    let asked = entra.seen();
    assert!(
        asked
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/oauth2/v2.0/token")),
        "the child asked the local Entra ID: {asked:?}"
    );
}
