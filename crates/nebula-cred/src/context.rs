//! One context, set once: which configuration a command uses (and why), opening its store
//! read-only or read-write, and loading its key. Every command that touches a store goes
//! through here, so `--config`, `NEBULA_CRED_CONFIG`, the default file, profiles and the
//! environment mean the same everywhere.
//!
//! Where the configuration comes from, first match wins:
//! 1. `--config FILE`;
//! 2. `NEBULA_CRED_CONFIG`;
//! 3. the environment, when `NEBULA_CREDENTIAL_PROVIDER` is set;
//! 4. the default file `$XDG_CONFIG_HOME/nebula-cred/config.toml` (or
//!    `~/.config/nebula-cred/config.toml`), when it exists;
//! 5. the environment's defaults: the local backend under the platform data directory
//!    (`NEBULA_LOCAL_BASE_PATH` moves it). Only this case is *implicit*: results that
//!    look empty then say on stderr where the CLI looked.
//!
//! A profile (`--profile NAME`, else `NEBULA_CRED_PROFILE`) selects `[profiles.NAME]`
//! of the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nebula_credential::{EncryptionKey, StorageConfig, StorageProvider};

use crate::cli::Global;
use crate::config::{self, Loaded};
use crate::exit::CliError;
use crate::key;

/// Environment variable naming the configuration file (as `--config`).
pub(crate) const CONFIG_VAR: &str = "NEBULA_CRED_CONFIG";
/// Environment variable naming the profile (as `--profile`).
pub(crate) const PROFILE_VAR: &str = "NEBULA_CRED_PROFILE";
/// Environment variable selecting a backend configured by the environment.
const PROVIDER_VAR: &str = "NEBULA_CREDENTIAL_PROVIDER";

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `--config FILE`.
    Flag(PathBuf),
    /// `NEBULA_CRED_CONFIG`.
    EnvFile(PathBuf),
    /// The default file under the XDG configuration directory.
    DefaultFile(PathBuf),
    /// `NEBULA_CREDENTIAL_PROVIDER` and the backend's variables.
    Environment,
    /// Nothing given: the environment's defaults.
    Implicit,
}

/// The resolved configuration of this run.
#[derive(Debug)]
pub(crate) struct Context {
    /// The storage settings and salt.
    pub(crate) loaded: Loaded,
    /// Where they came from.
    pub(crate) source: Source,
    /// The profile used, if any.
    pub(crate) profile: Option<String>,
}

/// A value of an environment variable, unless unset or blank.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The default configuration file: `$XDG_CONFIG_HOME/nebula-cred/config.toml`, else
/// `$HOME/.config/nebula-cred/config.toml`.
pub(crate) fn default_file() -> Option<PathBuf> {
    let base = env_var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env_var("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("nebula-cred").join("config.toml"))
}

/// Resolves the configuration from the global options and the environment.
pub(crate) fn resolve(global: &Global) -> Result<Context, CliError> {
    let profile = global.profile.clone().or_else(|| env_var(PROFILE_VAR));
    let file = |path: PathBuf, source: fn(PathBuf) -> Source| -> Result<Context, CliError> {
        Ok(Context {
            loaded: config::load_profile(&path, profile.as_deref())?,
            source: source(path),
            profile: profile.clone(),
        })
    };
    if let Some(path) = &global.config {
        return file(path.clone(), Source::Flag);
    }
    if let Some(path) = env_var(CONFIG_VAR) {
        return file(PathBuf::from(path), Source::EnvFile);
    }
    if env_var(PROVIDER_VAR).is_none()
        && let Some(path) = default_file().filter(|p| p.is_file())
    {
        return file(path, Source::DefaultFile);
    }
    if let Some(name) = &profile {
        return Err(CliError::Usage(format!(
            "profile '{name}' was asked for (--profile or {PROFILE_VAR}) but no configuration file was given: \
             profiles live in --config FILE, {CONFIG_VAR} or {}",
            default_file().map_or_else(
                || "~/.config/nebula-cred/config.toml".into(),
                |p| p.display().to_string()
            )
        )));
    }
    let explicit = [PROVIDER_VAR, "NEBULA_LOCAL_BASE_PATH", "NEBULA_CREDENTIAL_DIR"]
        .iter()
        .any(|v| env_var(v).is_some());
    Ok(Context {
        loaded: config::load_env()?,
        source: if explicit {
            Source::Environment
        } else {
            Source::Implicit
        },
        profile: None,
    })
}

impl Context {
    /// The storage settings.
    pub(crate) fn storage(&self) -> &StorageConfig {
        &self.loaded.storage
    }

    /// Whether nothing chose this configuration (see [`Source::Implicit`]).
    pub(crate) fn implicit(&self) -> bool {
        self.source == Source::Implicit
    }

    /// How the configuration was chosen, for people.
    pub(crate) fn source_text(&self) -> String {
        match &self.source {
            Source::Flag(p) => format!("--config {}", p.display()),
            Source::EnvFile(p) => format!("{CONFIG_VAR}={}", p.display()),
            Source::DefaultFile(p) => format!("the default file {}", p.display()),
            Source::Environment => "the environment (NEBULA_CREDENTIAL_PROVIDER and the backend's variables)".into(),
            Source::Implicit => {
                format!("the defaults (no --config, {CONFIG_VAR}, default file or {PROVIDER_VAR} was given)")
            }
        }
    }

    /// Says on stderr where the CLI looked, when that was not chosen by anyone: for
    /// results that look empty (an empty list, a credential not found).
    pub(crate) fn hint_where(&self) {
        if self.implicit() {
            eprintln!(
                "hint: no configuration was given, so the {} store at {} was used; give --config FILE, \
                 set {CONFIG_VAR}, or create {} to use another",
                self.storage().provider_name(),
                location(self.storage()),
                default_file().map_or_else(|| "a default file".into(), |p| p.display().to_string())
            );
        }
    }

    /// The line `-v` and `doctor` print: provider, location, profile and source.
    pub(crate) fn describe(&self) -> String {
        format!(
            "using {} at {}{} (configuration from {})",
            self.storage().provider_name(),
            location(self.storage()),
            self.profile
                .as_ref()
                .map_or_else(String::new, |p| format!(", profile {p}")),
            self.source_text()
        )
    }

    /// Loads the key: `--key-file`, `--passphrase-file`, `NEBULA_CREDENTIAL_KEY`, else a
    /// passphrase prompt, asked twice when `for_write` (a typo would encrypt under a key
    /// nobody has).
    pub(crate) fn load_key(&self, global: &Global, for_write: bool) -> Result<EncryptionKey, CliError> {
        key::load(key::KeySources {
            key_file: global.key_file.as_deref(),
            passphrase_file: global.passphrase_file.as_deref(),
            salt: self.loaded.salt.as_deref(),
            confirm: for_write,
        })
    }

    /// Opens the store to write: creates the local directory when configured to.
    pub(crate) async fn open_read_write(&self) -> Result<Arc<dyn StorageProvider>, CliError> {
        Ok(nebula_credential::open(self.storage()).await?)
    }

    /// Opens the store to read only: nothing is created, probed or cleaned up. A local
    /// directory that does not exist yet is an empty store (nothing was stored there),
    /// not an error, so `exists` says 3 and `list` prints an empty table.
    pub(crate) async fn open_read_only(&self) -> Result<Arc<dyn StorageProvider>, CliError> {
        open_read_only(self.storage()).await
    }
}

/// The ids of the credentials with every tag of `tags` and the id prefix `prefix` (both
/// validated first), sorted: the selection of `list`, `migrate` and the commands that take
/// `--tag`/`--prefix`.
pub(crate) async fn select_ids(
    provider: &dyn StorageProvider,
    tags: &[(String, String)],
    prefix: Option<&str>,
) -> Result<Vec<nebula_credential::CredentialId>, CliError> {
    let mut filter = nebula_credential::CredentialFilter::new();
    filter.tags = tags.iter().cloned().collect();
    filter.id_prefix = prefix.map(str::to_string);
    filter.validate().map_err(nebula_credential::StorageError::from)?;
    Ok(provider.list(&filter).await?)
}

/// Opens `storage` read-only; a missing local directory is an empty store.
pub(crate) async fn open_read_only(storage: &StorageConfig) -> Result<Arc<dyn StorageProvider>, CliError> {
    if let Some(dir) = local_dir(storage)
        && !dir.exists()
    {
        tracing::info!(dir = %dir.display(), "the local directory does not exist: an empty store");
        return Ok(Arc::new(MissingLocalDir::default()));
    }
    Ok(nebula_credential::open_read_only(storage).await?)
}

/// A local store whose directory does not exist, opened read-only: empty, and named
/// `local` in errors ("not found on local"), not after the stand-in it reads through.
#[derive(Debug, Default)]
struct MissingLocalDir(nebula_credential::MemoryProvider);

impl MissingLocalDir {
    fn named(
        e: nebula_credential::StorageError,
        id: &nebula_credential::CredentialId,
    ) -> nebula_credential::StorageError {
        if e.is_not_found() {
            nebula_credential::StorageError::not_found("local", id)
        } else {
            e
        }
    }
}

#[nebula_credential::async_trait]
impl StorageProvider for MissingLocalDir {
    fn provider_name(&self) -> &'static str {
        "local"
    }

    fn capabilities(&self) -> nebula_credential::Capabilities {
        self.0.capabilities()
    }

    async fn store_if(
        &self,
        id: &nebula_credential::CredentialId,
        data: &nebula_credential::EncryptedData,
        metadata: &nebula_credential::CredentialMetadata,
        precondition: &nebula_credential::Precondition,
    ) -> Result<nebula_credential::Revision, nebula_credential::StorageError> {
        self.0.store_if(id, data, metadata, precondition).await
    }

    async fn retrieve(
        &self,
        id: &nebula_credential::CredentialId,
    ) -> Result<nebula_credential::Stored, nebula_credential::StorageError> {
        self.0.retrieve(id).await.map_err(|e| Self::named(e, id))
    }

    async fn revision(
        &self,
        id: &nebula_credential::CredentialId,
    ) -> Result<nebula_credential::Revision, nebula_credential::StorageError> {
        self.0.revision(id).await.map_err(|e| Self::named(e, id))
    }

    async fn delete(&self, id: &nebula_credential::CredentialId) -> Result<(), nebula_credential::StorageError> {
        self.0.delete(id).await
    }

    async fn list(
        &self,
        filter: &nebula_credential::CredentialFilter,
    ) -> Result<Vec<nebula_credential::CredentialId>, nebula_credential::StorageError> {
        self.0.list(filter).await
    }

    async fn exists(&self, id: &nebula_credential::CredentialId) -> Result<bool, nebula_credential::StorageError> {
        self.0.exists(id).await
    }
}

/// The directory of a local configuration (read through its serialized form, so this
/// builds whichever backends are compiled in).
fn local_dir(storage: &StorageConfig) -> Option<PathBuf> {
    if storage.provider_name() != "local" {
        return None;
    }
    let value = serde_json::to_value(storage).ok()?;
    value.get("base_path")?.as_str().map(PathBuf::from)
}

/// Fields that say where a backend keeps its records, in the order shown; none is secret.
const LOCATION_FIELDS: [&str; 8] = [
    "base_path",
    "endpoint",
    "region",
    "mount_path",
    "namespace",
    "kubeconfig_path",
    "context",
    "secret_prefix",
];

/// Where `storage` keeps its records, e.g. `/home/u/.local/share/…/credentials` or
/// `endpoint https://vault:8200, mount_path secret`. Only the fields above: never a secret.
pub(crate) fn location(storage: &StorageConfig) -> String {
    if let Some(dir) = local_dir(storage) {
        return dir.display().to_string();
    }
    let value = serde_json::to_value(storage).unwrap_or_default();
    let parts: Vec<String> = LOCATION_FIELDS
        .iter()
        .filter_map(|field| match value.get(field)? {
            serde_json::Value::String(s) if !s.is_empty() && *field == "endpoint" => {
                Some(format!("{field} {}", nebula_credential::remote::redacted_url(s)))
            }
            serde_json::Value::String(s) if !s.is_empty() => Some(format!("{field} {s}")),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        "its default location".into()
    } else {
        parts.join(", ")
    }
}

/// The non-secret settings of `config show`: provider, profile, source, location.
pub(crate) fn show(context: &Context) -> String {
    let storage = context.storage();
    let mut text = format!(
        "provider: {}\nprofile:  {}\nsource:   {}\nlocation: {}\nsalt:     {}\n",
        storage.provider_name(),
        context.profile.as_deref().unwrap_or("(none)"),
        context.source_text(),
        location(storage),
        if context.loaded.salt.is_some() {
            "set"
        } else {
            "not set"
        },
    );
    if let Some(dir) = local_dir(storage)
        && !dir.exists()
    {
        text.push_str("note:     the directory does not exist yet; the first write creates it\n");
    }
    text
}
