//! The command line, as clap derive types.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use nebula_credential::{CredentialId, Timestamp};

use crate::exit;

/// Inspect, move and maintain credentials stored with nebula-credential.
///
/// The storage configuration comes from --config FILE (the TOML `StorageConfig`
/// applications use, plus an optional [key] table) or from the environment
/// (NEBULA_CREDENTIAL_PROVIDER and that backend's variables). The key comes from
/// --key-file, NEBULA_CREDENTIAL_KEY, or a passphrase; secrets are never taken as
/// arguments.
#[derive(Debug, Parser)]
#[command(name = "nebula-cred", version, after_help = exit::HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Storage configuration file (TOML); default: from the environment.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// File holding the key (base64 of 32 bytes); default: --passphrase-file, NEBULA_CREDENTIAL_KEY, else a prompt.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Show the library's log on stderr: -v warnings (each failed operation, files skipped), -vv info, -vvv debug.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// File whose first line is the passphrase, instead of NEBULA_CREDENTIAL_KEY or the
    /// prompt (needs the salt from [key] passphrase_salt or NEBULA_CREDENTIAL_SALT).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "key_file")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Writes (put, delete, import, rotate-key) print no summary; errors and warnings still go to stderr.
    #[arg(long, global = true)]
    pub(crate) quiet: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Store a credential; the value comes from stdin or --from-file, never an argument.
    #[command(
        after_help = "Examples:\n  printf '%s' \"$TOKEN\" | nebula-cred put github_token --tag env=prod\n  \
        nebula-cred put tls_key --from-file key.pem --expires 2027-01-01T00:00:00Z"
    )]
    Put(PutArgs),
    /// Print a credential's value to stdout (refused on a terminal without --reveal).
    #[command(after_help = "Examples:\n  nebula-cred get github_token > token.txt\n  \
        nebula-cred get github_token --metadata\n  nebula-cred get github_token --json | jq -r .value")]
    Get(GetArgs),
    /// List credentials: a table for people, JSON lines with --json.
    #[command(after_help = "Examples:\n  nebula-cred list --tag env=prod\n  nebula-cred list --prefix db_ --json")]
    List(ListArgs),
    /// Exit 0 when the credential exists, 3 when it does not.
    #[command(after_help = "Example:\n  nebula-cred exists github_token && echo present")]
    Exists {
        /// Credential id.
        id: CredentialId,
    },
    /// Delete a credential (succeeds when it is already gone).
    #[command(after_help = "Example:\n  nebula-cred delete github_token")]
    Delete {
        /// Credential id.
        id: CredentialId,
    },
    /// Re-encrypt every credential under a new key, beside live writers.
    #[command(after_help = "Example:\n  nebula-cred keygen --out new.key\n  \
        nebula-cred rotate-key --key-file old.key --new-key-file new.key\n\n\
        Then give applications the new key. Running it again after an interruption finishes the job;\n\
        if you already switched to the new key, pass the previous one with --old-key-file.")]
    RotateKey(RotateArgs),
    /// Copy credentials verbatim from one backend to another.
    #[command(
        after_help = "Examples:\n  nebula-cred migrate --from local.toml --to vault.toml --dry-run\n  \
        nebula-cred migrate --from local.toml --to vault.toml --verify\n\n\
        Records move encrypted and unchanged (no key needed). Running it again after an\n\
        interruption finishes the job: records already on the target are not written again."
    )]
    Migrate(MigrateArgs),
    /// Check the configuration, connectivity and permissions with a probe credential.
    #[command(after_help = "Example:\n  nebula-cred --config vault.toml doctor\n\n\
        The probe is stored under the reserved id `_nebula_cred_doctor_probe` and deleted again.")]
    Doctor,
    /// Create a new key file, or print a new passphrase salt.
    #[command(
        group(ArgGroup::new("what").required(true).args(["out", "salt"])),
        after_help = "Examples:\n  nebula-cred keygen --out prod.key\n  nebula-cred keygen --salt"
    )]
    Keygen(KeygenArgs),
    /// Run a command with credentials in its environment, their values masked in its output.
    Run(crate::run::RunArgs),
    /// Write credentials with their values as JSON Lines or dotenv (a file made 0600, or stdout).
    Export(crate::transfer::ExportArgs),
    /// Store the credentials of a JSON Lines or dotenv file, leaving identical ones alone.
    Import(crate::transfer::ImportArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completion(crate::completion::CompletionArgs),
}

/// `put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// Credential id: 1 to 128 of A-Z a-z 0-9 _ -.
    pub(crate) id: CredentialId,
    /// Values given as arguments: refused without being echoed (they would show in `ps`).
    /// Everything after the id that is not an option lands here, even text starting with
    /// `-` and anything after it, so clap never quotes it back as an unexpected argument.
    #[arg(hide = true, num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) value_argument: Vec<RefusedValue>,
    /// A tag, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Read the value from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub(crate) from_file: Option<PathBuf>,
    /// When the credential expires (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub(crate) expires: Option<Timestamp>,
}

/// `get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// Credential id.
    pub(crate) id: CredentialId,
    /// Print the metadata (version, times, tags) instead of the value.
    #[arg(long)]
    pub(crate) metadata: bool,
    /// Print JSON: the id, the value (or value_base64) and the metadata.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print the value even when stdout is a terminal.
    #[arg(long)]
    pub(crate) reveal: bool,
}

/// `list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only credentials with this tag, KEY=VALUE (repeatable: all must match).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Only ids starting with this.
    #[arg(long, value_name = "P")]
    pub(crate) prefix: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Only the ids, one per line (no metadata is read).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub(crate) ids_only: bool,
}

/// `rotate-key`.
#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// File holding the new key (base64 of 32 bytes).
    #[arg(long, value_name = "FILE")]
    pub(crate) new_key_file: PathBuf,
    /// Files holding older keys some records may still be under (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) old_key_file: Vec<PathBuf>,
}

/// `migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Configuration of the source backend (TOML).
    #[arg(long, value_name = "CFG")]
    pub(crate) from: PathBuf,
    /// Configuration of the target backend (TOML).
    #[arg(long, value_name = "CFG")]
    pub(crate) to: PathBuf,
    /// Only ids starting with this.
    #[arg(long, value_name = "P")]
    pub(crate) prefix: Option<String>,
    /// Only credentials with this tag, KEY=VALUE (repeatable: all must match).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Report what would happen; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Replace target records whose content differs.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Read every migrated record back from the target and compare bytes.
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) verify: bool,
    /// Records copied at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) jobs: usize,
}

/// `keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Write a new random key (base64, mode 0600) to this file; refuses to replace one.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Print a new random passphrase salt (not secret) for [key] passphrase_salt.
    #[arg(long)]
    pub(crate) salt: bool,
}

/// A value typed as an argument, dropped unread: only its presence is kept, so neither
/// `Debug` nor an error can repeat it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefusedValue;

impl From<std::ffi::OsString> for RefusedValue {
    fn from(_: std::ffi::OsString) -> Self {
        RefusedValue
    }
}

/// `KEY=VALUE`, split at the first `=`; the library validates both parts.
fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE, e.g. env=prod".to_string()),
    }
}

/// An RFC 3339 instant, in UTC.
fn parse_time(s: &str) -> Result<Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{e}; use RFC 3339, e.g. 2027-01-01T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_value_argument_is_not_kept() {
        let cli = Cli::try_parse_from(["nebula-cred", "put", "api_key", "hunter2"]).unwrap();
        let Command::Put(put) = &cli.command else { panic!("put") };
        assert!(!put.value_argument.is_empty());
        assert!(!format!("{cli:?}").contains("hunter2"));
    }

    #[test]
    fn tags_and_times_parse() {
        assert_eq!(parse_tag("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=x").is_err());
        assert!(parse_time("2027-01-01T00:00:00+02:00").is_ok());
        assert!(parse_time("tomorrow").is_err());
    }
}
