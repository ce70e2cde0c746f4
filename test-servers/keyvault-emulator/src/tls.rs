//! The emulator's private CA and server certificates.
//!
//! At start a fresh CA signs a server certificate for `localhost`, `*.localhost`,
//! `127.0.0.1` and the configured vault hosts. Since OpenSSL (Python's `ssl`) refuses a
//! wildcard directly under a single-label name, a client asking by SNI for another
//! `NAME.localhost` gets a certificate for exactly that name, minted on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::rules::is_vault_name;

/// The CA and the TLS configuration that serves certificates signed by it.
pub struct Tls {
    /// The CA certificate, PEM: what clients must trust.
    pub ca_pem: String,
    /// The server configuration (HTTP/1.1 only).
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// The crypto provider: aws-lc-rs, the one the workspace's reqwest already uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

struct Minter {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl Minter {
    fn mint(&self, names: Vec<String>) -> Result<Arc<CertifiedKey>> {
        let key = KeyPair::generate().context("generating a server key")?;
        let mut params = CertificateParams::new(names).context("server certificate names")?;
        params.distinguished_name.push(DnType::CommonName, "keyvault-emulator");
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the server certificate")?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let certified = CertifiedKey::from_der(vec![cert.der().clone(), self.ca_der.clone()], key_der, &self.provider)
            .context("loading the server key")?;
        Ok(Arc::new(certified))
    }
}

struct Resolver {
    minter: Minter,
    default: Arc<CertifiedKey>,
    by_name: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let sni = sni.to_ascii_lowercase();
        if sni == "localhost" {
            return Some(self.default.clone());
        }
        // Only NAME.localhost is served; anything else fails the handshake.
        let vault = sni.strip_suffix(".localhost")?;
        if !is_vault_name(vault) {
            return None;
        }
        let mut cache = self.by_name.lock().ok()?;
        if let Some(found) = cache.get(&sni) {
            return Some(found.clone());
        }
        let minted = self.minter.mint(vec![sni.clone()]).ok()?;
        cache.insert(sni, minted.clone());
        Some(minted)
    }
}

impl Tls {
    /// A fresh CA and a server certificate for the given vault names.
    pub fn generate(vaults: &[String]) -> Result<Self> {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "keyvault-emulator test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).context("self-signing the CA")?;
        let ca_pem = ca_cert.pem();
        let provider = provider();
        let minter = Minter {
            issuer: Issuer::new(ca_params, ca_key),
            ca_der: ca_cert.der().clone(),
            provider: provider.clone(),
        };
        let mut names = vec!["localhost".to_owned(), "*.localhost".to_owned(), "127.0.0.1".to_owned()];
        names.extend(vaults.iter().map(|v| format!("{}.localhost", v.to_ascii_lowercase())));
        let default = minter.mint(names)?;
        let resolver = Resolver {
            minter,
            default,
            by_name: Mutex::new(HashMap::new()),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem,
            server_config: Arc::new(config),
        })
    }
}
