//! Exit statuses of `nebula-cred`, and the error every command returns.

use std::process::ExitCode;

use nebula_credential::{ErrorKind, StorageError};

/// The command did what was asked.
pub const OK: u8 = 0;
/// An error not covered below: a backend failure, I/O on stdin/stdout, a value that cannot
/// be decrypted with the key given (`get`), a value too large for the backend, a corrupted
/// record.
pub const ERROR: u8 = 1;
/// Bad usage, fixed by changing the command line or the configuration: an unknown option;
/// an invalid id, tag, time or duration; an invalid configuration; a file named on the
/// command line (configuration, key, passphrase, value) that cannot be read; no key; a
/// `put` under another key than the store's without `--new-key`; passphrases that differ.
pub const USAGE: u8 = 2;
/// The credential does not exist (`get`, `exists`).
pub const NOT_FOUND: u8 = 3;
/// A conflict: `migrate` left target records that differ (no `--overwrite`), or another
/// writer got there first.
pub const CONFLICT: u8 = 4;
/// Permission denied or authentication failed, including a store that can be read but not
/// written (a directory without write permission, a read-only file system) for a write;
/// the message names what to grant.
pub const DENIED: u8 = 5;
/// Partly done: some credentials failed (`migrate`, `rotate-key`, `list`), or `doctor`
/// found the backend misbehaving (a record not read back verbatim, not listed, not
/// deleted); the summary lists which and why. Otherwise `doctor` exits with the status
/// of its first failing step's error.
pub const INCOMPLETE: u8 = 6;
/// Temporarily unavailable (timeout, unreachable, throttled): retry later.
pub const UNAVAILABLE: u8 = 7;

/// The exit statuses as shown by `--help`.
pub(crate) const HELP: &str = "\
Exit status:
  0  success
  1  error: backend failure, I/O, a value the key cannot decrypt, a value too large
  2  usage: bad arguments; invalid id, tag, time or configuration; a config, key,
     passphrase or value file that cannot be read; no key; put under another
     key than the store's without --new-key
  3  not found (get, exists)
  4  conflict: target records left different (migrate without --overwrite),
     or another writer got there first
  5  permission denied or authentication failed; a write to a store that can
     only be read (read-only directory or file system)
  6  incomplete: some credentials failed (migrate, rotate-key, list),
     or a doctor step found the backend misbehaving
  7  temporarily unavailable (timeout, unreachable, throttled): retry later
doctor exits with the status of its first failing step (5: a permission is missing).";

/// The exit status for an error of kind `kind`.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Conflict => CONFLICT,
        ErrorKind::PermissionDenied | ErrorKind::AuthenticationFailed => DENIED,
        ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::Throttled => UNAVAILABLE,
        ErrorKind::Invalid | ErrorKind::InvalidName | ErrorKind::Config => USAGE,
        _ => ERROR,
    }
}

/// Why a command failed. `Display` is the library's message or ours: never a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The library refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Bad usage, with what to do instead.
    #[error("{0}")]
    Usage(String),
    /// Local I/O (config, key or value files, stdin, stdout).
    #[error("{what}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Some credentials failed; the summary printed before says which.
    #[error("{0}")]
    Incomplete(String),
    /// Some records were left different; the summary printed before says which.
    #[error("{0}")]
    Conflict(String),
    /// Ends with this status and nothing more to say (the output already said it).
    #[error("")]
    Quiet(u8),
    /// A check failed with the given exit status; the report printed before says why.
    #[error("{message}")]
    Failed {
        /// The exit status.
        code: u8,
        /// What failed.
        message: String,
    },
}

impl CliError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            what: what.into(),
            source,
        }
    }

    /// The exit status this error ends the process with.
    pub(crate) fn code(&self) -> u8 {
        match self {
            CliError::Storage(e) => for_kind(e.kind()),
            CliError::Usage(_) => USAGE,
            CliError::Io { .. } => ERROR,
            CliError::Incomplete(_) => INCOMPLETE,
            CliError::Conflict(_) => CONFLICT,
            CliError::Failed { code, .. } => *code,
            CliError::Quiet(code) => *code,
        }
    }

    /// The message and its causes, one per line, for stderr.
    pub(crate) fn report(&self) -> String {
        let mut text = format!("error: {self}");
        let mut source = std::error::Error::source(self);
        let mut seen = self.to_string();
        while let Some(cause) = source {
            let line = cause.to_string();
            if !line.is_empty() && !seen.contains(&line) {
                text.push_str(&format!("\n  caused by: {line}"));
                seen.push_str(&line);
            }
            source = cause.source();
        }
        text
    }
}

impl From<CliError> for ExitCode {
    fn from(e: CliError) -> Self {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nebula_credential::{CredentialId, Operation};

    #[test]
    fn kinds_map_to_documented_statuses() {
        let id: CredentialId = "x".parse().unwrap();
        let cases = [
            (StorageError::not_found("local", &id), NOT_FOUND),
            (StorageError::conflict("local", &id, "r"), CONFLICT),
            (
                StorageError::permission_denied("aws", Operation::Store, Some(&id), "grant"),
                DENIED,
            ),
            (StorageError::authentication_failed("aws", "log in"), DENIED),
            (StorageError::unavailable("aws", Operation::List, None), UNAVAILABLE),
            (StorageError::throttled("aws", Operation::List, None), UNAVAILABLE),
            (StorageError::too_large("aws", &id, 2, 1), ERROR),
        ];
        for (e, code) in cases {
            assert_eq!(CliError::from(e).code(), code);
        }
        assert_eq!(CliError::Usage("u".into()).code(), USAGE);
        assert!(HELP.lines().count() > 8);
    }
}
