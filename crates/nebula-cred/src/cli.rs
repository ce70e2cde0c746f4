//! The command line, as clap derive types.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use nebula_credential::{CredentialId, Timestamp};

use crate::exit;

/// Inspect, move and maintain credentials stored with nebula-credential.
///
/// The storage configuration comes from --config FILE (the TOML `StorageConfig`
/// applications use, plus an optional [key] table and [profiles.NAME] tables), else
/// NEBULA_CRED_CONFIG, else the environment when NEBULA_CREDENTIAL_PROVIDER is set, else
/// the default file ~/.config/nebula-cred/config.toml (under XDG_CONFIG_HOME), else the
/// local store in the platform data directory. `nebula-cred config show` says which.
/// The key comes from --key-file, NEBULA_CREDENTIAL_KEY, or a passphrase; secrets are
/// never taken as arguments.
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
    /// Storage configuration file (TOML); default: NEBULA_CRED_CONFIG, the environment,
    /// or ~/.config/nebula-cred/config.toml (see `config show`).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Use [profiles.NAME] of the configuration file; default: NEBULA_CRED_PROFILE.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// File holding the key (base64 of 32 bytes); default: --passphrase-file, NEBULA_CREDENTIAL_KEY, else a prompt.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Say which store is used, and show the library's log on stderr: -v warnings (each failed operation, files skipped), -vv info, -vvv debug.
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

impl Global {
    /// These options with those of `later` (given further on the command line) on top.
    pub(crate) fn with(&self, later: Global) -> Global {
        // A key source given later replaces the earlier one (the two exclude each other).
        let (key_file, passphrase_file) = match (&later.key_file, &later.passphrase_file) {
            (None, None) => (self.key_file.clone(), self.passphrase_file.clone()),
            _ => (later.key_file, later.passphrase_file),
        };
        Global {
            config: later.config.or_else(|| self.config.clone()),
            profile: later.profile.or_else(|| self.profile.clone()),
            key_file,
            verbose: self.verbose.saturating_add(later.verbose),
            passphrase_file,
            quiet: self.quiet || later.quiet,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Store a credential; the value comes from stdin (or `-`), `@FILE` or --from-file, never an argument.
    #[command(
        after_help = "Examples:\n  printf '%s' \"$TOKEN\" | nebula-cred put github_token --tag env=prod\n  \
        nebula-cred put tls_key @key.pem --expires 90d\n  \
        nebula-cred put github_token - < token.txt --trim\n\n\
        Replacing a value keeps the credential's tags and expiry unless --tag, --clear-tags,\n\
        --expires or --no-expiry change them (stderr says what changed). A value is stored\n\
        under the key of the record it replaces (or of the store's records): another key is\n\
        refused (exit 2) unless --new-key says it is intended."
    )]
    Put(PutArgs),
    /// Print a credential's value to stdout (refused on a terminal without --reveal).
    #[command(after_help = "Examples:\n  nebula-cred get github_token > token.txt\n  \
        nebula-cred get github_token --metadata\n  nebula-cred get github_token --json | jq -r .value")]
    Get(GetArgs),
    /// List credentials: a table for people, one JSON array with --json.
    #[command(
        after_help = "Examples:\n  nebula-cred list --tag env=prod\n  nebula-cred list --prefix db_ --json\n  \
        nebula-cred list --expiring-within 14d\n  nebula-cred list --key-id 3f2a9c0d11e2b7a4\n\n\
        EXPIRES ends with ' (expired)' once the expiry has passed; KEY is the id of the key\n\
        each record is encrypted under."
    )]
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
        nebula-cred rotate-key --dry-run --new-key-file new.key\n  \
        nebula-cred rotate-key --key-file old.key --new-key-file new.key\n\n\
        The safe order: 1. give applications the new key as an additional (old) key, so they\n\
        read both; 2. run rotate-key; 3. make the new key their only key. Processes that hold\n\
        only the old key cannot read what rotate-key re-encrypted. Running it again after an\n\
        interruption finishes the job; if you already switched to the new key, pass the\n\
        previous one with --old-key-file.")]
    RotateKey(RotateArgs),
    /// Copy credentials verbatim from one backend to another.
    #[command(
        after_help = "Examples:\n  nebula-cred migrate --from local.toml --to vault.toml --dry-run\n  \
        nebula-cred --profile prod migrate --to vault.toml --verify\n\n\
        The source is --from, else the global --config/--profile (or NEBULA_CRED_CONFIG).\n\
        Records move encrypted and unchanged (no key needed, so --key-file is refused). Running\n\
        it again after an interruption finishes the job: records already on the target are not\n\
        written again. The source is opened read-only."
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
    /// Show the configuration in use (provider, location, profile, where it came from), without secrets.
    #[command(after_help = "Examples:\n  nebula-cred config show\n  nebula-cred --profile prod config show")]
    Config {
        /// What to do with the configuration.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run a command with credentials in its environment, their values masked in its output.
    Run(crate::run::RunArgs),
    /// Write credentials with their values as JSON Lines or dotenv (a file made 0600, or stdout).
    Export(crate::transfer::ExportArgs),
    /// Store the credentials of a JSON Lines or dotenv file, leaving identical ones alone.
    Import(crate::transfer::ImportArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completion(crate::completion::CompletionArgs),
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// Print the resolved provider, location, profile and source; never a secret.
    Show,
}

/// `put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// Credential id: 1 to 128 of A-Z a-z 0-9 _ -.
    pub(crate) id: CredentialId,
    /// `-` (the value from stdin) or `@FILE` (from FILE). Anything else is a value typed
    /// as an argument: refused without being echoed (it would show in `ps`). Everything
    /// after the id that is not an option lands here, even text starting with `-`, so clap
    /// never quotes it back as an unexpected argument.
    #[arg(value_name = "-|@FILE", num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) value_argument: Vec<ValueArgument>,
    /// A tag, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Read the value from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub(crate) from_file: Option<PathBuf>,
    /// When the credential expires: RFC 3339 (2027-01-01T00:00:00Z), a date (2027-01-01,
    /// midnight UTC) or a duration from now (90d, 12h, 30m, 2w).
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    pub(crate) expires: Option<Timestamp>,
    /// Remove the expiry of the credential being replaced.
    #[arg(long, conflicts_with = "expires")]
    pub(crate) no_expiry: bool,
    /// Drop the tags of the credential being replaced (--tag adds the new ones).
    #[arg(long)]
    pub(crate) clear_tags: bool,
    /// Remove line breaks (\n, \r\n) at the end of the value; by default it is stored verbatim.
    #[arg(long)]
    pub(crate) trim: bool,
    /// Store under this key even though the credential (or, for a new id, the store) is
    /// under another key: for a store deliberately holding several keys.
    #[arg(long)]
    pub(crate) new_key: bool,
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
    /// One JSON array of objects (the shape of `get --metadata --json`).
    #[arg(long)]
    pub(crate) json: bool,
    /// Only the ids, one per line.
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub(crate) ids_only: bool,
    /// Only credentials whose expiry has passed.
    #[arg(long)]
    pub(crate) expired: bool,
    /// Only credentials expiring within this long from now (e.g. 14d, 12h), or already expired.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expired")]
    pub(crate) expiring_within: Option<chrono::Duration>,
    /// Only credentials encrypted under the key with this id (as shown by the KEY column).
    #[arg(long, value_name = "KEY_ID")]
    pub(crate) key_id: Option<String>,
}

/// `rotate-key`.
#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// File holding the new key (base64 of 32 bytes).
    #[arg(long, value_name = "FILE", required_unless_present = "dry_run")]
    pub(crate) new_key_file: Option<PathBuf>,
    /// Count the records under each key id (and, with --new-key-file, how many would be
    /// re-encrypted); write nothing, need no key.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Files holding older keys some records may still be under (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) old_key_file: Vec<PathBuf>,
}

/// `migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Configuration of the source backend (TOML); default: the global --config/--profile.
    #[arg(long, value_name = "CFG")]
    pub(crate) from: Option<PathBuf>,
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

/// What followed the id of `put`: the usual stdin and file markers, or a value typed as
/// an argument, dropped unread (only its presence is kept, so neither `Debug` nor an
/// error can repeat it).
#[derive(Debug, Clone)]
pub(crate) enum ValueArgument {
    /// `-`: the value comes from stdin.
    Stdin,
    /// `@FILE`: the value comes from FILE.
    File(PathBuf),
    /// Anything else: a value (refused, never shown) or, after a marker, put's options,
    /// parsed again by [`crate::commands::check_put`].
    Other(Hidden),
}

/// An argument kept only to be parsed again as options; `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Hidden(pub(crate) std::ffi::OsString);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

impl From<std::ffi::OsString> for ValueArgument {
    fn from(arg: std::ffi::OsString) -> Self {
        if arg == "-" {
            return ValueArgument::Stdin;
        }
        match arg.to_str().and_then(|s| s.strip_prefix('@')) {
            Some(path) if !path.is_empty() => ValueArgument::File(PathBuf::from(path)),
            _ => ValueArgument::Other(Hidden(arg)),
        }
    }
}

/// `KEY=VALUE`, split at the first `=`; the library validates both parts.
fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE, e.g. env=prod".to_string()),
    }
}

/// An RFC 3339 instant, a date (`2027-01-01`, midnight UTC), or a duration from now
/// (`30d`), in UTC.
pub(crate) fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(after) = parse_duration(s) {
        return chrono::Utc::now()
            .checked_add_signed(after)
            .ok_or_else(|| format!("{s} from now is out of range"));
    }
    Err(format!(
        "'{s}' is not a time: use RFC 3339 (2027-01-01T00:00:00Z), a date (2027-01-01, midnight UTC) \
         or a duration from now (90d, 12h, 30m, 2w)"
    ))
}

/// A duration: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`30d`, `12h`).
pub(crate) fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let usage = || format!("'{s}' is not a duration: use a number and a unit s, m, h, d or w, e.g. 14d or 12h");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (number, unit) = s.split_at(split);
    let n: i64 = number.parse().map_err(|_| usage())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(usage()),
    };
    n.checked_mul(seconds)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(usage)
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
        assert_eq!(
            parse_time("2027-01-01").unwrap().to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        assert!(parse_time("30d").unwrap() > chrono::Utc::now() + chrono::Duration::days(29));
        assert_eq!(parse_duration("12h").unwrap(), chrono::Duration::hours(12));
        assert_eq!(parse_duration("2w").unwrap(), chrono::Duration::days(14));
        for bad in ["", "d", "12", "12y", "-1d", "1.5d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
