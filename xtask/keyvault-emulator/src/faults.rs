//! Fault injection and the request log, driven through `/__emulator/…`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Longest request log kept; older entries are dropped.
const LOG_CAPACITY: usize = 10_000;

/// A fault rule, as posted to `POST /__emulator/faults`.
///
/// `{"status":429,"retry_after_s":1,"count":2}`, `{"status":503}`, `{"stall_ms":3000}`
/// (stall, then answer normally, or with `status` if given), `{"empty_page":true,"count":1}`
/// (the next list request answers an empty page with a `nextLink`).
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
        if self.empty_page && (self.status.is_some() || self.stall_ms.is_some()) {
            return Err("empty_page cannot be combined with status or stall_ms".into());
        }
        if !self.empty_page && self.status.is_none() && self.stall_ms.is_none() {
            return Err("a fault needs status, stall_ms or empty_page".into());
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

/// What the next request gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injection {
    /// Stall this long first.
    pub stall_ms: Option<u64>,
    /// Then answer this status (with optional `Retry-After`).
    pub status: Option<(u16, Option<u64>)>,
    /// Answer an empty page (list requests only).
    pub empty_page: bool,
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

    /// Takes what applies to the next authenticated data-plane request to `vault`. An
    /// `empty_page` rule waits for a list request; other rules apply to any request; a rule
    /// with a `vault` only to requests to that vault.
    pub fn next(&mut self, is_list: bool, vault: &str) -> Injection {
        let applies = |rule: &FaultRule| {
            (is_list || !rule.empty_page) && rule.vault.as_deref().is_none_or(|v| v.eq_ignore_ascii_case(vault))
        };
        let Some(index) = self.rules.iter().position(applies) else {
            return Injection::default();
        };
        let rule = &mut self.rules[index];
        let injection = Injection {
            stall_ms: rule.stall_ms,
            status: rule.status.map(|s| (s, rule.retry_after_s)),
            empty_page: rule.empty_page,
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

    #[test]
    fn rules_apply_count_times_in_order() {
        let mut faults = Faults::default();
        faults.push(rule(r#"{"status":429,"retry_after_s":1,"count":2}"#));
        faults.push(rule(r#"{"status":503}"#));
        assert_eq!(faults.next(false, "v").status, Some((429, Some(1))));
        assert_eq!(faults.next(true, "v").status, Some((429, Some(1))));
        assert_eq!(faults.next(false, "v").status, Some((503, None)));
        assert_eq!(faults.next(false, "v"), Injection::default());
    }

    #[test]
    fn a_rule_for_one_vault_leaves_the_others_alone() {
        let mut faults = Faults::default();
        faults.push(rule(r#"{"status":429,"vault":"Mine"}"#));
        assert_eq!(faults.next(false, "other"), Injection::default());
        assert_eq!(faults.next(false, "mine").status, Some((429, None)));
        assert!(faults.pending().is_empty());
    }

    #[test]
    fn empty_page_waits_for_a_list_request() {
        let mut faults = Faults::default();
        faults.push(rule(r#"{"empty_page":true}"#));
        assert_eq!(faults.next(false, "v"), Injection::default());
        assert!(faults.next(true, "v").empty_page);
        assert!(faults.pending().is_empty());
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
