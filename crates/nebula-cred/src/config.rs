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
    /// `FILE` or `the environment`, for messages.
    pub(crate) origin: String,
}

/// The configuration of `--config FILE`, else of the environment.
pub(crate) fn load(path: Option<&Path>) -> Result<Loaded, CliError> {
    match path {
        Some(path) => load_file(path),
        None => Ok(Loaded {
            storage: StorageConfig::from_env().map_err(nebula_credential::StorageError::from)?,
            salt: std::env::var(SALT_VAR).ok().filter(|s| !s.trim().is_empty()),
            origin: "the environment (NEBULA_CREDENTIAL_PROVIDER and the backend's variables)".into(),
        }),
    }
}

/// Reads `path`: the TOML of a `StorageConfig`, with an optional `[key]` table.
pub(crate) fn load_file(path: &Path) -> Result<Loaded, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the configuration file {shown}: {e}; check the path given to --config, --from or --to"
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
    let key = match table.remove("key") {
        Some(value) => value.try_into::<KeyTable>().map_err(|e| {
            CliError::Usage(format!(
                "the [key] table of {shown} is invalid: {}; it may only hold passphrase_salt = \"<base64>\"",
                without_strings(e.message())
            ))
        })?,
        None => KeyTable::default(),
    };
    let storage: StorageConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
        CliError::Usage(format!(
            "the configuration file {shown} is not a valid storage configuration: {}; \
             start it with provider = \"local\" (or memory, aws, …) and that backend's settings",
            without_strings(e.message().trim_end())
        ))
    })?;
    Ok(Loaded {
        storage,
        salt: key.passphrase_salt,
        origin: shown.to_string(),
    })
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
    fn unknown_fields_and_providers_are_usage_errors() {
        let (_d, path) = write("provider = \"memory\"\nbase_path = \"/x\"\n");
        let e = load_file(&path).unwrap_err();
        assert_eq!(e.code(), crate::exit::USAGE);
        assert!(e.to_string().contains("base_path"), "{e}");
        let (_d, path) = write("provider = \"memory\"\n[key]\nsalt = \"x\"\n");
        assert!(load_file(&path).unwrap_err().to_string().contains("passphrase_salt"));
    }
}
