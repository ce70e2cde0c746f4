//! Property tests of configuration parsing: arbitrary TOML read as a [`StorageConfig`]
//! (every backend compiled in) never panics, nor does validating what parses; and a
//! unique secret-looking string put in a secret's place (a Vault token or AppRole
//! secret_id, an Azure client secret, the password of a URL's userinfo) never shows in a
//! [`ConfigError`](nebula_credential::ConfigError)'s `Display` or `Debug`, in the parsed
//! configuration's `Debug`, nor in a parse error's message beyond serde's own quote of a
//! mistyped value (`string "…"`, `` unknown variant `…` ``: `toml` keeps those, and the
//! `nebula-cred` CLI removes them before printing). Identifiers (a region, a namespace, a
//! KMS key id) may be quoted back in their own field's error: they are not secrets.
//!
//! Cases per property: `PROPTEST_CASES` (default 256); prints `property cases <codec>: N`.
#![cfg(all(
    feature = "storage-local",
    feature = "storage-aws",
    feature = "storage-kubernetes",
    feature = "storage-vault",
    feature = "storage-azure"
))]

#[path = "../../nebula-credential-core/tests/support/props.rs"]
mod support;

use nebula_credential::StorageConfig;
use proptest::prelude::*;

use support::{Codec, ensure, strategies};

/// Every key some backend reads (top level), with the tables some of them hold.
const KEYS: &[&str] = &[
    "region",
    "endpoint",
    "endpoint_url",
    "address",
    "vault_url",
    "allow_http",
    "allow_custom_host",
    "secret_prefix",
    "prefix",
    "kms_key_id",
    "delete_mode",
    "deletion",
    "recovery_window_days",
    "list_page_size",
    "ca_cert",
    "api_version",
    "namespace",
    "kubeconfig_path",
    "context",
    "mount_path",
    "token_renewal_threshold_secs",
    "renewal_check_interval_secs",
    "max_payload_bytes",
    "list_concurrency",
    "base_path",
    "create_dir",
    "file_extension",
    "enable_locking",
    "token",
];
/// Tables and the keys inside them.
const TABLES: &[(&str, &[&str])] = &[
    ("auth", &["method", "token", "role_id", "secret_id", "mount"]),
    (
        "credential",
        &["type", "tenant_id", "client_id", "client_secret", "certificate_path"],
    ),
    (
        "retry",
        &["max_retries", "initial_backoff_ms", "max_backoff_ms", "multiplier"],
    ),
    ("timeouts", &["read_ms", "write_ms", "list_ms", "connect_ms"]),
    ("default_tags", &["env", "nebula-credential:x", "org:team"]),
    ("default_labels", &["app.kubernetes.io/name", "team"]),
    ("default_annotations", &["example.io/note"]),
];
const PROVIDERS: &[&str] = &["memory", "local", "aws", "kubernetes", "vault", "azure", "nope"];
/// Values the backends give meaning to, so parsing gets past the types more often.
const WORDS: &[&str] = &[
    "token",
    "approle",
    "service_principal",
    "managed_identity",
    "developer_tools",
    "soft",
    "purge",
    "destroy",
    "force",
    "recovery_window",
    "https://a.vault.azure.net",
    "http://127.0.0.1:8200",
    "/tmp/props",
    "eu-west-1",
    "enc.json",
];

/// A TOML value, sometimes holding `secret` (as itself or inside a URL, a path, a list).
fn value(secret: String) -> impl Strategy<Value = String> {
    let s = secret.clone();
    prop_oneof![
        3 => Just(format!("{secret:?}")),
        1 => Just(format!("\"https://{s}.vault.azure.net\"")),
        1 => Just(format!("\"http://user:{s}@127.0.0.1:1\"")),
        1 => Just(format!("\"/tmp/{s}\"")),
        1 => Just(format!("[{s:?}]")),
        1 => Just(format!("{{ days = {s:?} }}")),
        2 => prop::sample::select(WORDS).prop_map(|w| format!("{w:?}")),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => (0u64..100_000).prop_map(|n| n.to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:?}")),
        1 => strategies::any_text().prop_map(|t| format!("{t:?}")),
    ]
}

/// A configuration document: a provider line, keys and tables with arbitrary values, the
/// secret somewhere; sometimes cut or garbled.
fn document() -> impl Strategy<Value = (String, String)> {
    strategies::secret().prop_flat_map(|secret| {
        let line = (prop::sample::select(KEYS), value(secret.clone())).prop_map(|(k, v)| format!("{k} = {v}\n"));
        let table = (
            prop::sample::select(TABLES),
            prop::collection::vec((any::<prop::sample::Index>(), value(secret.clone())), 0..4),
        )
            .prop_map(|((name, keys), entries)| {
                let body: String = entries
                    .iter()
                    .map(|(i, v)| format!("{:?} = {v}\n", keys[i.index(keys.len())]))
                    .collect();
                format!("[{name}]\n{body}")
            });
        let text = (
            prop::option::of(prop::sample::select(PROVIDERS)),
            prop::collection::vec(line, 0..6),
            prop::collection::vec(table, 0..3),
        )
            .prop_map(|(provider, lines, tables)| {
                let head = provider.map(|p| format!("provider = {p:?}\n")).unwrap_or_default();
                format!("{head}{}{}", lines.concat(), tables.concat())
            })
            .boxed();
        let garbled = (text.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(text, at, b)| {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = b & 0x7f;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        });
        (Just(secret), prop_oneof![4 => text, 1 => garbled])
    })
}

/// `message` without serde's own quotes of a mistyped value (`string "…"`, `` unknown
/// variant `…` ``) when that value holds `secret`.
fn without_serde_quotes(message: &str, secret: &str) -> String {
    let mut out = message.to_string();
    for (open, close) in [("string \"", '"'), ("unknown variant `", '`')] {
        while let Some(start) = out.find(open) {
            let from = start + open.len();
            let Some(len) = out[from..].find(close) else { break };
            let quoted = &out[from..from + len];
            let replacement = if quoted.contains(secret) {
                "a value"
            } else {
                "a kept value"
            };
            out.replace_range(start..from + len + 1, replacement);
        }
    }
    out
}

/// A configuration with `secret` in one secret's place, plus arbitrary other lines (so
/// validation often fails on another field first, or on this one), and whether the
/// configuration's `Debug` must hide it (it always must: a password in a service URL is
/// refused by validation without repeating it, and `Debug` shows the URL redacted).
fn secret_in_place() -> impl Strategy<Value = (String, String, bool)> {
    strategies::secret().prop_flat_map(|secret| {
        let places = vec![
            (format!("provider = \"vault\"\naddress = \"https://vault.example:8200\"\n[auth]\nmethod = \"token\"\ntoken = {secret:?}\n"), true),
            (format!("provider = \"vault\"\naddress = \"https://vault.example:8200\"\n[auth]\nmethod = \"approle\"\nrole_id = \"r\"\nsecret_id = {secret:?}\n"), true),
            (format!(
                "provider = \"azure\"\nvault_url = \"https://a.vault.azure.net\"\n[credential]\ntype = \"service_principal\"\n\
                 tenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = {secret:?}\n"
            ), true),
            (format!("provider = \"vault\"\naddress = \"https://user:{secret}@vault.example:8200/x\"\n"), true),
            (format!("provider = \"aws\"\nendpoint = \"ftp://user:{secret}@127.0.0.1:1/x\"\n"), true),
            (format!("provider = \"azure\"\nvault_url = \"https://user:{secret}@a.vault.azure.net/x\"\n"), true),
        ];
        let extra = (prop::sample::select(KEYS), value("x".into())).prop_map(|(k, v)| format!("{k} = {v}\n"));
        (Just(secret), prop::sample::select(places), prop::collection::vec(extra, 0..3)).prop_map(
            |(secret, (place, hidden_in_debug), extra)| {
                // Extra top-level keys go before the place's tables.
                let (head, tables) = place.split_at(place.find('[').unwrap_or(place.len()));
                (secret, format!("{head}{}{tables}", extra.concat()), hidden_in_debug)
            },
        )
    })
}

/// Checks that nothing shown of `text`'s parse or validation repeats `secret` (with
/// `strict`: nor the validation error or, with `debug`, the configuration's `Debug`).
fn never_shows(secret: &str, text: &str, strict: bool, debug: bool) -> Result<(), TestCaseError> {
    match toml::from_str::<StorageConfig>(text) {
        Ok(config) => {
            if debug {
                let debug = format!("{config:?}");
                ensure(!debug.contains(secret), || {
                    format!("{text}\nthe configuration's Debug shows it: {debug}")
                })?;
            }
            if let Err(e) = config.validate() {
                let (shown, debug) = (e.to_string(), format!("{e:?}"));
                ensure(!strict || (!shown.contains(secret) && !debug.contains(secret)), || {
                    format!("{text}\nthe validation error repeats it: {shown} / {debug}")
                })?;
            }
        }
        Err(e) => {
            let message = without_serde_quotes(e.message(), secret);
            ensure(!message.contains(secret), || {
                format!("{text}\nthe parse error repeats it: {message}")
            })?;
        }
    }
    Ok(())
}

#[test]
fn props_storage_config() {
    let mut codec = Codec::new("storage-config");
    codec.check(
        "parsing and validating arbitrary TOML never panics, nor do parse errors of ours echo a value",
        document(),
        |(secret, text)| never_shows(&secret, &text, false, false),
    );
    codec.check(
        "a secret in its place never shows in errors or Debug",
        secret_in_place(),
        |(secret, text, debug)| never_shows(&secret, &text, true, debug),
    );
    codec.report();
}
