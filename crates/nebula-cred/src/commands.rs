//! put, get, list, exists, delete, rotate-key and keygen.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use nebula_credential::secrecy::ExposeSecret;
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, CredentialStore, EncryptedData, EncryptionKey, Keyring,
    RecordEnvelope, StorageError, StorageProvider, Stored, Tags, Timestamp,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, GetArgs, Global, KeygenArgs, ListArgs, PutArgs, RotateArgs, ValueArgument};
use crate::context::Context;
use crate::doctor::{self, PROBE_ID, Problem, Step, StepOutcome};
use crate::exit::{self, CliError};
use crate::key;

/// Metadata reads in flight at once for `list`.
const LIST_READS: usize = 8;
/// Records of the store `put` reads to learn its key, for a new id.
const KEY_SAMPLE: usize = 16;

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
/// `-` (stdin) and `@FILE` are the usual markers and accepted, once, without --from-file;
/// the options after a marker (which clap hands over with it) are parsed again, put's and
/// the global ones (`put ID - --quiet` as `put ID --quiet -`), and the arguments returned
/// when there were any, with the global options given after the marker.
pub(crate) fn check_put(args: &PutArgs) -> Result<Option<(PutArgs, Global)>, CliError> {
    use clap::{CommandFactory, FromArgMatches};
    if let [marker @ (ValueArgument::Stdin | ValueArgument::File(_)), rest @ ..] = args.value_argument.as_slice()
        && !rest.is_empty()
    {
        let hidden_rest = rest.iter().map(|a| match a {
            ValueArgument::Stdin => std::ffi::OsString::from("-"),
            ValueArgument::File(p) => {
                let mut s = std::ffi::OsString::from("@");
                s.push(p);
                s
            }
            ValueArgument::Other(h) => h.0.clone(),
        });
        let argv = ["nebula-cred".into(), "put".into(), args.id.to_string().into()]
            .into_iter()
            .chain(hidden_rest)
            .collect::<Vec<std::ffi::OsString>>();
        // clap's errors quote what they reject: never shown, it may be a value.
        let reparsed = Cli::command()
            .try_get_matches_from(argv)
            .ok()
            .and_then(|m| Cli::from_arg_matches(&m).ok())
            .and_then(|cli| match cli.command {
                Command::Put(put) => Some((put, cli.global)),
                _ => None,
            })
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "after `-` or @FILE only options may follow (see `nebula-cred put --help`); what followed \
                     is not shown, in case it was a value of '{}'",
                    args.id
                ))
            })?;
        let (reparsed, global) = reparsed;
        let mut value_argument = vec![marker.clone()];
        value_argument.extend(reparsed.value_argument.iter().cloned());
        let reparsed = PutArgs {
            value_argument,
            ..reparsed
        };
        check_values(&reparsed)?;
        return Ok(Some((reparsed, global)));
    }
    check_values(args).map(|()| None)
}

/// Refuses values typed as arguments, and a value given more than once.
fn check_values(args: &PutArgs) -> Result<(), CliError> {
    let refused = args.value_argument.iter().any(|a| matches!(a, ValueArgument::Other(_)));
    if refused {
        return Err(CliError::Usage(format!(
            "put takes no value argument: it would be visible in `ps` and shell history; give the value \
             of '{}' on stdin (`printf '%s' \"$VALUE\" | nebula-cred put {}`, or `-`), as @FILE or with \
             --from-file FILE (what followed the id is not shown, in case it was a value; options are \
             listed by `nebula-cred put --help`)",
            args.id, args.id
        )));
    }
    if args.value_argument.len() > 1 || (!args.value_argument.is_empty() && args.from_file.is_some()) {
        return Err(CliError::Usage(format!(
            "give the value of '{}' once: either `-`, @FILE or --from-file FILE",
            args.id
        )));
    }
    Ok(())
}

/// Where `put` reads the value from.
enum ValueSource<'a> {
    /// A file; `named` is false for `@FILE`, whose text may be a secret typed after a
    /// stray `@`, so errors must not repeat it (`--from-file FILE` names a file for sure).
    File {
        path: &'a std::path::Path,
        named: bool,
    },
    Stdin,
}

fn value_source(args: &PutArgs) -> ValueSource<'_> {
    match (args.value_argument.first(), &args.from_file) {
        (Some(ValueArgument::File(path)), _) => ValueSource::File { path, named: false },
        (_, Some(path)) => ValueSource::File { path, named: true },
        _ => ValueSource::Stdin,
    }
}

/// `put`: the value from `@FILE`/`--from-file`, a hidden prompt on a terminal, or stdin;
/// stored under the key of the record it replaces (or of the store), keeping its tags
/// and expiry unless the options change them.
///
/// No value can be longer than the backend's record limit (the serialized record being
/// larger than the value), so reading stops just past it: a wrong file or an endless
/// pipe is refused at once instead of being read, encrypted and encoded whole.
pub(crate) async fn put(
    provider: Arc<dyn StorageProvider>,
    key: EncryptionKey,
    args: &PutArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let record_limit = provider.capabilities().max_payload_bytes;
    let value = read_value(args, record_limit)?;
    if value.is_empty() {
        return Err(CliError::Usage(format!(
            "the value of '{}' is empty; give it on stdin, as @FILE or with --from-file FILE",
            args.id
        )));
    }
    let previous = match provider.retrieve(&args.id).await {
        Ok(stored) => Some(stored),
        Err(e) if e.is_not_found() => None,
        // An unreadable record is replaced (the library warns); it says nothing about keys.
        Err(e @ StorageError::Corrupted { .. }) => {
            eprintln!(
                "warning: the stored record of '{}' cannot be read and is replaced: {e}",
                args.id
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    if !args.new_key {
        check_key(provider.as_ref(), &key, &args.id, previous.as_ref()).await?;
    }
    let (tags, expires, changes) = merged_metadata(previous.as_ref().map(|p| &p.metadata), args);
    let value_limit = value_limit(&args.id, key.key_id(), &tags, record_limit);
    if value.len() > value_limit {
        return Err(too_large(&args.id, value.len(), value_limit, record_limit));
    }
    let store = CredentialStore::new(provider, Keyring::new(key));
    let metadata = store
        .put_expiring(&args.id, &value, tags, expires)
        .await
        .map_err(|e| match e {
            StorageError::TooLarge { limit, .. } => too_large(&args.id, value.len(), value_limit.min(limit), limit),
            e => e.into(),
        })?;
    emit(out, format!("stored '{}' (version {})\n", args.id, metadata.version))?;
    for change in changes {
        eprintln!("{}: {change}", args.id);
    }
    warn_if_expired(&args.id, &metadata);
    Ok(())
}

/// Refuses to store `id` under `key` when it replaces a record under another key, or,
/// for a new id, when none of the store's records (a sample) is under `key`: the key is
/// most likely mistyped (a passphrase) or the wrong file.
async fn check_key(
    provider: &dyn StorageProvider,
    key: &EncryptionKey,
    id: &CredentialId,
    previous: Option<&Stored>,
) -> Result<(), CliError> {
    let ours = key.key_id();
    let refuse = |theirs: String, what: String| {
        CliError::Usage(format!(
            "refusing to store '{id}' under key {ours}: {what} key {theirs}. A mistyped passphrase or the \
             wrong --key-file/NEBULA_CREDENTIAL_KEY gives another key, and nobody could read it back with \
             the store's key. Give the store's key, or pass --new-key if '{id}' is meant to be under key \
             {ours} (`nebula-cred rotate-key` moves the whole store to a new key)"
        ))
    };
    if let Some(previous) = previous {
        let theirs = &previous.data.key_id;
        if theirs != ours {
            return Err(refuse(
                theirs.clone(),
                "the credential it replaces is under".to_string(),
            ));
        }
        return Ok(());
    }
    let keys = sample_key_ids(provider).await?;
    if !keys.is_empty() && !keys.contains_key(ours) {
        let theirs = keys.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(refuse(theirs, "this store's credentials are under".into()));
    }
    Ok(())
}

/// The key ids of up to [`KEY_SAMPLE`] of the store's records (the doctor's probe, under
/// a random key, left out), with how many records each.
async fn sample_key_ids(provider: &dyn StorageProvider) -> Result<BTreeMap<String, usize>, CliError> {
    let ids = provider.list(&CredentialFilter::new()).await?;
    let mut keys = BTreeMap::new();
    for id in ids.iter().filter(|id| id.as_str() != PROBE_ID).take(KEY_SAMPLE) {
        if let Ok(stored) = provider.retrieve(id).await {
            *keys.entry(stored.data.key_id).or_insert(0) += 1;
        }
    }
    Ok(keys)
}

/// The tags and expiry to store, and what changed for people: the previous record's,
/// unless `--clear-tags`/`--tag`/`--expires`/`--no-expiry` say otherwise.
fn merged_metadata(previous: Option<&CredentialMetadata>, args: &PutArgs) -> (Tags, Option<Timestamp>, Vec<String>) {
    let Some(previous) = previous else {
        return (tags(&args.tags), args.expires, Vec::new());
    };
    let mut merged = if args.clear_tags {
        Tags::new()
    } else {
        previous.tags.clone()
    };
    merged.extend(args.tags.iter().cloned());
    let expires = if args.no_expiry {
        None
    } else {
        args.expires.or(previous.expires_at)
    };
    let mut changes = Vec::new();
    let shown = |t: &Tags| {
        if t.is_empty() { "none".to_string() } else { tag_text(t) }
    };
    if merged != previous.tags {
        changes.push(format!("tags changed: {} -> {}", shown(&previous.tags), shown(&merged)));
    } else if !merged.is_empty() {
        changes.push(format!("tags kept: {}", shown(&merged)));
    }
    let same_expiry = expires.map(|t| t.timestamp_millis()) == previous.expires_at.map(|t| t.timestamp_millis());
    if !same_expiry {
        changes.push(format!(
            "expiry changed: {} -> {}",
            when(previous.expires_at.as_ref()),
            when(expires.as_ref())
        ));
    } else if expires.is_some() {
        changes.push(format!(
            "expiry kept: {} (--expires or --no-expiry change it)",
            when(expires.as_ref())
        ));
    }
    (merged, expires, changes)
}

/// The largest value whose record (base64 ciphertext in JSON, with `tags`) fits in
/// `record_limit` bytes.
fn value_limit(id: &CredentialId, key_id: &str, tags: &Tags, record_limit: usize) -> usize {
    const TAG_LEN: usize = 16;
    let data = EncryptedData {
        version: EncryptedData::CURRENT_VERSION,
        key_id: key_id.to_string(),
        nonce: [0; 12],
        ciphertext: vec![0; TAG_LEN],
    };
    // Room for the largest expiry and version written later.
    let mut metadata = CredentialMetadata::new().with_tags(tags.clone());
    metadata.version = u64::MAX;
    metadata.expires_at = Some(metadata.created_at);
    let Ok(empty) = RecordEnvelope::encode(id, &data, &metadata, "cli", usize::MAX) else {
        return 0;
    };
    // The empty value's ciphertext (the GCM tag) is 24 base64 characters.
    let room = record_limit.saturating_sub(empty.len().saturating_sub(24));
    (room / 4 * 3).saturating_sub(TAG_LEN)
}

fn too_large(id: &CredentialId, size: usize, value_limit: usize, record_limit: usize) -> CliError {
    CliError::Failed {
        code: exit::ERROR,
        message: format!(
            "the value of '{id}' is {} bytes; this backend stores values up to {value_limit} bytes (its records \
             hold at most {record_limit} bytes, max_payload_bytes, and base64 plus JSON make a value about a \
             third larger); store a smaller secret or use a backend with a larger limit",
            if size > record_limit {
                format!("over {record_limit}")
            } else {
                size.to_string()
            }
        ),
    }
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

/// The value, read up to one byte past `limit` (the record limit: no value can be larger),
/// with a warning for a trailing line break or without it (`--trim`).
fn read_value(args: &PutArgs, limit: usize) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let (mut value, piped) = match value_source(args) {
        ValueSource::File { path, named } => {
            // `@TEXT` may be a value typed after a stray `@`: never repeat it.
            let what = if named {
                format!("the value file {}", path.display())
            } else {
                "the value file named after @ (its name is not repeated: it may be a secret typed by mistake)"
                    .to_string()
            };
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::Usage(format!("cannot read {what}: {e}; check the path")))?;
            let value = read_at_most(file, limit).map_err(|e| CliError::io(format!("cannot read {what}"), e))?;
            (value, true)
        }
        ValueSource::Stdin if std::io::stdin().is_terminal() => {
            let typed = crate::prompt::hidden(&format!("value of '{}' (input hidden): ", args.id))
                .map_err(|e| CliError::io("cannot read the value from the terminal", e))?;
            (Zeroizing::new(typed.into_bytes()), false)
        }
        ValueSource::Stdin => {
            let value = read_at_most(std::io::stdin().lock(), limit)
                .map_err(|e| CliError::io("cannot read the value from stdin", e))?;
            (value, true)
        }
    };
    // Over the record limit: `put` refuses it naming the value limit; no warning first.
    if value.len() > limit {
        return Ok(value);
    }
    let ends_in_newline = value.last() == Some(&b'\n');
    if args.trim {
        while matches!(value.last(), Some(b'\n' | b'\r')) {
            value.pop();
        }
    } else if piped && ends_in_newline {
        eprintln!(
            "warning: the value of '{}' ends with a line break, stored as given ({} bytes); if it is not part \
             of the secret, pass --trim (or give it with `printf '%s'` rather than echo)",
            args.id,
            value.len()
        );
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

/// Timestamps in JSON: UTC, always with milliseconds (`2027-01-01T00:00:00.000Z`).
const JSON_TIME: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// A credential's metadata in JSON, the one shape of `get --json`, `get --metadata
/// --json` and `list --json` (documented in the README): every field always present,
/// `expires_at` null when there is none.
#[derive(Serialize)]
struct MetadataJson<'a> {
    version: u64,
    created_at: String,
    updated_at: String,
    expires_at: Option<String>,
    expired: bool,
    key_id: &'a str,
    tags: &'a Tags,
}

/// `{"id", ["value" | "value_base64"], "metadata": {…}}`.
#[derive(Serialize)]
struct RecordJson<'a> {
    id: &'a CredentialId,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<&'a str>,
    metadata: MetadataJson<'a>,
}

impl<'a> RecordJson<'a> {
    fn new(id: &'a CredentialId, key_id: &'a str, m: &'a CredentialMetadata, now: Timestamp) -> Self {
        RecordJson {
            id,
            value: None,
            value_base64: None,
            metadata: MetadataJson {
                version: m.version,
                created_at: m.created_at.format(JSON_TIME).to_string(),
                updated_at: m.updated_at.format(JSON_TIME).to_string(),
                expires_at: m.expires_at.map(|t| t.format(JSON_TIME).to_string()),
                expired: m.is_expired_at(now),
                key_id,
                tags: &m.tags,
            },
        }
    }
}

fn to_json(value: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string(value)
        .map(|s| s + "\n")
        .map_err(|e| CliError::io("cannot encode JSON", std::io::Error::other(e)))
}

/// A time for people: UTC to the second, or `never`.
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

/// `get --metadata`: no key needed, nothing secret printed.
pub(crate) async fn get_metadata(
    provider: &dyn StorageProvider,
    args: &GetArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Stored { data, metadata, .. } = provider.retrieve(&args.id).await?;
    warn_if_expired(&args.id, &metadata);
    let text = if args.json {
        to_json(&RecordJson::new(&args.id, &data.key_id, &metadata, chrono::Utc::now()))?
    } else {
        format!(
            "id:       {}\nversion:  {}\ncreated:  {}\nupdated:  {}\nexpires:  {}\nkey id:   {}\ntags:     {}\n",
            args.id,
            metadata.version,
            when(Some(&metadata.created_at)),
            when(Some(&metadata.updated_at)),
            expiry_cell(&metadata, chrono::Utc::now()),
            printable(&data.key_id),
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

/// `get`: the value, raw or as JSON, to stdout only. On a terminal (`--reveal`) a final
/// line break is added when the value has none, so the prompt does not run into it.
pub(crate) async fn get_value(
    provider: &dyn StorageProvider,
    keyring: &Keyring,
    args: &GetArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Stored { data, metadata, .. } = provider.retrieve(&args.id).await?;
    let plain = keyring.decrypt(&args.id, &data).map_err(|e| match &e {
        // The library's advice ("add that key as an old key") is for applications; get
        // takes one key, so say how to give the right one.
        nebula_credential::CryptoError::UnknownKey { key_id, .. } => CliError::Failed {
            code: exit::ERROR,
            message: format!(
                "{e}\n  hint: the key given (id {}) is not the one '{}' was stored with (id {key_id}); \
                 give that key with --key-file FILE or NEBULA_CREDENTIAL_KEY (or its passphrase, with \
                 the same salt)",
                keyring.current().key_id(),
                args.id
            ),
        },
        _ => StorageError::from(e).into(),
    })?;
    warn_if_expired(&args.id, &metadata);
    let bytes: &[u8] = &plain;
    if !args.json {
        emit(out, bytes)?;
        if std::io::stdout().is_terminal() && bytes.last() != Some(&b'\n') {
            emit(out, "\n")?;
        }
        return Ok(());
    }
    let text = std::str::from_utf8(bytes).ok();
    let encoded = Zeroizing::new(if text.is_none() {
        STANDARD.encode(bytes)
    } else {
        String::new()
    });
    let mut record = RecordJson::new(&args.id, &data.key_id, &metadata, chrono::Utc::now());
    record.value = text;
    record.value_base64 = text.is_none().then_some(encoded.as_str());
    let line = Zeroizing::new(to_json(&record)?);
    emit(out, line.as_bytes())
}

/// `list`: a table, one JSON array, or ids only. Credentials deleted meanwhile are left
/// out; unreadable ones are reported and make the command incomplete.
pub(crate) async fn list(
    provider: &dyn StorageProvider,
    context: &Context,
    args: &ListArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let ids = crate::context::select_ids(provider, &args.tags, args.prefix.as_deref()).await?;
    let by_record = args.expired || args.expiring_within.is_some() || args.key_id.is_some();
    if args.ids_only && !by_record {
        if ids.is_empty() {
            context.hint_where();
        }
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
    let now = chrono::Utc::now();
    let horizon = args.expiring_within.and_then(|d| now.checked_add_signed(d));
    let mut unreadable = 0;
    let mut listed = Vec::new();
    for (id, read) in rows {
        match read {
            Ok(stored) => {
                let m = &stored.metadata;
                let keep = (!args.expired || m.is_expired_at(now))
                    && horizon.is_none_or(|h| m.is_expired_at(h))
                    && args.key_id.as_ref().is_none_or(|k| *k == stored.data.key_id);
                if keep {
                    listed.push((id, stored));
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                unreadable += 1;
                eprintln!("warning: cannot read '{id}': {e}");
            }
        }
    }
    if listed.is_empty() && unreadable == 0 && !by_record && args.tags.is_empty() && args.prefix.is_none() {
        context.hint_where();
    }
    let text = if args.ids_only {
        listed.iter().map(|(id, _)| format!("{id}\n")).collect()
    } else if args.json {
        let records: Vec<RecordJson<'_>> = listed
            .iter()
            .map(|(id, s)| RecordJson::new(id, &s.data.key_id, &s.metadata, now))
            .collect();
        to_json(&records)?
    } else {
        table(&listed, now)
    };
    emit(out, text)?;
    if unreadable > 0 {
        return Err(CliError::Incomplete(format!(
            "{unreadable} credential(s) could not be read; see the warnings above"
        )));
    }
    Ok(())
}

/// The expiry for people, marked once it has passed.
fn expiry_cell(m: &CredentialMetadata, now: Timestamp) -> String {
    let at = when(m.expires_at.as_ref());
    if m.is_expired_at(now) {
        format!("{at} (expired)")
    } else {
        at
    }
}

fn table(rows: &[(CredentialId, Stored)], now: Timestamp) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|(id, s)| {
            let m = &s.metadata;
            [
                id.to_string(),
                m.version.to_string(),
                when(Some(&m.updated_at)),
                expiry_cell(m, now),
                printable(&s.data.key_id),
                tag_text(&m.tags),
            ]
        })
        .collect();
    let header = ["ID", "VERSION", "UPDATED", "EXPIRES", "KEY", "TAGS"].map(String::from);
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
    let new_path = args.new_key_file.as_deref().ok_or_else(|| {
        CliError::Usage("give the new key with --new-key-file FILE (`nebula-cred keygen --out FILE`)".into())
    })?;
    let new = key::key_file(new_path)?;
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
        ring = ring
            .with_old_key(key::key_file(path)?)
            .map_err(|e| CliError::Usage(format!("the old key file {}: {e}", path.display())))?;
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
        store.add_current_key(new)?;
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
        "done: every credential is under key {} ({}).\n\
         The safe order, if not followed yet: 1. give applications the new key as an additional \
         (old) key, so they read both; 2. rotate-key (done); 3. make the new key their only key. \
         Processes holding only the old key cannot read what was re-encrypted: give them the new key now.",
        store.current_key_id(),
        new_path.display()
    );
    Ok(())
}

/// `rotate-key --dry-run`: how many records are under each key id (and, with
/// `--new-key-file`, how many rotate-key would re-encrypt). Needs no key; writes nothing.
pub(crate) async fn rotate_dry_run(
    provider: &dyn StorageProvider,
    args: &RotateArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let new_id = match &args.new_key_file {
        Some(path) => Some(key::key_file(path)?.key_id().to_string()),
        None => None,
    };
    let ids = provider.list(&CredentialFilter::new()).await?;
    let reads: Vec<_> = futures::stream::iter(ids)
        .map(|id| async move {
            let read = provider.retrieve(&id).await;
            (id, read)
        })
        .buffered(LIST_READS)
        .collect()
        .await;
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for (id, read) in reads {
        match read {
            Ok(stored) => *per_key.entry(stored.data.key_id).or_insert(0) += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => unreadable.push((id, e.kind())),
        }
    }
    let total: usize = per_key.values().sum();
    let mut text = format!("dry run, nothing written: {total} credential(s)\nper key id:\n");
    for (key_id, n) in &per_key {
        let mark = if new_id.as_deref() == Some(key_id.as_str()) {
            "  (the new key)"
        } else {
            ""
        };
        text.push_str(&format!("  {:<24} {n:>6}{mark}\n", printable(key_id)));
    }
    if let Some(new_id) = &new_id {
        let already = per_key.get(new_id).copied().unwrap_or(0);
        text.push_str(&format!(
            "would re-encrypt under key {new_id}: {}\nalready under it: {already}\n",
            total - already
        ));
    }
    if !unreadable.is_empty() {
        text.push_str(&format!("unreadable: {}\n", unreadable.len()));
        for (id, kind) in &unreadable {
            text.push_str(&format!("  {id}: {kind}\n"));
        }
    }
    emit(out, text)?;
    if !unreadable.is_empty() {
        return Err(CliError::Incomplete(format!(
            "{} credential(s) could not be read; rotate-key would fail on them too",
            unreadable.len()
        )));
    }
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

/// `doctor`: prints where the store is, then each step as it finishes; exits with the
/// first failure's status. A configuration error is printed once, as the failing step.
pub(crate) async fn doctor(context: Result<Context, CliError>, out: &mut dyn Write) -> Result<(), CliError> {
    let context = match context {
        Ok(context) => context,
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
            return Err(CliError::Quiet(e.code()));
        }
    };
    emit(out, format!("{}\n", context.describe()))?;
    let mut failed_write = None;
    let report = doctor::diagnose(context.storage(), |step| {
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
