//! Where the encryption key comes from: `--key-file`, `NEBULA_CREDENTIAL_KEY`, or a
//! passphrase (`--passphrase-file` or a prompt without echo) stretched with Argon2id
//! and the salt from the configuration. Never from the command line.

use std::io::IsTerminal;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nebula_credential::EncryptionKey;
use nebula_credential::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::config::SALT_VAR;
use crate::exit::CliError;

/// Environment variable holding the key: base64 of 32 bytes.
pub(crate) const KEY_VAR: &str = "NEBULA_CREDENTIAL_KEY";

/// Where to look for the key, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySources<'a> {
    /// `--key-file`.
    pub(crate) key_file: Option<&'a Path>,
    /// `--passphrase-file`.
    pub(crate) passphrase_file: Option<&'a Path>,
    /// The passphrase salt (base64) from the configuration or `NEBULA_CREDENTIAL_SALT`.
    pub(crate) salt: Option<&'a str>,
    /// Ask a typed passphrase twice (for writes: a typo would encrypt under a key
    /// nobody has).
    pub(crate) confirm: bool,
}

/// The key: from `--key-file`, else a passphrase from `--passphrase-file`, else
/// `NEBULA_CREDENTIAL_KEY`, else a passphrase typed at a prompt without echo (when
/// stderr is a terminal). Options on the command line beat the environment.
pub(crate) fn load(sources: KeySources<'_>) -> Result<EncryptionKey, CliError> {
    if let Some(path) = sources.key_file {
        return key_file(path);
    }
    // An option given on this command line beats a key left in the environment.
    if let Some(path) = sources.passphrase_file {
        let text = read_secret_file(path, "passphrase")?;
        let first = text.lines().next().unwrap_or_default();
        return from_passphrase(&SecretString::from(first.to_string()), sources.salt);
    }
    if let Ok(value) = std::env::var(KEY_VAR)
        && !value.trim().is_empty()
    {
        return EncryptionKey::from_base64(&SecretString::from(value)).map_err(|e| {
            CliError::Usage(format!(
                "{KEY_VAR} does not hold a key: {e} (it must be base64 of 32 bytes)"
            ))
        });
    }
    if !std::io::stderr().is_terminal() {
        return Err(CliError::Usage(format!(
            "no encryption key: set {KEY_VAR} (base64 of 32 bytes), pass --key-file FILE or \
             --passphrase-file FILE, or run on a terminal to type the passphrase \
             (create a key with `nebula-cred keygen --out FILE`)"
        )));
    }
    let typed = Zeroizing::new(
        crate::prompt::hidden("passphrase: ")
            .map_err(|e| CliError::io("cannot read the passphrase from the terminal", e))?,
    );
    if sources.confirm {
        let again = Zeroizing::new(
            crate::prompt::hidden("passphrase (again): ")
                .map_err(|e| CliError::io("cannot read the passphrase from the terminal", e))?,
        );
        if *again != *typed {
            return Err(CliError::Usage(
                "the two passphrases differ; nothing was written: run the command again \
                 (a typo would encrypt under a key nobody has)"
                    .into(),
            ));
        }
    }
    let passphrase = SecretString::from(typed.as_str().to_string());
    from_passphrase(&passphrase, sources.salt)
}

/// Derives the key from `passphrase` and the configured salt.
fn from_passphrase(passphrase: &SecretString, salt: Option<&str>) -> Result<EncryptionKey, CliError> {
    let salt = salt.ok_or_else(|| {
        CliError::Usage(format!(
            "a passphrase needs a salt: add `[key]` with `passphrase_salt = \"…\"` to the configuration \
             file, or set {SALT_VAR}; create one with `nebula-cred keygen --salt` and keep it with \
             the configuration (the same passphrase and salt give the same key)"
        ))
    })?;
    let salt = STANDARD.decode(salt.trim()).map_err(|_| {
        CliError::Usage("the passphrase salt is not valid base64; create one with `nebula-cred keygen --salt`".into())
    })?;
    EncryptionKey::from_passphrase(passphrase, &salt)
        .map_err(|e| CliError::Usage(format!("cannot derive the key from the passphrase: {e}")))
}

/// Reads a key file (base64 of 32 bytes, surrounding whitespace ignored).
pub(crate) fn key_file(path: &Path) -> Result<EncryptionKey, CliError> {
    let text = read_secret_file(path, "key")?;
    EncryptionKey::from_base64(&SecretString::from(text.to_string()))
        .map_err(|e| CliError::Usage(format!("the key file {} does not hold a key: {e}", path.display())))
}

/// Reads a file holding a secret, warning when others may read it.
fn read_secret_file(path: &Path, what: &str) -> Result<Zeroizing<String>, CliError> {
    // A file named on the command line that cannot be read is bad usage (exit 2), as a
    // missing configuration file is.
    let text = std::fs::read_to_string(path).map(Zeroizing::new).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the {what} file {}: {e}; check the path (create a key with \
             `nebula-cred keygen --out FILE`)",
            path.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: the {what} file {} can be read by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    Ok(text)
}

/// Bytes of a new salt: the least the library accepts.
const SALT_LEN: usize = 16;

/// A fresh random salt for passphrase derivation, base64 of 16 bytes.
pub(crate) fn new_salt() -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt);
    STANDARD.encode(salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_needs_a_valid_salt_and_derives_the_library_key() {
        let pass = SecretString::from("correct horse".to_string());
        assert_eq!(from_passphrase(&pass, None).unwrap_err().code(), crate::exit::USAGE);
        assert!(from_passphrase(&pass, Some("%%%")).is_err());
        let salt = new_salt();
        let key = from_passphrase(&pass, Some(&salt)).unwrap();
        let expected = EncryptionKey::from_passphrase(&pass, &STANDARD.decode(&salt).unwrap()).unwrap();
        assert_eq!(key.key_id(), expected.key_id());
    }

    #[test]
    fn key_file_errors_never_show_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "not-a-key-hunter2").unwrap();
        let e = key_file(&path).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("base64"), "{e}");
    }
}
