//! [`check_service_url`]: the rules every remote backend applies to its service's address,
//! and [`redacted_url`], how a configuration's `Debug` shows one.

use std::borrow::Cow;

/// A service URL as a configuration's `Debug` may show it: user info, query and fragment
/// (which [`check_service_url`] refuses, and which may hold a password or a token) are
/// replaced by `<redacted>`, whether or not the URL parses.
///
/// ```
/// use nebula_credential_core::remote::redacted_url;
/// assert_eq!(redacted_url("https://vault:8200/v1"), "https://vault:8200/v1");
/// assert_eq!(redacted_url("https://admin:hunter2@vault:8200"), "https://<redacted>@vault:8200");
/// assert_eq!(redacted_url("https://kv.example?sig=abc"), "https://kv.example?<redacted>");
/// ```
pub fn redacted_url(raw: &str) -> Cow<'_, str> {
    let start = raw.find("://").map_or(0, |i| i + 3);
    // Everything up to the last `@` may be user info (a password may hold `/`, `?` or `@`).
    let (user_info, host_start) = match raw[start..].rfind('@') {
        Some(at) => (true, start + at + 1),
        None => (false, start),
    };
    let rest = &raw[host_start..];
    let tail = rest.find(['?', '#']);
    if !user_info && tail.is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::from(&raw[..start]);
    if user_info {
        out.push_str("<redacted>@");
    }
    match tail {
        Some(t) => {
            out.push_str(&rest[..=t]);
            out.push_str("<redacted>");
        }
        None => out.push_str(rest),
    }
    Cow::Owned(out)
}

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
mod redaction_tests {
    use super::redacted_url;

    #[test]
    fn secrets_in_any_part_of_a_url_are_redacted_whether_or_not_it_parses() {
        for (raw, shown) in [
            ("https://vault.example:8200", "https://vault.example:8200"),
            ("https://u:p@h:1/v1/x", "https://<redacted>@h:1/v1/x"),
            ("https://u:p@w@h", "https://<redacted>@h"),
            ("http//u:secret@h", "<redacted>@h"),
            ("https://h/p?token=s3cret#frag", "https://h/p?<redacted>"),
            ("https://h#s3cret", "https://h#<redacted>"),
            ("https://u:p@h?x=1", "https://<redacted>@h?<redacted>"),
            ("https://u:a/b?c@h/v1", "https://<redacted>@h/v1"),
        ] {
            assert_eq!(redacted_url(raw), shown, "{raw}");
        }
    }
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
