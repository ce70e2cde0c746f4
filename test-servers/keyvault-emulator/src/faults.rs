//! Fault injection and the request log, driven through `/__emulator/…`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Longest request log kept; older entries are dropped.
const LOG_CAPACITY: usize = 10_000;

/// A fault rule, as posted to `POST /__emulator/faults`.
///
/// `{"status":429,"retry_after_s":1,"count":2}`, `{"status":503}`, `{"stall_ms":3000}`
/// (stall, then answer normally, or with `status` if given), `{"empty_page":true,"count":1}`
/// (the next list request answers an empty page with a `nextLink`),
/// `{"status":403,"code":"Forbidden","inner_code":"ForbiddenByFirewall","method":"DELETE","path":"/secrets/foo"}`,
/// `{"challenge":true}` (401 with a fresh challenge), `{"reset_mid_body":true}` (serve, then cut
/// the answer's body and drop the connection). `method`, `path` and `vault` narrow which
/// requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Answer with this status instead of serving the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Retry-After` seconds to send with `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Wait this long before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<u64>,
    /// Answer list requests with an empty page (applies to list requests only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_page: bool,
    /// How many requests the rule applies to (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Apply only to requests to this vault (case-insensitive); default: any vault. Lets
    /// tests that share an emulator inject faults without hitting each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    /// Apply only to requests with this method (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Apply only to requests to this path (case-insensitive; a trailing `/` on either side is
    /// ignored, so `/secrets/foo` matches the SDKs' `/secrets/foo/`); a trailing `*` makes it a
    /// prefix (`/secrets/foo*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `error.code` of the answer to `status` (default: the service's code for that status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `error.innererror.code` of the answer (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_code: Option<String>,
    /// `error.message` of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Answer 401 with the usual `WWW-Authenticate` challenge although the token is good, as
    /// the service does for a revoked token or a continuous-access-evaluation event; the
    /// client's next request is served.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub challenge: bool,
    /// Serve the request (its write lands), send the status, the headers and part of the body,
    /// then drop the connection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset_mid_body: bool,
}

/// The request a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path, without the query.
    pub path: &'a str,
    /// Vault name.
    pub vault: &'a str,
    /// Whether it is a list request.
    pub is_list: bool,
}

/// Whether `pattern` (exact, or a prefix with a trailing `*`; case-insensitive; trailing `/`
/// ignored) matches `path`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let path = path.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path.trim_end_matches('/') == pattern.trim_end_matches('/'),
    }
}

fn one() -> u32 {
    1
}

impl FaultRule {
    /// Checks the rule makes sense.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(status) = self.status
            && !(400..=599).contains(&status)
        {
            return Err(format!("status {status} is not an error status (400..=599)"));
        }
        let shapes = [
            self.status.is_some(),
            self.empty_page,
            self.challenge,
            self.reset_mid_body,
        ];
        if shapes.iter().filter(|s| **s).count() > 1 {
            return Err("status, empty_page, challenge and reset_mid_body exclude each other".into());
        }
        if self.empty_page && self.stall_ms.is_some() {
            return Err("empty_page cannot be combined with stall_ms".into());
        }
        if !shapes.contains(&true) && self.stall_ms.is_none() {
            return Err("a fault needs status, stall_ms, empty_page, challenge or reset_mid_body".into());
        }
        let has_body_fields = self.code.is_some() || self.inner_code.is_some() || self.message.is_some();
        if has_body_fields && self.status.is_none() && !self.challenge {
            return Err("code, inner_code and message need a status (or challenge)".into());
        }
        if self.code.as_deref().is_some_and(str::is_empty) || self.inner_code.as_deref().is_some_and(str::is_empty) {
            return Err("code and inner_code must not be empty".into());
        }
        if let Some(method) = &self.method
            && (method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(format!("method {method:?} is not an HTTP method"));
        }
        if let Some(path) = &self.path
            && !path.starts_with('/')
        {
            return Err(format!("path {path:?} must start with /"));
        }
        if self.retry_after_s.is_some() && self.status.is_none() {
            return Err("retry_after_s needs a status".into());
        }
        if self.count == 0 {
            return Err("count must be at least 1".into());
        }
        Ok(())
    }
}

/// An injected error answer: status, `Retry-After` and body fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedStatus {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` seconds.
    pub retry_after_s: Option<u64>,
    /// `error.code`.
    pub code: Option<String>,
    /// `error.innererror.code`.
    pub inner_code: Option<String>,
    /// `error.message`.
    pub message: Option<String>,
}

/// What the next request gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injection {
    /// Stall this long first.
    pub stall_ms: Option<u64>,
    /// Then answer this status.
    pub status: Option<InjectedStatus>,
    /// Answer an empty page (list requests only).
    pub empty_page: bool,
    /// Answer 401 with a challenge (body fields in `status` when given).
    pub challenge: bool,
    /// Serve, then cut the body and drop the connection.
    pub reset_mid_body: bool,
}

/// Pending fault rules, applied in the order they were posted.
#[derive(Debug, Default)]
pub struct Faults {
    rules: VecDeque<FaultRule>,
}

impl Faults {
    /// Queues a rule.
    pub fn push(&mut self, rule: FaultRule) {
        self.rules.push_back(rule);
    }

    /// Drops every pending rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The pending rules.
    pub fn pending(&self) -> Vec<FaultRule> {
        self.rules.iter().cloned().collect()
    }

    /// Takes what applies to the next authenticated data-plane request. An `empty_page` rule
    /// waits for a list request; a rule with `vault`, `method` or `path` only applies to
    /// requests that match them; the first rule posted that applies wins.
    pub fn next(&mut self, target: Target<'_>) -> Injection {
        let applies = |rule: &FaultRule| {
            (target.is_list || !rule.empty_page)
                && rule
                    .vault
                    .as_deref()
                    .is_none_or(|v| v.eq_ignore_ascii_case(target.vault))
                && rule
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(target.method))
                && rule.path.as_deref().is_none_or(|p| path_matches(p, target.path))
        };
        let Some(index) = self.rules.iter().position(applies) else {
            return Injection::default();
        };
        let rule = &mut self.rules[index];
        let status = if rule.challenge { Some(401) } else { rule.status };
        let injection = Injection {
            stall_ms: rule.stall_ms,
            status: status.map(|status| InjectedStatus {
                status,
                retry_after_s: rule.retry_after_s,
                code: rule.code.clone(),
                inner_code: rule.inner_code.clone(),
                message: rule.message.clone(),
            }),
            empty_page: rule.empty_page,
            challenge: rule.challenge,
            reset_mid_body: rule.reset_mid_body,
        };
        rule.count -= 1;
        if rule.count == 0 {
            self.rules.remove(index);
        }
        injection
    }
}

/// One served request, as `GET /__emulator/requests` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Vault name, from the host.
    pub vault: String,
    /// Path, without the query.
    pub path: String,
    /// Query string (never holds a secret).
    pub query: String,
    /// Status answered.
    pub status: u16,
}

/// The data-plane request log (control requests are not logged).
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: VecDeque<LoggedRequest>,
}

impl RequestLog {
    /// Appends an entry.
    pub fn push(&mut self, entry: LoggedRequest) {
        if self.entries.len() == LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.entries.iter().cloned().collect()
    }

    /// Empties the log.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> FaultRule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rules_parse_and_validate() {
        assert!(rule(r#"{"status":429,"retry_after_s":1,"count":2}"#).validate().is_ok());
        assert!(rule(r#"{"stall_ms":100}"#).validate().is_ok());
        assert!(rule(r#"{"empty_page":true}"#).validate().is_ok());
        assert!(rule(r#"{"count":1}"#).validate().is_err());
        assert!(rule(r#"{"status":200}"#).validate().is_err());
        assert!(rule(r#"{"status":503,"count":0}"#).validate().is_err());
        assert!(serde_json::from_str::<FaultRule>(r#"{"status":503,"bogus":1}"#).is_err());
    }

    fn target<'a>(method: &'a str, path: &'a str, vault: &'a str, is_list: bool) -> Target<'a> {
        Target {
            method,
            path,
            vault,
            is_list,
        }
    }

    fn any(vault: &str) -> Target<'_> {
        target("GET", "/secrets/x/", vault, false)
    }

    fn status(injection: &Injection) -> Option<(u16, Option<u64>)> {
        injection.status.as_ref().map(|s| (s.status, s.retry_after_s))
    }

    #[test]
    fn rules_apply_count_times_in_order() {
        let mut faults = Faults::default();
        faults.push(rule(r#"{"status":429,"retry_after_s":1,"count":2}"#));
        faults.push(rule(r#"{"status":503}"#));
        assert_eq!(status(&faults.next(any("v"))), Some((429, Some(1))));
        assert_eq!(
            status(&faults.next(target("GET", "/secrets", "v", true))),
            Some((429, Some(1)))
        );
        assert_eq!(status(&faults.next(any("v"))), Some((503, None)));
        assert_eq!(faults.next(any("v")), Injection::default());
    }

    #[test]
    fn a_rule_for_one_vault_leaves_the_others_alone() {
        let mut faults = Faults::default();
        faults.push(rule(r#"{"status":429,"vault":"Mine"}"#));
        assert_eq!(faults.next(any("other")), Injection::default());
        assert_eq!(status(&faults.next(any("mine"))), Some((429, None)));
        assert!(faults.pending().is_empty());
    }

    #[test]
    fn empty_page_waits_for_a_list_request() {
        let mut faults = Faults::default();
        faults.push(rule(r#"{"empty_page":true}"#));
        assert_eq!(faults.next(any("v")), Injection::default());
        assert!(faults.next(target("GET", "/secrets", "v", true)).empty_page);
        assert!(faults.pending().is_empty());
    }

    #[test]
    fn method_and_path_narrow_a_rule() {
        let mut faults = Faults::default();
        faults.push(rule(
            r#"{"status":403,"code":"Forbidden","inner_code":"ForbiddenByFirewall","message":"m","method":"delete","path":"/Secrets/Foo"}"#,
        ));
        faults.push(rule(r#"{"status":409,"path":"/deletedsecrets/*"}"#));
        assert_eq!(
            faults.next(target("GET", "/secrets/foo/", "v", false)),
            Injection::default()
        );
        assert_eq!(
            faults.next(target("DELETE", "/secrets/bar", "v", false)),
            Injection::default()
        );
        let hit = faults
            .next(target("DELETE", "/secrets/foo", "v", false))
            .status
            .unwrap();
        assert_eq!(
            (
                hit.status,
                hit.code.as_deref(),
                hit.inner_code.as_deref(),
                hit.message.as_deref()
            ),
            (403, Some("Forbidden"), Some("ForbiddenByFirewall"), Some("m"))
        );
        assert_eq!(
            faults.next(target("GET", "/secrets/foo", "v", false)),
            Injection::default()
        );
        let conflict = faults.next(target("DELETE", "/deletedsecrets/any", "v", false));
        assert_eq!(status(&conflict), Some((409, None)));
        assert!(faults.pending().is_empty());
    }

    #[test]
    fn paths_match_exactly_or_by_prefix() {
        assert!(path_matches("/secrets/foo", "/secrets/foo/"));
        assert!(path_matches("/secrets/foo/", "/SECRETS/FOO"));
        assert!(!path_matches("/secrets/foo", "/secrets/foo/versions"));
        assert!(path_matches("/secrets/foo*", "/secrets/foo/versions"));
        assert!(path_matches("/secrets/foo*", "/secrets/foobar"));
        assert!(!path_matches("/secrets/foo*", "/deletedsecrets/foo"));
    }

    #[test]
    fn challenge_and_reset_are_shapes_of_their_own() {
        let mut faults = Faults::default();
        faults.push(rule(r#"{"challenge":true}"#));
        faults.push(rule(r#"{"reset_mid_body":true,"method":"PUT"}"#));
        let challenge = faults.next(any("v"));
        assert!(challenge.challenge);
        assert_eq!(status(&challenge), Some((401, None)));
        assert_eq!(faults.next(any("v")), Injection::default());
        let reset = faults.next(target("PUT", "/secrets/x", "v", false));
        assert!(reset.reset_mid_body && reset.status.is_none());
        for bad in [
            r#"{"challenge":true,"status":401}"#,
            r#"{"reset_mid_body":true,"status":500}"#,
            r#"{"reset_mid_body":true,"empty_page":true}"#,
            r#"{"code":"X"}"#,
            r#"{"status":409,"method":"DEL ETE"}"#,
            r#"{"status":409,"path":"secrets/x"}"#,
        ] {
            assert!(rule(bad).validate().is_err(), "{bad}");
        }
        assert!(rule(r#"{"status":409}"#).validate().is_ok());
        assert!(rule(r#"{"challenge":true,"message":"revoked"}"#).validate().is_ok());
    }

    #[test]
    fn log_is_bounded() {
        let mut log = RequestLog::default();
        for i in 0..LOG_CAPACITY + 5 {
            log.push(LoggedRequest {
                method: "GET".into(),
                vault: "v".into(),
                path: format!("/{i}"),
                query: String::new(),
                status: 200,
            });
        }
        assert_eq!(log.entries().len(), LOG_CAPACITY);
        assert_eq!(log.entries()[0].path, "/5");
        log.clear();
        assert!(log.entries().is_empty());
    }
}
