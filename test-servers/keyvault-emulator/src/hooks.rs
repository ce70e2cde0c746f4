//! Hooks: a write another tool makes to a secret just before the next request for it.
//!
//! `POST /__emulator/hooks` queues one; it runs once, against the vault's store, right before
//! the next authenticated data-plane request for that secret name (and method, if given) is
//! executed. It writes as another tool would: exactly the tags given, nothing added.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::rules;
use crate::store::{NewVersion, Now, Update, Vault};

/// Most fired hooks remembered for `GET /__emulator/hooks`.
const FIRED_CAPACITY: usize = 1_000;

/// What a hook does to the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookAction {
    /// A new version with `value`, `tags`, `content_type` (as `PUT /secrets/{name}`).
    Set,
    /// A soft delete (as `DELETE /secrets/{name}`).
    Delete,
    /// A purge of the deleted secret (as `DELETE /deletedsecrets/{name}`).
    Purge,
    /// A recover of the deleted secret (as `POST /deletedsecrets/{name}/recover`).
    Recover,
    /// New `tags` / `content_type` on the latest version (as `PATCH /secrets/{name}/`).
    Update,
}

/// A hook, as posted to `POST /__emulator/hooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// The vault (default: the vault of the host the hook was posted to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    /// The secret name (case-insensitive).
    pub name: String,
    /// Fire only before a request with this method (case-insensitive); default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The write.
    pub action: HookAction,
    /// The value (`set` only; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Tags (`set`, `update`), exactly as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// `contentType` (`set`, `update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl Hook {
    /// Checks the hook makes sense (the name and sizes follow the service's rules).
    pub fn validate(&self) -> Result<(), String> {
        rules::check_name(&self.name).map_err(|e| e.message)?;
        if self.action == HookAction::Set && self.value.is_none() {
            return Err("a set hook needs a value".into());
        }
        if self.value.is_some() && self.action != HookAction::Set {
            return Err("value is for set hooks only".into());
        }
        let writes_metadata = matches!(self.action, HookAction::Set | HookAction::Update);
        if !writes_metadata && (self.tags.is_some() || self.content_type.is_some()) {
            return Err("tags and content_type are for set and update hooks only".into());
        }
        if let Some(value) = &self.value {
            rules::check_value(value).map_err(|e| e.message)?;
        }
        if let Some(tags) = &self.tags {
            rules::check_tags(tags).map_err(|e| e.message)?;
        }
        if let Some(content_type) = &self.content_type {
            rules::check_content_type(content_type).map_err(|e| e.message)?;
        }
        if let Some(method) = &self.method
            && (method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(format!("method {method:?} is not an HTTP method"));
        }
        if let Some(vault) = &self.vault
            && !rules::is_vault_name(vault)
        {
            return Err(format!("invalid vault name {vault:?}: 3-24 characters of [0-9a-zA-Z-]"));
        }
        Ok(())
    }

    /// Runs the write against `vault`.
    pub fn run(&self, vault: &mut Vault, version_id: String, now: Now) -> Result<u16, ApiError> {
        let name = self.name.as_str();
        match self.action {
            HookAction::Set => {
                let new = NewVersion {
                    value: self.value.clone().unwrap_or_default(),
                    content_type: self.content_type.clone(),
                    tags: self.tags.clone().unwrap_or_default(),
                    ..NewVersion::default()
                };
                vault.set(name, new, version_id, now).map(|_| 200)
            }
            HookAction::Delete => vault.delete(name, now).map(|_| 200),
            HookAction::Purge => vault.purge(name, now).map(|()| 204),
            HookAction::Recover => vault.recover(name, now).map(|_| 200),
            HookAction::Update => {
                let update = Update {
                    content_type: self.content_type.clone(),
                    tags: self.tags.clone(),
                    ..Update::default()
                };
                vault.update(name, None, update, now).map(|_| 200)
            }
        }
    }

    fn applies(&self, vault: &str, name: &str, method: &str) -> bool {
        self.vault.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(vault))
            && self.name.eq_ignore_ascii_case(name)
            && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// A hook that ran, and how its write was answered (`GET /__emulator/hooks` → `fired`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiredHook {
    /// The hook.
    #[serde(flatten)]
    pub hook: Hook,
    /// The status its write got (200/204, or the error's status).
    pub status: u16,
    /// `error.code` when the write failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `error.innererror.code` when the write failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_code: Option<String>,
}

/// Pending hooks, in the order posted, and the ones that ran.
#[derive(Debug, Default)]
pub struct Hooks {
    pending: Vec<Hook>,
    fired: VecDeque<FiredHook>,
}

impl Hooks {
    /// Queues a hook (its `vault` must be set).
    pub fn push(&mut self, hook: Hook) {
        self.pending.push(hook);
    }

    /// Drops pending hooks and forgets fired ones.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.fired.clear();
    }

    /// The pending hooks.
    pub fn pending(&self) -> Vec<Hook> {
        self.pending.clone()
    }

    /// The hooks that ran, oldest first.
    pub fn fired(&self) -> Vec<FiredHook> {
        self.fired.iter().cloned().collect()
    }

    /// Takes the hooks that fire before a `method` request for `name` in `vault`.
    pub fn take(&mut self, vault: &str, name: &str, method: &str) -> Vec<Hook> {
        let (due, rest) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|hook| hook.applies(vault, name, method));
        self.pending = rest;
        due
    }

    /// Records how a hook's write was answered.
    pub fn record(&mut self, hook: Hook, outcome: &Result<u16, ApiError>) {
        if self.fired.len() == FIRED_CAPACITY {
            self.fired.pop_front();
        }
        let fired = match outcome {
            Ok(status) => FiredHook {
                hook,
                status: *status,
                code: None,
                inner_code: None,
            },
            Err(error) => FiredHook {
                hook,
                status: error.status,
                code: Some(error.code.to_string()),
                inner_code: error.inner.as_ref().map(ToString::to_string),
            },
        };
        self.fired.push_back(fired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SoftDelete;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hooks_validate() {
        assert!(
            hook(r#"{"vault":"v1x","name":"a","action":"set","value":"x"}"#)
                .validate()
                .is_ok()
        );
        assert!(
            hook(r#"{"name":"a","action":"delete","method":"GET"}"#)
                .validate()
                .is_ok()
        );
        assert!(hook(r#"{"name":"a","action":"set"}"#).validate().is_err());
        assert!(hook(r#"{"name":"a_b","action":"delete"}"#).validate().is_err());
        assert!(hook(r#"{"name":"a","action":"purge","tags":{}}"#).validate().is_err());
        assert!(
            hook(r#"{"name":"a","action":"delete","value":"x"}"#)
                .validate()
                .is_err()
        );
        assert!(serde_json::from_str::<Hook>(r#"{"name":"a","action":"explode"}"#).is_err());
    }

    #[test]
    fn a_hook_fires_once_for_its_name_and_method() {
        let mut hooks = Hooks::default();
        hooks.push(hook(
            r#"{"vault":"v1x","name":"Foo","action":"delete","method":"delete"}"#,
        ));
        assert!(hooks.take("v1x", "foo", "GET").is_empty());
        assert!(hooks.take("other", "foo", "DELETE").is_empty());
        assert!(hooks.take("v1x", "bar", "DELETE").is_empty());
        assert_eq!(hooks.take("V1X", "FOO", "DELETE").len(), 1);
        assert!(hooks.pending().is_empty());
        assert!(hooks.take("v1x", "foo", "DELETE").is_empty());
    }

    #[test]
    fn hooks_write_as_another_tool() {
        let now = Now::current();
        let mut vault = Vault::new(SoftDelete::without_delays(90));
        let set = hook(r#"{"vault":"v1x","name":"k","action":"set","value":"theirs","tags":{"owner":"other"}}"#);
        assert_eq!(set.run(&mut vault, "1".repeat(32), now).unwrap(), 200);
        let got = vault.get("k", None, now).unwrap();
        assert_eq!(got.version.value, "theirs");
        assert_eq!(got.version.tags, BTreeMap::from([("owner".into(), "other".into())]));
        let delete = hook(r#"{"vault":"v1x","name":"k","action":"delete"}"#);
        assert_eq!(delete.run(&mut vault, String::new(), now).unwrap(), 200);
        let again = delete.run(&mut vault, String::new(), now).unwrap_err();
        let mut hooks = Hooks::default();
        hooks.record(delete.clone(), &Err(again));
        assert_eq!(hooks.fired()[0].status, 404);
        let recover = hook(r#"{"vault":"v1x","name":"k","action":"recover"}"#);
        assert_eq!(recover.run(&mut vault, String::new(), now).unwrap(), 200);
        let update = hook(r#"{"vault":"v1x","name":"k","action":"update","tags":{}}"#);
        update.run(&mut vault, String::new(), now).unwrap();
        assert!(vault.get("k", None, now).unwrap().version.tags.is_empty());
    }
}
