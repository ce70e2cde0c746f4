//! put, get, list, exists, delete, rotate-key and keygen.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use nebula_credential::secrecy::ExposeSecret;
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, CredentialStore, EncryptionKey, Keyring, StorageProvider, Tags,
    Timestamp,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{GetArgs, KeygenArgs, ListArgs, PutArgs, RotateArgs};
use crate::doctor::{self, Problem, Step, StepOutcome};
use crate::exit::{self, CliError};
use crate::{config, key};

/// Metadata reads in flight at once for `list`.
const LIST_READS: usize = 8;

/// Writes to stdout; a closed pipe (`| head`) is not an error worth reporting.
pub(crate) fn emit(out: &mut dyn Write, text: impl AsRef<[u8]>) -> Result<(), CliError> {
    match out.write_all(text.as_ref()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::io("cannot write to stdout", e)),
        _ => Ok(()),
    }
}

fn tags(pairs: &[(String, String)]) -> Tags {
    pairs.iter().cloned().collect()
}

fn filter(pairs: &[(String, String)], prefix: Option<&str>) -> CredentialFilter {
    let mut filter = CredentialFilter::new();
    filter.tags = tags(pairs);
    filter.id_prefix = prefix.map(str::to_string);
    filter
}

/// The source and target filter of `migrate`.
pub(crate) fn migrate_filter(pairs: &[(String, String)], prefix: Option<&str>) -> CredentialFilter {
    filter(pairs, prefix)
}

/// Refuses a value given as an argument, without repeating it; checked before any I/O.
pub(crate) fn check_put(args: &PutArgs) -> Result<(), CliError> {
    if !args.value_argument.is_empty() {
        return Err(CliError::Usage(format!(
            "put takes no value argument: it would be visible in `ps` and shell history; give the value \
             of '{}' on stdin (`printf '%s' \"$VALUE\" | nebula-cred put {}`) or with --from-file FILE \
             (what followed the id is not shown, in case it was a value; options are listed by \
             `nebula-cred put --help`)",
            args.id, args.id
        )));
    }
    Ok(())
}

/// `put`: the value from `--from-file`, a hidden prompt on a terminal, or stdin.
///
/// No value can be longer than the backend's record limit (`limit`, the serialized
/// record being larger than the value), so reading stops just past it: a wrong file or
/// an endless pipe is refused at once instead of being read, encrypted and encoded whole.
pub(crate) async fn put(
    store: &CredentialStore,
    limit: usize,
    args: &PutArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let value = read_value(args, limit)?;
    if value.is_empty() {
        return Err(CliError::Usage(format!(
            "the value of '{}' is empty; give it on stdin or with --from-file FILE",
            args.id
        )));
    }
    let metadata = store
        .put_expiring(&args.id, &value, tags(&args.tags), args.expires)
        .await?;
    emit(out, format!("stored '{}' (version {})\n", args.id, metadata.version))?;
    warn_if_expired(&args.id, &metadata);
    Ok(())
}

/// Says on stderr that a credential's expiry has passed (the library does not enforce
/// it: applications still read the value).
fn warn_if_expired(id: &CredentialId, metadata: &CredentialMetadata) {
    if metadata.is_expired_at(chrono::Utc::now()) {
        eprintln!(
            "warning: '{id}' expired at {}; applications still read it: store a fresh value \
             (put with a later --expires) or delete it",
            when(metadata.expires_at.as_ref())
        );
    }
}

fn read_value(args: &PutArgs, limit: usize) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let value = if let Some(path) = &args.from_file {
        let file = std::fs::File::open(path)
            .map_err(|e| CliError::io(format!("cannot read the value file {}", path.display()), e))?;
        read_at_most(file, limit)
            .map_err(|e| CliError::io(format!("cannot read the value file {}", path.display()), e))?
    } else if std::io::stdin().is_terminal() {
        let typed = crate::prompt::hidden(&format!("value of '{}' (input hidden): ", args.id))
            .map_err(|e| CliError::io("cannot read the value from the terminal", e))?;
        Zeroizing::new(typed.into_bytes())
    } else {
        read_at_most(std::io::stdin().lock(), limit).map_err(|e| CliError::io("cannot read the value from stdin", e))?
    };
    if value.len() > limit {
        return Err(CliError::Failed {
            code: exit::ERROR,
            message: format!(
                "the value of '{}' is over {limit} bytes, the most this backend stores in one record \
                 (max_payload_bytes); store a smaller secret or use a backend with a larger limit",
                args.id
            ),
        });
    }
    Ok(value)
}

/// Reads `reader` to its end, or until it has given more than `limit` bytes.
fn read_at_most(reader: impl Read, limit: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut value = Zeroizing::new(Vec::new());
    let most = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(most).read_to_end(&mut value)?;
    Ok(value)
}

/// A credential's metadata as printed by `get --metadata --json` and `list --json`.
#[derive(Serialize)]
struct Described<'a> {
    id: &'a CredentialId,
    #[serde(flatten)]
    metadata: &'a CredentialMetadata,
}

fn json_line(value: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string(value)
        .map(|s| s + "\n")
        .map_err(|e| CliError::io("cannot encode JSON", std::io::Error::other(e)))
}

fn when(t: Option<&Timestamp>) -> String {
    t.map_or_else(|| "never".into(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Tags for people, `k=v,…`. They come from the backend, where another tool may have
/// written them: control characters (terminal escapes, line breaks) are shown escaped.
fn tag_text(tags: &Tags) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", printable(k), printable(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// `text` with its control characters escaped (`\u{1b}`, `\n`), so it cannot drive a terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Whether `get` needs the key: not for `--metadata`.
pub(crate) fn get_needs_key(args: &GetArgs) -> bool {
    !args.metadata
}

/// `get --metadata`: no key needed, nothing secret printed.
pub(crate) async fn get_metadata(
    provider: &dyn StorageProvider,
    args: &GetArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let metadata = provider.retrieve(&args.id).await?.metadata;
    warn_if_expired(&args.id, &metadata);
    let text = if args.json {
        json_line(&Described {
            id: &args.id,
            metadata: &metadata,
        })?
    } else {
        format!(
            "id:       {}\nversion:  {}\ncreated:  {}\nupdated:  {}\nexpires:  {}\ntags:     {}\n",
            args.id,
            metadata.version,
            when(Some(&metadata.created_at)),
            when(Some(&metadata.updated_at)),
            when(metadata.expires_at.as_ref()),
            tag_text(&metadata.tags)
        )
    };
    emit(out, text)
}

/// Refuses to print a value to a terminal unless `--reveal`; checked before any I/O.
pub(crate) fn check_reveal(args: &GetArgs) -> Result<(), CliError> {
    if !args.metadata && !args.reveal && std::io::stdout().is_terminal() {
        return Err(CliError::Usage(format!(
            "refusing to print the value of '{}' to a terminal; redirect it (`> file`, `| cmd`) \
             or pass --reveal (--metadata shows everything but the value)",
            args.id
        )));
    }
    Ok(())
}

/// `get`: the value, raw or as JSON, to stdout only.
pub(crate) async fn get_value(store: &CredentialStore, args: &GetArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (secret, metadata) = store.get_with_metadata(&args.id).await.map_err(|e| match &e {
        // The library's advice ("add that key as an old key") is for applications; get
        // takes one key, so say how to give the right one.
        nebula_credential::StorageError::Crypto(nebula_credential::CryptoError::UnknownKey { key_id, .. }) => {
            CliError::Failed {
                code: exit::ERROR,
                message: format!(
                    "{e}\n  hint: the key given (id {}) is not the one '{}' was stored with (id {key_id}); \
                     give that key with --key-file FILE or NEBULA_CREDENTIAL_KEY (or its passphrase, with \
                     the same salt)",
                    store.current_key_id(),
                    args.id
                ),
            }
        }
        _ => e.into(),
    })?;
    warn_if_expired(&args.id, &metadata);
    let bytes = secret.expose_secret();
    if !args.json {
        return emit(out, bytes);
    }
    #[derive(Serialize)]
    struct WithValue<'a> {
        id: &'a CredentialId,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        value_base64: Option<&'a str>,
        metadata: &'a CredentialMetadata,
    }
    let text = std::str::from_utf8(bytes).ok();
    let encoded = Zeroizing::new(if text.is_none() {
        STANDARD.encode(bytes)
    } else {
        String::new()
    });
    let line = Zeroizing::new(json_line(&WithValue {
        id: &args.id,
        value: text,
        value_base64: text.is_none().then_some(encoded.as_str()),
        metadata: &metadata,
    })?);
    emit(out, line.as_bytes())
}

/// `list`: a table, JSON lines, or ids only. Credentials deleted meanwhile are left out;
/// unreadable ones are reported and make the command incomplete.
pub(crate) async fn list(provider: &dyn StorageProvider, args: &ListArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let filter = filter(&args.tags, args.prefix.as_deref());
    filter.validate().map_err(nebula_credential::StorageError::from)?;
    let ids = provider.list(&filter).await?;
    if args.ids_only {
        let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
        return emit(out, text);
    }
    let rows: Vec<_> = futures::stream::iter(ids)
        .map(|id| async move {
            let read = provider.retrieve(&id).await;
            (id, read)
        })
        .buffered(LIST_READS)
        .collect()
        .await;
    let mut unreadable = 0;
    let mut listed = Vec::new();
    for (id, read) in rows {
        match read {
            Ok(stored) => listed.push((id, stored.metadata)),
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                unreadable += 1;
                eprintln!("warning: cannot read '{id}': {e}");
            }
        }
    }
    let text = if args.json {
        let mut text = String::new();
        for (id, metadata) in &listed {
            text.push_str(&json_line(&Described { id, metadata })?);
        }
        text
    } else {
        table(&listed)
    };
    emit(out, text)?;
    if unreadable > 0 {
        return Err(CliError::Incomplete(format!(
            "{unreadable} credential(s) could not be read; see the warnings above"
        )));
    }
    Ok(())
}

fn table(rows: &[(CredentialId, CredentialMetadata)]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|(id, m)| {
            [
                id.to_string(),
                m.version.to_string(),
                when(Some(&m.updated_at)),
                when(m.expires_at.as_ref()),
                tag_text(&m.tags),
            ]
        })
        .collect();
    let header = ["ID", "VERSION", "UPDATED", "EXPIRES", "TAGS"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// `exists`: exit 0 when present, 3 when absent.
pub(crate) async fn exists(
    provider: &dyn StorageProvider,
    id: &CredentialId,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if provider.exists(id).await? {
        emit(out, format!("'{id}' exists\n"))
    } else {
        emit(out, format!("'{id}' does not exist\n"))?;
        Err(CliError::Quiet(exit::NOT_FOUND))
    }
}

/// `delete`: idempotent; says whether there was something to delete.
pub(crate) async fn delete(
    provider: &dyn StorageProvider,
    id: &CredentialId,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let existed = provider.exists(id).await?;
    provider.delete(id).await?;
    emit(
        out,
        if existed {
            format!("deleted '{id}'\n")
        } else {
            format!("'{id}' was not stored; nothing to delete\n")
        },
    )
}

/// `rotate-key`: the current key plus older ones decrypt, the new key encrypts.
pub(crate) async fn rotate(
    provider: Arc<dyn StorageProvider>,
    current: EncryptionKey,
    args: &RotateArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let new = key::key_file(&args.new_key_file)?;
    // The new key already in use with no older key given: nothing to rotate from. With
    // older keys it finishes an interrupted rotation whose operator switched keys early.
    let finishing = new.key_id() == current.key_id();
    if finishing && args.old_key_file.is_empty() {
        return Err(CliError::Usage(format!(
            "the new key is the current key (id {}): to rotate, give the key in use now as the current \
             key (--key-file or NEBULA_CREDENTIAL_KEY) and a new one from `nebula-cred keygen --out FILE`; \
             to finish an interrupted rotation under this key, add --old-key-file with the previous key",
            current.key_id()
        )));
    }
    let mut ring = Keyring::new(current);
    for path in &args.old_key_file {
        ring = ring.with_old_key(key::key_file(path)?);
    }
    if !provider.capabilities().conditional_store {
        eprintln!(
            "note: {} cannot store conditionally here, so a write racing the rotation may be lost; \
             stop writers first",
            provider.provider_name()
        );
    }
    let store = CredentialStore::new(provider, ring);
    if !finishing {
        store.add_current_key(new);
    }
    let report = store.rotate_keys().await?;
    let mut text = format!(
        "re-encrypted under key {}: {}\nalready under it: {}\ndeleted meanwhile: {}\nfailed: {}\n",
        store.current_key_id(),
        report.re_encrypted,
        report.already_current,
        report.vanished,
        report.failed.len()
    );
    for (id, kind) in &report.failed {
        text.push_str(&format!("  {id}: {kind}\n"));
    }
    emit(out, text)?;
    if !report.is_complete() {
        return Err(CliError::Incomplete(format!(
            "{} credential(s) were not rotated (a crypto failure means a key is missing: add it with \
             --old-key-file); run rotate-key again after fixing them",
            report.failed.len()
        )));
    }
    eprintln!(
        "done: give applications the new key ({}) and keep the old one until they use it",
        args.new_key_file.display()
    );
    Ok(())
}

/// `keygen`: a new key file (0600, never replacing one) or a salt on stdout.
pub(crate) fn keygen(args: &KeygenArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.salt {
        return emit(out, format!("{}\n", key::new_salt()));
    }
    let Some(path) = &args.out else {
        return Err(CliError::Usage("give --out FILE or --salt".into()));
    };
    let key = EncryptionKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let what = || format!("cannot create the key file {}", path.display());
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Usage(format!("{} exists; keygen never replaces a key file", path.display()))
        } else {
            CliError::io(what(), e)
        }
    })?;
    let encoded = key.to_base64();
    file.write_all(format!("{}\n", encoded.expose_secret()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::io(what(), e))?;
    emit(
        out,
        format!("wrote a new key to {} (key id {})\n", path.display(), key.key_id()),
    )
}

/// `doctor`: prints each step as it finishes; exits with the first failure's status.
pub(crate) async fn doctor(config_path: Option<&std::path::Path>, out: &mut dyn Write) -> Result<(), CliError> {
    let loaded = match config::load(config_path) {
        Ok(loaded) => loaded,
        Err(e) => {
            emit(
                out,
                format!(
                    "FAIL  {:<8} {:>10}  {}\n",
                    "config",
                    "",
                    e.report().trim_start_matches("error: ")
                ),
            )?;
            return Err(e);
        }
    };
    emit(out, format!("configuration from {}\n", loaded.origin))?;
    let mut failed_write = None;
    let report = doctor::diagnose(&loaded.storage, |step| {
        if let Err(e) = emit(out, render(step)) {
            failed_write.get_or_insert(e);
        }
    })
    .await;
    if let Some(e) = failed_write {
        return Err(e);
    }
    match report.first_problem() {
        None => emit(out, "all checks passed\n"),
        Some(problem) => Err(CliError::Failed {
            code: match problem {
                Problem::Storage(e) => exit::for_kind(e.kind()),
                Problem::Reserved => exit::CONFLICT,
                _ => exit::INCOMPLETE,
            },
            message: "doctor found a problem; the failing step above says what to do".into(),
        }),
    }
}

/// One doctor line: status, step, latency, detail (and on failure the kind and causes).
fn render(step: &Step) -> String {
    let took = step
        .took
        .map_or_else(String::new, |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0));
    let indent = " ".repeat(27);
    match &step.outcome {
        StepOutcome::Ok(detail) => format!("ok    {:<8} {took:>10}  {detail}\n", step.name),
        StepOutcome::Skipped(why) => format!("skip  {:<8} {took:>10}  {why}\n", step.name),
        StepOutcome::Failed(problem) => {
            let mut text = format!(
                "FAIL  {:<8} {took:>10}  {problem}\n{indent}kind: {}\n",
                step.name,
                problem.kind()
            );
            let mut source = std::error::Error::source(problem);
            while let Some(cause) = source {
                text.push_str(&format!("{indent}caused by: {cause}\n"));
                source = cause.source();
            }
            text
        }
    }
}
