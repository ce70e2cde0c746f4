//! [`check_service_url`]: the rules every remote backend applies to its service's address.

/// Checks a service URL from a configuration: it parses, uses `https://` or `http://`,
/// has a host, and carries no user info, query or fragment. Plain `http` is accepted only
/// for a loopback host (`localhost`, `127.0.0.0/8`, `::1`) unless `allow_http`; the
/// message then names `allow_field`, the option that allows it. The message completes
/// "FIELD …"; the parsed URL is returned for further checks.
///
/// ```
/// use nebula_credential_core::remote::check_service_url;
/// assert!(check_service_url("http://127.0.0.1:8200", false, "allow_http").is_ok());
/// let rule = check_service_url("http://10.0.0.5:8200", false, "allow_http").unwrap_err();
/// assert!(rule.contains("allow_http"));
/// ```
pub fn check_service_url(raw: &str, allow_http: bool, allow_field: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL ({e}); use e.g. \"https://host:port\""))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must use https:// or http:// (got {}://)", url.scheme()));
    }
    let Some(host) = url.host() else {
        return Err("has no host".into());
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user info; credentials are configured apart from the URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    let loopback = match &host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    if url.scheme() == "http" && !loopback && !allow_http {
        return Err(format!(
            "uses plain http to {host}, which is not a loopback host; use https, or set {allow_field} = true \
             if the network path is trusted"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls() {
        for ok in [
            "https://vault.example.com:8200",
            "http://127.0.0.1:1",
            "http://localhost/",
            "http://[::1]:80",
        ] {
            assert!(check_service_url(ok, false, "allow_http").is_ok(), "{ok}");
        }
        for bad in [
            "x:1",
            "ftp://h",
            "http://",
            "https://u:p@h",
            "https://h/?q",
            "https://h/#f",
            "http://10.0.0.5",
        ] {
            assert!(check_service_url(bad, false, "allow_http").is_err(), "{bad}");
        }
        assert!(check_service_url("http://vault:8200", true, "allow_http").is_ok());
        let rule = check_service_url("http://vault:8200", false, "allow_plaintext_http").unwrap_err();
        assert!(rule.contains("allow_plaintext_http"), "{rule}");
    }
}
