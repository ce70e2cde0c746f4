//! Loading a [`StorageConfig`] from a TOML file or the environment, plus the CLI's own
//! `[key]` table (the passphrase salt).

use std::path::Path;

use nebula_credential::StorageConfig;
use serde::Deserialize;

use crate::exit::CliError;

/// Environment variable holding the passphrase salt when the configuration comes from
/// the environment (base64 of at least 16 bytes).
pub(crate) const SALT_VAR: &str = "NEBULA_CREDENTIAL_SALT";

/// The `[key]` table of a configuration file: what `nebula-cred` needs besides the
/// storage settings. Removed before the rest is read as a `StorageConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyTable {
    /// Salt of the Argon2id passphrase derivation, base64 of at least 16 random bytes.
    passphrase_salt: Option<String>,
}

/// A configuration and where it came from.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The storage settings.
    pub(crate) storage: StorageConfig,
    /// The passphrase salt (base64), if configured.
    pub(crate) salt: Option<String>,
}

/// The configuration of the environment (`NEBULA_CREDENTIAL_PROVIDER` and that backend's
/// variables), with the salt of `NEBULA_CREDENTIAL_SALT`.
pub(crate) fn load_env() -> Result<Loaded, CliError> {
    Ok(Loaded {
        storage: StorageConfig::from_env().map_err(nebula_credential::StorageError::from)?,
        salt: env_salt(),
    })
}

/// `NEBULA_CREDENTIAL_SALT`, when set and not blank.
fn env_salt() -> Option<String> {
    std::env::var(SALT_VAR).ok().filter(|s| !s.trim().is_empty())
}

/// Reads `path` (no profile): the TOML of a `StorageConfig`, with an optional `[key]` table.
pub(crate) fn load_file(path: &Path) -> Result<Loaded, CliError> {
    load_profile(path, None)
}

/// Reads `path`: the TOML of a `StorageConfig` with an optional `[key]` table at the top,
/// and named ones under `[profiles.<name>]` (each a `StorageConfig` with its own optional
/// `[key]`). `profile` selects one; without it the top level is used. The salt comes from
/// the profile's `[key]`, else the top level's, else `NEBULA_CREDENTIAL_SALT`.
pub(crate) fn load_profile(path: &Path, profile: Option<&str>) -> Result<Loaded, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the configuration file {shown}: {e}; check the path given to --config, \
             NEBULA_CRED_CONFIG, --from or --to"
        ))
    })?;
    // The file may hold secrets (tokens): report where a syntax error is, never the line itself.
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {column}")
            })
            .unwrap_or_default();
        CliError::Usage(format!(
            "the configuration file {shown} is not valid TOML{at}: {}",
            e.message()
        ))
    })?;
    let top_key = key_table(&mut table, &shown.to_string(), "[key]")?;
    let profiles = match table.remove("profiles") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            return Err(CliError::Usage(format!(
                "`profiles` in {shown} must be tables: [profiles.NAME] with provider = \"…\" and its settings"
            )));
        }
        None => toml::Table::new(),
    };
    let names = || profiles.keys().cloned().collect::<Vec<_>>().join(", ");
    let (mut table, origin) = match profile {
        Some(name) => match profiles.get(name) {
            Some(toml::Value::Table(t)) => (t.clone(), format!("{shown}, profile {name}")),
            _ if profiles.is_empty() => {
                return Err(CliError::Usage(format!(
                    "profile '{name}' was asked for (--profile or NEBULA_CRED_PROFILE) but {shown} has no \
                     [profiles.NAME] tables; add [profiles.{name}] or drop the profile"
                )));
            }
            _ => {
                return Err(CliError::Usage(format!(
                    "{shown} has no profile '{name}'; its profiles: {}",
                    names()
                )));
            }
        },
        None if table.is_empty() && !profiles.is_empty() => {
            return Err(CliError::Usage(format!(
                "{shown} holds only profiles ({}); choose one with --profile NAME or NEBULA_CRED_PROFILE, \
                 or add top-level settings for the default",
                names()
            )));
        }
        None => (table, shown.to_string()),
    };
    let section = profile.map_or_else(|| "[key]".to_string(), |p| format!("[profiles.{p}.key]"));
    let own_key = key_table(&mut table, &shown.to_string(), &section)?;
    let storage: StorageConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
        CliError::Usage(format!(
            "the configuration {origin} is not a valid storage configuration: {}; \
             start it with provider = \"local\" (or memory, aws, …) and that backend's settings",
            without_strings(e.message().trim_end())
        ))
    })?;
    Ok(Loaded {
        storage,
        salt: own_key.passphrase_salt.or(top_key.passphrase_salt).or_else(env_salt),
    })
}

/// Removes and reads the `[key]` table of `table`.
fn key_table(table: &mut toml::Table, shown: &str, section: &str) -> Result<KeyTable, CliError> {
    match table.remove("key") {
        Some(value) => value.try_into::<KeyTable>().map_err(|e| {
            CliError::Usage(format!(
                "the {section} table of {shown} is invalid: {}; it may only hold passphrase_salt = \"<base64>\"",
                without_strings(e.message())
            ))
        }),
        None => Ok(KeyTable::default()),
    }
}

/// `message` with each string value serde quotes (`string "…"`, as in "invalid type:
/// string \"…\", expected usize") replaced by `a string`: the value may be a token put in
/// the wrong field. Names of fields and variants (in backticks) stay.
fn without_strings(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(QUOTED) {
        out.push_str(&rest[..start]);
        out.push_str("a string");
        // Skip the Debug-escaped string up to its closing, unescaped quote.
        let mut chars = rest[start + QUOTED.len()..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(start + QUOTED.len() + i + 1);
                    break;
                }
                _ => {}
            }
        }
        // An unterminated quote hides everything after it.
        rest = end.map_or("", |end| &rest[end..]);
    }
    out.push_str(rest);
    without_variant(&out)
}

/// `message` with the value of serde's ``unknown variant `…`, expected …`` replaced by `a
/// value`: a value put in an enum's field (`delete_mode`, `provider`, …) is quoted raw.
fn without_variant(message: &str) -> String {
    const VARIANT: &str = "unknown variant `";
    let Some(start) = message.find(VARIANT) else {
        return message.to_string();
    };
    let value = &message[start + VARIANT.len()..];
    // The value is not escaped: it ends where serde's own text resumes, the last such place.
    let end = ["`, expected", "`, there are no variants"]
        .iter()
        .filter_map(|tail| value.rfind(tail).map(|at| at + 1))
        .max();
    let rest = end.map_or("", |end| &value[end..]);
    format!("{}unknown variant (a value){rest}", &message[..start])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn key_table_is_split_from_the_storage_config() {
        let (_d, path) = write("provider = \"memory\"\n[key]\npassphrase_salt = \"c2FsdHNhbHRzYWx0c2FsdA==\"\n");
        let loaded = load_file(&path).unwrap();
        assert_eq!(loaded.storage.provider_name(), "memory");
        assert_eq!(loaded.salt.as_deref(), Some("c2FsdHNhbHRzYWx0c2FsdA=="));
    }

    #[test]
    fn syntax_errors_name_the_place_not_the_line() {
        let (_d, path) = write("provider = \"memory\"\ntoken = \"hunter2-secret\n");
        let e = load_file(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn type_errors_never_quote_the_value() {
        // A token pasted into the wrong field must not be echoed back by the type error.
        for text in [
            "provider = \"local\"\nbase_path = \"/x\"\nmax_payload_bytes = \"hunter2 \\\"quoted\\\" secret\"\n",
            "provider = \"local\"\ncreate_dir = \"hunter2\"\n",
            "provider = \"local\"\n[timeouts]\nread_ms = \"hunter2\"\n",
        ] {
            let (_d, path) = write(text);
            let e = load_file(&path).unwrap_err();
            assert_eq!(e.code(), crate::exit::USAGE);
            let e = e.to_string();
            assert!(!e.contains("hunter2") && !e.contains("secret"), "{e}");
            assert!(e.contains("invalid type: a string, expected"), "{e}");
        }
        let (_d, path) = write("provider = \"memory\"\n[key]\npassphrase_salt = 7\n");
        assert!(load_file(&path).unwrap_err().to_string().contains("expected a string"));
    }

    /// Found by the configuration properties (`props_storage_config`): serde quotes the
    /// value of an enum field raw (``unknown variant `…` ``), so a token pasted there showed.
    #[test]
    fn unknown_variants_never_quote_the_value() {
        for text in [
            "provider = \"hunter2-secret\"\n",
            "provider = \"hunter2`, expected x`, there are no variants`, expected\"\n",
        ] {
            let (_d, path) = write(text);
            let e = load_file(&path).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && !e.contains("secret"), "{e}");
            assert!(e.contains("unknown variant (a value), expected"), "{e}");
        }
        assert_eq!(
            without_variant("unknown variant `a`b`, there are no variants"),
            "unknown variant (a value), there are no variants"
        );
        assert_eq!(without_variant("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn profiles_are_selected_by_name_with_their_own_salt() {
        let (_d, path) = write(
            "provider = \"memory\"\n[key]\npassphrase_salt = \"dG9wdG9wdG9wdG9wdG9wdA==\"\n\
             [profiles.a]\nprovider = \"memory\"\n[profiles.a.key]\npassphrase_salt = \"YWFhYWFhYWFhYWFhYWFhYQ==\"\n\
             [profiles.b]\nprovider = \"memory\"\n",
        );
        assert_eq!(
            load_file(&path).unwrap().salt.as_deref(),
            Some("dG9wdG9wdG9wdG9wdG9wdA==")
        );
        let a = load_profile(&path, Some("a")).unwrap();
        assert_eq!(a.salt.as_deref(), Some("YWFhYWFhYWFhYWFhYWFhYQ=="));
        // A profile without [key] takes the file's.
        let b = load_profile(&path, Some("b")).unwrap();
        assert_eq!(b.salt.as_deref(), Some("dG9wdG9wdG9wdG9wdG9wdA=="));
        let e = load_profile(&path, Some("c")).unwrap_err();
        assert_eq!(e.code(), crate::exit::USAGE);
        assert!(e.to_string().contains("a, b"), "{e}");
        // Only profiles: one must be chosen.
        let (_d, path) = write("[profiles.a]\nprovider = \"memory\"\n");
        assert!(load_file(&path).unwrap_err().to_string().contains("--profile"));
        assert!(load_profile(&path, Some("a")).is_ok());
        // A profile that is not a storage configuration names the profile.
        let (_d, path) = write("[profiles.a]\nprovider = \"memory\"\nbase_path = \"/x\"\n");
        let e = load_profile(&path, Some("a")).unwrap_err().to_string();
        assert!(e.contains("profile a") && e.contains("base_path"), "{e}");
    }

    #[test]
    fn unknown_fields_and_providers_are_usage_errors() {
        let (_d, path) = write("provider = \"memory\"\nbase_path = \"/x\"\n");
        let e = load_file(&path).unwrap_err();
        assert_eq!(e.code(), crate::exit::USAGE);
        assert!(e.to_string().contains("base_path"), "{e}");
        let (_d, path) = write("provider = \"memory\"\n[key]\nsalt = \"x\"\n");
        assert!(load_file(&path).unwrap_err().to_string().contains("passphrase_salt"));
    }
}
