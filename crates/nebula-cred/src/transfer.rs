//! `export` and `import`: credentials with their values, as JSON Lines (lossless: id,
//! value, tags, expiry) or dotenv (values under variable names).
//!
//! `export` prints values only with consent: to a pipe or a file (created mode 0600, never
//! replacing one without `--force`), or to a terminal with `--reveal`. `import` is
//! conditional like `migrate`: an identical record is left alone, a different one is not
//! overwritten unless `--overwrite`, absent ids are created only if still absent, and
//! `--dry-run` writes nothing. Errors name lines and ids, never a value.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, ValueEnum};
use nebula_credential::secrecy::ExposeSecret;
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, CredentialStore, EncryptionKey, ErrorKind, Keyring,
    Precondition, StorageError, StorageProvider, Stored, Tags, Timestamp,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::commands::emit;
use crate::exit::CliError;
use crate::run::{Binding, check_bindings, env_name};
use crate::summary::Summary;

/// Largest file `import` reads (a guard against a wrong path such as a disk image).
const MAX_IMPORT_BYTES: u64 = 256 * 1024 * 1024;

/// `KEY=VALUE`, split at the first `=`; the library validates both parts.
pub(crate) fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE, e.g. env=prod".to_string()),
    }
}

/// A file format of `export` and `import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per line: {"id", "value" or "value_base64", "tags", "expires"}; lossless.
    Jsonl,
    /// NAME='value' lines; values and names only (ids in UPPER_SNAKE_CASE on export).
    Dotenv,
}

/// `export`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nebula-cred export --format jsonl --output backup.jsonl\n  \
    nebula-cred export --format dotenv --tag env=dev --output .env\n  \
    nebula-cred export --format jsonl | ssh other-host nebula-cred import -\n\n\
    The output holds every selected value in clear: it is refused on a terminal without\n\
    --reveal, and --output creates the file with mode 0600 (never replacing one without --force)."
)]
pub(crate) struct ExportArgs {
    /// jsonl (lossless: values, tags and expiry) or dotenv (NAME='value' lines).
    #[arg(long, value_enum)]
    pub(crate) format: Format,
    /// Only credentials with this tag, KEY=VALUE (repeatable: all must match).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Only ids starting with this.
    #[arg(long, value_name = "P")]
    pub(crate) prefix: Option<String>,
    /// Write to this file, created with mode 0600, instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Replace --output FILE if it exists.
    #[arg(long, requires = "output")]
    pub(crate) force: bool,
    /// Print the values even when stdout is a terminal.
    #[arg(long)]
    pub(crate) reveal: bool,
}

/// `import`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  nebula-cred import backup.jsonl --dry-run\n  \
    nebula-cred import .env --tag env=dev\n  nebula-cred import backup.jsonl --overwrite\n\n\
    Existing credentials are compared (value, tags, expiry): identical ones are left alone,\n\
    different ones are not overwritten unless --overwrite. Running it again finishes an\n\
    interrupted import. Dotenv names become ids in lower case (DB_URL -> db_url) unless --keep-case.")]
pub(crate) struct ImportArgs {
    /// The file to read (`-`: stdin).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// The file's format; default: JSON Lines when it starts with `{`, else dotenv.
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
    /// Add this tag to every imported credential, KEY=VALUE (repeatable; beats the file's).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Dotenv: use each name as written as the id, instead of in lower case.
    #[arg(long)]
    pub(crate) keep_case: bool,
    /// Replace stored credentials whose value, tags or expiry differ.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Report what would happen; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Refuses to print values to a terminal unless `--reveal`; checked before any I/O.
pub(crate) fn check_export(args: &ExportArgs) -> Result<(), CliError> {
    if args.output.is_none() && !args.reveal && std::io::stdout().is_terminal() {
        return Err(CliError::Usage(
            "refusing to print credential values to a terminal; write them to a file with --output FILE \
             (created mode 0600), redirect stdout, or pass --reveal"
                .into(),
        ));
    }
    if let Some(path) = &args.output
        && !args.force
        && std::fs::symlink_metadata(path).is_ok()
    {
        return Err(CliError::Usage(format!(
            "{} exists; export never replaces a file unless --force",
            path.display()
        )));
    }
    Ok(())
}

/// One line of a JSON Lines export.
#[derive(Serialize)]
struct ExportLine<'a> {
    id: &'a CredentialId,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<&'a str>,
    tags: &'a Tags,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
}

/// An instant as exports write it: RFC 3339, UTC, milliseconds (the stored precision).
fn instant(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `export`: reads every selected value first, so a failure leaves no partial file.
pub(crate) async fn export(
    store: &CredentialStore,
    args: &ExportArgs,
    out: &mut dyn Write,
    quiet: bool,
) -> Result<(), CliError> {
    let mut filter = CredentialFilter::new();
    filter.tags = args.tags.iter().cloned().collect();
    filter.id_prefix = args.prefix.clone();
    filter.validate().map_err(StorageError::from)?;
    let ids = store.list(&filter).await?;
    let mut content = Zeroizing::new(String::new());
    match args.format {
        Format::Jsonl => {
            for id in &ids {
                let (secret, metadata) = store.get_with_metadata(id).await?;
                let bytes = secret.expose_secret();
                let text = std::str::from_utf8(bytes).ok();
                let encoded = Zeroizing::new(if text.is_none() {
                    STANDARD.encode(bytes)
                } else {
                    String::new()
                });
                let line = Zeroizing::new(
                    serde_json::to_string(&ExportLine {
                        id,
                        value: text,
                        value_base64: text.is_none().then_some(encoded.as_str()),
                        tags: &metadata.tags,
                        expires: metadata.expires_at.as_ref().map(instant),
                    })
                    .map_err(|e| CliError::io("cannot encode JSON", std::io::Error::other(e)))?,
                );
                content.push_str(&line);
                content.push('\n');
            }
        }
        Format::Dotenv => {
            let bindings: Vec<Binding> = ids
                .iter()
                .map(|id| Binding {
                    id: id.clone(),
                    name: env_name(id),
                })
                .collect();
            check_bindings(
                &bindings,
                "cannot export as dotenv (use --format jsonl, which keeps ids)",
            )?;
            for b in &bindings {
                let secret = store.get(&b.id).await?;
                let quoted = dotenv::quote(secret.expose_secret()).map_err(|why| {
                    CliError::Usage(format!(
                        "cannot export '{}' as dotenv: its value {why}; use --format jsonl (value_base64 keeps any bytes)",
                        b.id
                    ))
                })?;
                content.push_str(&b.name);
                content.push('=');
                content.push_str(&quoted);
                content.push('\n');
            }
        }
    }
    if ids.is_empty() {
        eprintln!("note: no credential matches the selection; the export is empty");
    }
    match &args.output {
        None => emit(out, content.as_bytes()),
        Some(path) => {
            write_private(path, content.as_bytes(), args.force)?;
            if !quiet {
                eprintln!(
                    "exported {} credential(s) to {} (mode 0600; it holds the values in clear: delete it when done)",
                    ids.len(),
                    path.display()
                );
            }
            Ok(())
        }
    }
}

/// Writes `content` to a new file at `path` readable by its owner only. With `replace`
/// the file is written beside it and renamed over it, so it is never seen half-written
/// or with wider permissions.
fn write_private(path: &Path, content: &[u8], replace: bool) -> Result<(), CliError> {
    let what = || format!("cannot write {}", path.display());
    let target = if replace {
        let mut suffix = [0u8; 6];
        rand::fill(&mut suffix);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = format!(
            ".{name}.{}.tmp",
            suffix.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        path.with_file_name(tmp)
    } else {
        path.to_path_buf()
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&target).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Usage(format!(
                "{} exists; export never replaces a file unless --force",
                path.display()
            ))
        } else {
            CliError::io(what(), e)
        }
    })?;
    let written = file.write_all(content).and_then(|()| file.sync_all());
    drop(file);
    let done = written.and_then(|()| {
        if replace {
            std::fs::rename(&target, path)
        } else {
            Ok(())
        }
    });
    done.map_err(|e| {
        let _ = std::fs::remove_file(&target);
        CliError::io(what(), e)
    })
}

/// One credential read from an import file.
struct Incoming {
    id: CredentialId,
    value: Zeroizing<Vec<u8>>,
    tags: Tags,
    expires: Option<Timestamp>,
}

/// A JSON Lines record as `import` reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    id: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_base64: Option<String>,
    #[serde(default)]
    tags: Tags,
    #[serde(default, alias = "expires_at")]
    expires: Option<Timestamp>,
}

/// What happened to each credential of an import.
#[derive(Debug, Default)]
struct ImportReport {
    total: usize,
    imported: Vec<CredentialId>,
    overwritten: Vec<CredentialId>,
    already_present: Vec<CredentialId>,
    not_overwritten: Vec<CredentialId>,
    failed: Vec<(CredentialId, String, ErrorKind)>,
    unconditional: bool,
}

/// What an import will do with one credential, decided from one read of the store.
enum Plan {
    Create,
    Replace(Stored),
}

/// `import`: parses the whole file first (any error refuses it all), compares with the
/// store, then writes what is new or, with `--overwrite`, different.
pub(crate) async fn import(
    provider: Arc<dyn StorageProvider>,
    key: EncryptionKey,
    args: &ImportArgs,
    out: &mut dyn Write,
    quiet: bool,
) -> Result<(), CliError> {
    let (shown, text) = read_input(&args.file)?;
    let format = args.format.unwrap_or_else(|| {
        let first = text
            .lines()
            .map(str::trim_start)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        if first.is_some_and(|l| l.starts_with('{')) {
            Format::Jsonl
        } else {
            Format::Dotenv
        }
    });
    let mut records = match format {
        Format::Jsonl => parse_jsonl(&text, &shown)?,
        Format::Dotenv => dotenv::parse(&text, args.keep_case).map_err(|e| CliError::Usage(format!("{shown}: {e}")))?,
    };
    drop(text);
    check_records(&mut records, &args.tags, &shown)?;

    let ours = key.key_id().to_string();
    let keyring = Keyring::new(key);
    let mut report = ImportReport {
        total: records.len(),
        unconditional: !provider.capabilities().conditional_store,
        ..ImportReport::default()
    };
    // Read and compare everything before writing anything.
    let mut plans = Vec::new();
    let mut ours_seen = false;
    for record in records {
        match provider.retrieve(&record.id).await {
            Err(e) if e.is_not_found() => plans.push((record, Plan::Create)),
            Err(e) => report.failed.push((record.id, e.to_string(), e.kind())),
            Ok(stored) if stored.data.key_id != ours => {
                let why = format!(
                    "stored under key {} while this key is {ours}; import with that key, or run rotate-key first",
                    stored.data.key_id
                );
                report.failed.push((record.id, why, ErrorKind::Crypto));
            }
            Ok(stored) => {
                ours_seen = true;
                match keyring.decrypt(&record.id, &stored.data) {
                    Err(e) => {
                        let e = StorageError::from(e);
                        report.failed.push((record.id, e.to_string(), e.kind()));
                    }
                    Ok(plain) => {
                        let same = *plain == *record.value
                            && stored.metadata.tags == record.tags
                            && stored.metadata.expires_at == record.expires;
                        if same {
                            report.already_present.push(record.id);
                        } else if !args.overwrite {
                            report.not_overwritten.push(record.id);
                        } else {
                            plans.push((record, Plan::Replace(stored)));
                        }
                    }
                }
            }
        }
    }
    if !ours_seen && plans.iter().any(|(_, p)| matches!(p, Plan::Create)) {
        check_store_key(provider.as_ref(), &ours).await?;
    }
    for (record, plan) in plans {
        let id = record.id.clone();
        let replacing = matches!(plan, Plan::Replace(_));
        if args.dry_run {
            if replacing {
                report.overwritten.push(id);
            } else {
                report.imported.push(id);
            }
            continue;
        }
        match write(provider.as_ref(), &keyring, record, plan, !report.unconditional).await {
            Ok(()) if replacing => report.overwritten.push(id),
            Ok(()) => report.imported.push(id),
            Err(e) => {
                let why = if e.is_conflict() {
                    "another writer changed it meanwhile; run the same import again to compare".to_string()
                } else {
                    e.to_string()
                };
                report.failed.push((id, why, e.kind()));
            }
        }
    }
    let troubled = !report.failed.is_empty() || !report.not_overwritten.is_empty();
    if !quiet || troubled {
        emit(out, summary(&report, &shown, provider.provider_name(), args.dry_run))?;
    }
    if !report.failed.is_empty() {
        Err(CliError::Incomplete(format!(
            "{} credential(s) were not imported; fix what the reasons above say and run the same command again \
             (what is already stored identically is not written twice)",
            report.failed.len()
        )))
    } else if !report.not_overwritten.is_empty() {
        Err(CliError::Conflict(format!(
            "{} credential(s) are stored with a different value, tags or expiry and were left alone; \
             compare them (`nebula-cred get ID --metadata`), then run again with --overwrite to replace them",
            report.not_overwritten.len()
        )))
    } else {
        Ok(())
    }
}

/// Refuses to create records under a key other than the one the store's records are
/// under (a mistyped passphrase would otherwise leave values nobody can read).
async fn check_store_key(provider: &dyn StorageProvider, ours: &str) -> Result<(), CliError> {
    let Some(first) = provider.list(&CredentialFilter::new()).await?.into_iter().next() else {
        return Ok(());
    };
    match provider.retrieve(&first).await {
        Ok(stored) if stored.data.key_id != ours => Err(CliError::Usage(format!(
            "this key (id {ours}) is not the key of the stored credentials (id {}, e.g. '{first}'); \
             give that key (--key-file, NEBULA_CREDENTIAL_KEY or its passphrase), or if the store is \
             being rotated, finish rotate-key first; nothing was imported",
            stored.data.key_id
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Encrypts and stores one record, conditionally on what was read.
async fn write(
    provider: &dyn StorageProvider,
    keyring: &Keyring,
    record: Incoming,
    plan: Plan,
    conditional: bool,
) -> Result<(), StorageError> {
    let mut metadata = CredentialMetadata::new().with_tags(record.tags);
    if let Some(at) = record.expires {
        metadata = metadata.with_expiry(at);
    }
    let precondition = match plan {
        Plan::Create => Precondition::Absent,
        Plan::Replace(previous) => {
            metadata.created_at = previous.metadata.created_at;
            metadata.version = previous.metadata.version.saturating_add(1);
            metadata.updated_at = metadata.updated_at.max(previous.metadata.created_at);
            Precondition::Revision(previous.revision)
        }
    };
    let precondition = if conditional {
        precondition
    } else {
        Precondition::Overwrite
    };
    let data = keyring.encrypt(&record.id, &record.value)?;
    provider.store_if(&record.id, &data, &metadata, &precondition).await?;
    Ok(())
}

/// The file's text, and how to name it in messages.
fn read_input(path: &Path) -> Result<(String, Zeroizing<String>), CliError> {
    let stdin = path.as_os_str() == "-";
    let shown = if stdin {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    let what = || format!("cannot read {shown}");
    let mut bytes = Zeroizing::new(Vec::new());
    let read = if stdin {
        std::io::stdin()
            .lock()
            .take(MAX_IMPORT_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_IMPORT_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| CliError::io(what(), e))?;
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        return Err(CliError::Usage(format!(
            "{shown} is larger than {MAX_IMPORT_BYTES} bytes; is it the export you meant?"
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| CliError::Usage(format!("{shown} is not UTF-8 text (at byte {})", e.valid_up_to())))?;
    Ok((shown, Zeroizing::new(text.to_string())))
}

/// Parses JSON Lines; every bad line is reported (by number, never by content).
fn parse_jsonl(text: &str, shown: &str) -> Result<Vec<Incoming>, CliError> {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ImportLine = match serde_json::from_str(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(format!("line {n}: {}", json_problem(&e)));
                continue;
            }
        };
        let ImportLine {
            id,
            value,
            value_base64,
            tags,
            expires,
        } = parsed;
        let value = value.map(Zeroizing::new);
        let value_base64 = value_base64.map(Zeroizing::new);
        let id = match CredentialId::new(id) {
            Ok(id) => id,
            Err(e) => {
                problems.push(format!("line {n}: {e}"));
                continue;
            }
        };
        let value = match (value, value_base64) {
            (Some(v), None) => Zeroizing::new(v.as_bytes().to_vec()),
            (None, Some(b)) => match STANDARD.decode(b.trim().as_bytes()) {
                Ok(bytes) => Zeroizing::new(bytes),
                Err(_) => {
                    problems.push(format!("line {n}: the value_base64 of '{id}' is not valid base64"));
                    continue;
                }
            },
            _ => {
                problems.push(format!(
                    "line {n}: '{id}' needs exactly one of \"value\" (text) or \"value_base64\""
                ));
                continue;
            }
        };
        records.push(Incoming {
            id,
            value,
            tags,
            expires,
        });
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(CliError::Usage(format!(
            "{shown} is not a valid import file (nothing was imported):\n  {}\n  \
             each line is {{\"id\": \"…\", \"value\": \"…\" or \"value_base64\": \"…\", \"tags\": {{…}}, \
             \"expires\": \"RFC 3339\"}}, as `nebula-cred export --format jsonl` writes",
            problems.join("\n  ")
        )))
    }
}

/// A JSON error without anything it quotes from the input (which may be a value).
fn json_problem(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let detail = if message.contains('"') || message.contains('`') && !message.contains("unknown field") {
        match e.classify() {
            serde_json::error::Category::Data => "a field has the wrong type".to_string(),
            _ => "not valid JSON".to_string(),
        }
    } else {
        // Position-free: serde_json appends " at line 1 column N".
        message.split(" at line ").next().unwrap_or_default().to_string()
    };
    format!("{detail} (column {})", e.column())
}

/// Adds the command line's tags, then checks ids are distinct and metadata valid.
fn check_records(records: &mut [Incoming], extra: &[(String, String)], shown: &str) -> Result<(), CliError> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&CredentialId, usize> = BTreeMap::new();
    for record in records.iter_mut() {
        record.tags.extend(extra.iter().cloned());
    }
    for record in records.iter() {
        *seen.entry(&record.id).or_default() += 1;
        if record.value.is_empty() {
            problems.push(format!("the value of '{}' is empty", record.id));
        }
        if let Err(e) = CredentialMetadata::new().with_tags(record.tags.clone()).validate() {
            problems.push(format!("'{}': {e}", record.id));
        }
    }
    for (id, n) in seen {
        if n > 1 {
            problems.push(format!("'{id}' appears {n} times; keep one"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{shown} cannot be imported (nothing was imported):\n  {}",
        problems.join("\n  ")
    )))
}

/// The summary, in the shape of `migrate`'s: counts, then what needs attention.
fn summary(r: &ImportReport, from: &str, to: &str, dry_run: bool) -> String {
    let mut s = Summary::new(
        dry_run,
        format_args!("import {from} -> {to}: {} credential(s) in the file", r.total),
    );
    s.row("imported", r.imported.len(), "");
    s.row("overwritten", r.overwritten.len(), "");
    s.row(
        "already present",
        r.already_present.len(),
        "  (identical in the store; not written again)",
    );
    s.row(
        "not overwritten",
        r.not_overwritten.len(),
        "  (different in the store; --overwrite replaces them)",
    );
    s.row("failed", r.failed.len(), "");
    s.ids("not overwritten", &r.not_overwritten);
    s.failures(
        r.failed
            .iter()
            .map(|(id, why, kind)| (id.to_string(), why.to_string(), kind.to_string())),
    );
    if r.unconditional {
        s.unconditional(to);
    }
    s.finish()
}

/// The dotenv dialect `export` writes and `import` reads.
///
/// Written: `NAME='value'` when the value has no `'`, `\` or line break (literal in every
/// dotenv reader and in POSIX shells), else `NAME="value"` with `\\`, `\"`, `\n` and `\r`
/// escaped (as python-dotenv and godotenv read it), and `\$` and ``\` `` (so a shell
/// sourcing the file, or a loader that interpolates, never expands or runs them). Values that are not UTF-8 text or hold
/// other control characters are refused. Read: blank lines, `#` comments, an optional
/// `export `, single-quoted (literal), double-quoted (the escapes above plus `\t`, `\'`,
/// `\$`, ``\` ``; others kept as written) or unquoted values (up to a ` #` comment, trimmed);
/// quoted values may span lines. No `${VAR}` interpolation.
pub(crate) mod dotenv {
    use super::*;

    /// The value quoted, or why it cannot be.
    pub(crate) fn quote(value: &[u8]) -> Result<Zeroizing<String>, &'static str> {
        let text = std::str::from_utf8(value).map_err(|_| "is not UTF-8 text")?;
        if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err("holds control characters");
        }
        let mut quoted = Zeroizing::new(String::with_capacity(text.len() + 2));
        if !text.contains(['\'', '\\', '\n', '\r']) {
            quoted.push('\'');
            quoted.push_str(text);
            quoted.push('\'');
            return Ok(quoted);
        }
        quoted.push('"');
        for c in text.chars() {
            match c {
                '\\' => quoted.push_str("\\\\"),
                '"' => quoted.push_str("\\\""),
                '\n' => quoted.push_str("\\n"),
                '\r' => quoted.push_str("\\r"),
                // Inside double quotes a shell (`set -a; . FILE`) and loaders that
                // interpolate would expand these: `$(…)` or `…` would run a command.
                '$' => quoted.push_str("\\$"),
                '`' => quoted.push_str("\\`"),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        Ok(quoted)
    }

    /// The credentials of a dotenv text; ids are the names, lower-cased unless `keep_case`.
    pub(super) fn parse(text: &str, keep_case: bool) -> Result<Vec<Incoming>, String> {
        let mut records = Vec::new();
        let mut problems = Vec::new();
        let mut rest = text;
        let mut line = 1;
        while !rest.is_empty() {
            let start_line = line;
            match entry(&mut rest, &mut line) {
                Ok(None) => {}
                Ok(Some((name, value))) => {
                    let id = if keep_case {
                        name.to_string()
                    } else {
                        name.to_ascii_lowercase()
                    };
                    match CredentialId::new(id) {
                        Ok(id) => records.push(Incoming {
                            id,
                            value: Zeroizing::new(value.as_bytes().to_vec()),
                            tags: Tags::new(),
                            expires: None,
                        }),
                        Err(e) => problems.push(format!("line {start_line}: {e}")),
                    }
                }
                Err(why) => {
                    problems.push(format!("line {start_line}: {why}"));
                    // Skip to the next line and go on, to report every problem at once.
                    skip_line(&mut rest, &mut line);
                }
            }
        }
        if problems.is_empty() {
            Ok(records)
        } else {
            Err(format!(
                "not a valid dotenv file (nothing was imported):\n  {}\n  each line is NAME=value, \
                 NAME='value' or NAME=\"value\" (blank lines and # comments allowed)",
                problems.join("\n  ")
            ))
        }
    }

    fn skip_line(rest: &mut &str, line: &mut usize) {
        match rest.find('\n') {
            Some(i) => {
                *rest = &rest[i + 1..];
                *line += 1;
            }
            None => *rest = "",
        }
    }

    /// Reads one entry (or a blank or comment line) from the start of `rest`.
    fn entry<'a>(rest: &mut &'a str, line: &mut usize) -> Result<Option<(&'a str, Zeroizing<String>)>, String> {
        let whole: &'a str = rest;
        let text = whole.trim_start_matches([' ', '\t']);
        if text.is_empty() || text.starts_with('\n') || text.starts_with("\r\n") || text.starts_with('#') {
            skip_line(rest, line);
            return Ok(None);
        }
        let text = text
            .strip_prefix("export ")
            .map_or(text, |t| t.trim_start_matches([' ', '\t']));
        let name_len = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(text.len());
        let name = &text[..name_len];
        let after = text[name_len..].trim_start_matches([' ', '\t']);
        let Some(after) = after.strip_prefix('=') else {
            return Err("expected NAME=VALUE".into());
        };
        if name.is_empty() {
            return Err("expected NAME=VALUE (the name is missing)".into());
        }
        let after = after.trim_start_matches([' ', '\t']);
        let mut value = Zeroizing::new(String::new());
        let mut value_lines = 0;
        let tail = match after.chars().next() {
            Some(q @ ('\'' | '"')) => {
                let body = &after[1..];
                let mut chars = body.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        c if c == q => {
                            end = Some(i);
                            break;
                        }
                        '\\' if q == '"' => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, 'r')) => value.push('\r'),
                            Some((_, 't')) => value.push('\t'),
                            Some((_, e @ ('\\' | '"' | '\'' | '$' | '`'))) => value.push(e),
                            Some((_, other)) => {
                                value.push('\\');
                                value.push(other);
                            }
                            None => break,
                        },
                        c => value.push(c),
                    }
                }
                let Some(end) = end else {
                    return Err(format!("the value of {name} has no closing {q}"));
                };
                value_lines = body[..end].matches('\n').count();
                &body[end + 1..]
            }
            _ => {
                let stop = after.find('\n').unwrap_or(after.len());
                let raw = &after[..stop];
                let raw = raw.find(" #").or_else(|| raw.find("\t#")).map_or(raw, |i| &raw[..i]);
                value.push_str(raw.trim_end_matches([' ', '\t', '\r']));
                &after[stop..]
            }
        };
        let end_of_line = tail.find('\n').unwrap_or(tail.len());
        let trailing = tail[..end_of_line].trim_matches([' ', '\t', '\r']);
        if !trailing.is_empty() && !trailing.starts_with('#') {
            return Err(format!("unexpected text after the value of {name}"));
        }
        *line += value_lines;
        *rest = &tail[end_of_line..];
        if let Some(r) = rest.strip_prefix('\n') {
            *rest = r;
            *line += 1;
        }
        Ok(Some((name, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, keep_case: bool) -> Vec<(String, String)> {
        dotenv::parse(text, keep_case)
            .unwrap()
            .into_iter()
            .map(|r| (r.id.to_string(), String::from_utf8(r.value.to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn dotenv_quoting_round_trips_every_text_value() {
        let cases = [
            "plain",
            "with space and # hash",
            "it's",
            "back\\slash",
            "quote \" inside",
            "line\nbreak\r\nand\ttab",
            "$HOME ${HOME} `cmd`",
            "it's $(id) and `id` \\ $HOME",
            "  padded  ",
            "ünïcødé ✓",
            "\\n literally",
            "ends with backslash\\",
        ];
        let mut text = String::new();
        for (i, v) in cases.iter().enumerate() {
            text.push_str(&format!("V{i}={}\n", dotenv::quote(v.as_bytes()).unwrap().as_str()));
        }
        let back = values(&text, true);
        assert_eq!(back.len(), cases.len(), "{text}");
        for (i, v) in cases.iter().enumerate() {
            assert_eq!(back[i], (format!("V{i}"), v.to_string()), "{text}");
        }
        assert_eq!(dotenv::quote(b"plain").unwrap().as_str(), "'plain'");
        assert_eq!(dotenv::quote(b"a\nb").unwrap().as_str(), "\"a\\nb\"");
        assert!(dotenv::quote(&[0xff, 0]).is_err());
        assert!(dotenv::quote(b"bell\x07").is_err());
    }

    #[test]
    fn dotenv_reads_the_common_forms() {
        let text = "# comment\n\nexport A=1\nB = 'two words' # note\nC=\"multi\nline\"\nD=unquoted value # c\nE=\n";
        assert_eq!(
            values(text, false),
            [
                ("a".to_string(), "1".to_string()),
                ("b".into(), "two words".into()),
                ("c".into(), "multi\nline".into()),
                ("d".into(), "unquoted value".into()),
                ("e".into(), String::new()),
            ]
        );
    }

    #[test]
    fn dotenv_errors_name_lines_never_values() {
        let e = dotenv::parse("A='hunter2\nB=ok\nnot a line hunter3\nC=\"x\" hunter4\n", false)
            .err()
            .unwrap();
        assert!(
            e.contains("line 1") && e.contains("line 3") && e.contains("line 4"),
            "{e}"
        );
        assert!(!e.contains("hunter"), "{e}");
    }

    #[test]
    fn json_errors_never_quote_the_input() {
        for line in [
            r#"{"id":"a","value":"hunter2","tags":"hunter2"}"#,
            r#"{"id":"a","value":"hunter2""#,
            r#"{"id":"a","valeu":"hunter2"}"#,
            r#"{"id":"a","value":"x","expires":"hunter2"}"#,
        ] {
            let e = parse_jsonl(line, "f").err().unwrap().to_string();
            assert!(e.contains("line 1"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = parse_jsonl(r#"{"id":"a","valeu":"x"}"#, "f").err().unwrap().to_string();
        assert!(e.contains("unknown field `valeu`"), "{e}");
    }
}
