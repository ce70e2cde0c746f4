//! TLS shared by the remote backends: recognising a failed handshake in an SDK error
//! ([`is_tls_failure`]), and loading the private CA of a `ca_cert` setting
//! ([`load_ca_cert`]). Verification is never turned off; these only add trust.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::errors::source_chain;
use crate::ConfigError;

/// Whether `err` failed in the TLS handshake (an untrusted or mismatched certificate, or
/// a peer that does not speak TLS): a `rustls::Error` anywhere in its source chain
/// (including inside `io::Error`s), or an `io::Error` of kind `InvalidData`, which is how
/// rustls's I/O adapters report certificate and protocol failures once they have
/// flattened the rustls error into text. A TLS failure is permanent: retrying meets the
/// same certificate.
///
/// `InvalidData` is not proof: hyper reports a malformed chunked body the same way, so a
/// client that keeps rustls's error in the chain (kube's does) should ask
/// [`is_rustls_failure`] instead.
pub fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    is_rustls_failure(err)
        || source_chain(err).any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
        })
}

/// Whether a `rustls::Error` is in `err`'s source chain (including inside `io::Error`s):
/// the strict form of [`is_tls_failure`], which does not take a bare `InvalidData` I/O
/// error (a malformed HTTP body, for one) for a failed handshake.
pub fn is_rustls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    source_chain(err).any(|e| e.is::<rustls::Error>())
}

/// Whether a `ca_cert` value holds PEM text rather than a file's path.
pub fn is_inline_pem(ca_cert: &str) -> bool {
    ca_cert.trim_start().starts_with("-----BEGIN")
}

/// How a `ca_cert` value shows in `Debug` and logs: the path, or `<inline PEM>`.
pub fn describe_ca_cert(ca_cert: &str) -> &str {
    if is_inline_pem(ca_cert) {
        "<inline PEM>"
    } else {
        ca_cert
    }
}

/// The private CA of a `ca_cert` setting of `provider`: `ca_cert` is PEM text (it starts
/// with `-----BEGIN`) or the path of a PEM file. Returns the PEM bytes, checked to hold
/// at least one parsable certificate, ready for an HTTP client's trust store
/// (e.g. `reqwest::Certificate::from_pem_bundle`). Every failure is a [`ConfigError`] on
/// `ca_cert` saying what to do.
///
/// ```
/// use nebula_credential_core::remote::load_ca_cert;
/// let err = load_ca_cert("vault", "/no/such/ca.pem").unwrap_err();
/// assert_eq!(err.field(), "ca_cert");
/// ```
pub fn load_ca_cert(provider: &'static str, ca_cert: &str) -> Result<Vec<u8>, ConfigError> {
    let fail = |rule: String| ConfigError::new(provider, "ca_cert", rule);
    if ca_cert.trim().is_empty() {
        return Err(fail(
            "is empty; set it to a PEM file's path or PEM text, or leave it unset to trust the system roots only"
                .into(),
        ));
    }
    let pem = if is_inline_pem(ca_cert) {
        ca_cert.as_bytes().to_vec()
    } else {
        std::fs::read(ca_cert).map_err(|e| {
            fail(format!(
                "cannot read {ca_cert:?} ({e}); set it to a readable PEM file's path or to the PEM text itself"
            ))
        })?
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| {
            fail(format!(
                "is not valid PEM ({e:?}); give the CA certificate(s) as PEM (-----BEGIN CERTIFICATE-----)"
            ))
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(fail(
            "holds no PEM certificate; give the CA certificate(s) as PEM (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapper as hyper, reqwest and the SDKs build them: its own text, the cause as source.
    #[derive(Debug)]
    struct Wrapper(Box<dyn std::error::Error + Send + Sync>);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(self.0.as_ref())
        }
    }

    fn untrusted() -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    }

    #[test]
    fn a_rustls_error_itself_is_a_tls_failure() {
        assert!(is_tls_failure(&untrusted()));
        assert!(is_tls_failure(&Wrapper(Box::new(untrusted()))));
    }

    #[test]
    fn a_rustls_error_inside_an_io_error_is_a_tls_failure_whatever_the_io_kind() {
        let io = std::io::Error::other(untrusted());
        assert!(is_tls_failure(&io));
        assert!(is_tls_failure(&Wrapper(Box::new(Wrapper(Box::new(io))))));
    }

    #[test]
    fn an_invalid_data_io_error_is_a_tls_failure() {
        let flattened = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(is_tls_failure(&flattened));
        assert!(!is_rustls_failure(&flattened), "the strict form wants rustls's error");
        assert!(is_tls_failure(&Wrapper(Box::new(flattened))));
    }

    #[test]
    fn the_strict_form_finds_rustls_errors_only() {
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, untrusted());
        assert!(is_rustls_failure(&Wrapper(Box::new(wrapped))));
        let body = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid chunk size: overflow");
        assert!(!is_rustls_failure(&Wrapper(Box::new(body))));
    }

    #[test]
    fn connection_failures_are_not_tls_failures() {
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::TimedOut,
        ] {
            let io = std::io::Error::new(kind, "no");
            assert!(!is_tls_failure(&Wrapper(Box::new(io))), "{kind:?}");
        }
        assert!(!is_tls_failure(&Wrapper(Box::new(std::fmt::Error))));
    }

    /// A self-signed test CA (no key is kept anywhere; it only has to parse).
    const PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBeTCCAR+gAwIBAgIUKQDrixLyVMvWmt7bo3TMCoId370wCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjEyMDYyMzE4MDlaFw0zNjEyMDMyMzE4
MDlaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AATlIYhY0XRKvkSmYslGwXqtnmt+dzLNLSFEM77/wlCZ3+IippBlFX0IobMr6C9T
fydKLGtFPlCkfVM/XbAbrqwRo1MwUTAdBgNVHQ4EFgQUtdMrJuRksULP4jvlGR8Z
7HTi+dgwHwYDVR0jBBgwFoAUtdMrJuRksULP4jvlGR8Z7HTi+dgwDwYDVR0TAQH/
BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBHNM61EZEw+b/UGfRxKKWK1kddwF9e
1DuQ+9ND4aWTFQIhAOhJCq5nuZ7N0cXs7gHd6yLPPTH+ED/KwBEYpCkco58A
-----END CERTIFICATE-----
";

    #[test]
    fn a_ca_cert_loads_from_inline_pem_or_a_path() {
        assert_eq!(load_ca_cert("vault", PEM).unwrap(), PEM.as_bytes());
        let dir = std::env::temp_dir().join(format!("nebula-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, PEM).unwrap();
        let loaded = load_ca_cert("vault", path.to_str().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.unwrap(), PEM.as_bytes());
        assert!(is_inline_pem(PEM) && !is_inline_pem("/etc/ca.pem"));
        assert_eq!(describe_ca_cert(PEM), "<inline PEM>");
        assert_eq!(describe_ca_cert("/etc/ca.pem"), "/etc/ca.pem");
    }

    #[test]
    fn a_bad_ca_cert_is_a_config_error_on_ca_cert_saying_what_to_do() {
        for (value, says) in [
            (" ", "unset"),
            ("/no/such/dir/ca.pem", "cannot read"),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                "not valid PEM",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "no PEM certificate",
            ),
        ] {
            let e = load_ca_cert("azure", value).unwrap_err();
            assert_eq!((e.provider(), e.field()), ("azure", "ca_cert"));
            assert!(e.rule().contains(says), "{value:?}: {e}");
        }
    }
}
