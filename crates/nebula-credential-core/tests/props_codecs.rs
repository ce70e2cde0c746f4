//! Property tests of the core's codecs: credential ids, the tag codec (`TagScheme`) in the
//! shapes the backends use, and the record envelope with the real crypto.
//!
//! Cases per property: `PROPTEST_CASES` (default 256). Each `props_…` test prints
//! `property cases <codec>: N` (see `tests/support/props.rs`).

#[path = "support/props.rs"]
mod support;

use nebula_credential_core::remote::TagScheme;
use nebula_credential_core::{
    CredentialId, CredentialMetadata, EncryptedData, EncryptionKey, ErrorKind, Keyring, MAX_ID_LEN, RecordEnvelope,
    StorageError, Tags,
};
use proptest::prelude::*;
use serde_json::Value;

use support::{Codec, ensure, strategies};

/// What the id rules say, written independently of `CredentialId::new`.
fn is_valid_id(s: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&s.chars().count())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[test]
fn props_credential_id() {
    let mut codec = Codec::new("credential-id");
    codec.check("valid ids are accepted and display as given", strategies::id(), |id| {
        let text = id.to_string();
        let parsed: CredentialId = text.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        ensure(parsed == id && parsed.as_str() == text, || {
            format!("{text:?} does not round-trip")
        })?;
        let json = serde_json::to_string(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: CredentialId = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        ensure(back == id, || format!("{json} does not round-trip through JSON"))
    });
    codec.check(
        "exactly the strings the rules allow are accepted",
        strategies::any_text(),
        |text| {
            let outcome = CredentialId::new(text.clone());
            ensure(outcome.is_ok() == is_valid_id(&text), || {
                format!(
                    "{text:?}: accepted = {}, the rules say {}",
                    outcome.is_ok(),
                    is_valid_id(&text)
                )
            })?;
            match outcome {
                Ok(id) => ensure(id.as_str() == text, || format!("{text:?} changed to {id}")),
                Err(e) => {
                    let shown = e.to_string();
                    // Long input is shortened: an error shows at most 40 characters of it, each
                    // escaped to at most 10 (`\u{10ffff}`).
                    ensure(shown.chars().count() <= 40 * 10 + 300, || {
                        format!("{} characters: {shown}", shown.len())
                    })?;
                    ensure(shown.contains("1 to 128 characters"), || format!("no rule in {shown}"))?;
                    let json = serde_json::to_string(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    ensure(serde_json::from_str::<CredentialId>(&json).is_err(), || {
                        format!("{json} deserialises although invalid")
                    })
                }
            }
        },
    );
    codec.check(
        "ids differing in case or by one character are distinct",
        strategies::distinct_ids(),
        |(a, b)| ensure(a != b && a.to_string() != b.to_string(), || format!("{a} == {b}")),
    );
    codec.report();
}

/// The tag shapes of the backends without a property module of their own (AWS, Vault),
/// and the default and a label-like scheme: each must encode within its limits.
#[test]
fn props_tag_scheme() {
    const AWS_LIKE: TagScheme = TagScheme {
        value_char: |c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c),
        ..TagScheme::DEFAULT
    };
    const VAULT_LIKE: TagScheme = TagScheme {
        max_value_chars: 128,
        value_char: |c| !c.is_control() && c != '\u{2400}',
        ..TagScheme::DEFAULT
    };
    const LABEL_LIKE: TagScheme = TagScheme {
        managed_key: "example.io/managed-by",
        managed_value: "me",
        created_key: "example.io/created-at",
        owned_key: "example.io/tag-keys",
        reserved_prefix: "example.io/",
        max_value_chars: 63,
        value_edge_char: |c| c.is_ascii_alphanumeric(),
        digest_separator: '-',
        ..TagScheme::DEFAULT
    };
    let mut codec = Codec::new("tag-scheme");
    for scheme in [AWS_LIKE, VAULT_LIKE, LABEL_LIKE] {
        support::check_tag_scheme(&mut codec, scheme);
    }
    codec.report();
}

/// A regression kept from the properties (input: no tags at all, under a scheme whose
/// managed-by key lies outside its reserved prefix, as Kubernetes' `app.kubernetes.io/managed-by`):
/// the owned view dropped the marker, so a filter re-checked on it never matched.
#[test]
fn the_owned_view_keeps_a_marker_outside_the_reserved_prefix() {
    const LABELS: TagScheme = TagScheme {
        managed_key: "app.example.io/managed-by",
        reserved_prefix: "nebula-credential.io/",
        created_key: "nebula-credential.io/created-at",
        owned_key: "nebula-credential.io/tag-keys",
        ..TagScheme::DEFAULT
    };
    let tags = LABELS.desired(&CredentialMetadata::new(), &Tags::new());
    let view = LABELS.owned_view(&tags);
    assert_eq!(view, tags);
    let id: CredentialId = "k".parse().unwrap();
    assert!(LABELS.matches(&nebula_credential_core::CredentialFilter::new(), &id, &view));
}

const PLAINTEXT: &[u8] = b"the secret value";

fn keyring() -> Keyring {
    Keyring::new(EncryptionKey::from_bytes(&[7u8; 32]).expect("32 bytes"))
}

/// A record of `id` sealed with the test key, and its JSON.
fn sealed(id: &CredentialId, tags: Tags) -> (RecordEnvelope, Vec<u8>) {
    let data = keyring().encrypt(id, PLAINTEXT).expect("encrypts");
    let record = RecordEnvelope::new(id.clone(), data, CredentialMetadata::new().with_tags(tags));
    let json = record.to_json("props", usize::MAX).expect("serialises");
    (record, json)
}

/// Reads `bytes` as the record of `id` the way a store does: parse, then decrypt.
fn read_as(bytes: &[u8], id: &CredentialId) -> Result<Vec<u8>, StorageError> {
    let record = RecordEnvelope::from_json(bytes, "props", "mem://x", Some(id))?;
    Ok(keyring().decrypt(id, &record.encrypted_data)?.to_vec())
}

/// One field of a record changed.
#[derive(Debug, Clone)]
enum Tamper {
    NonceBit(usize, u8),
    CiphertextBit(usize, u8),
    Truncate(usize),
    Extend(Vec<u8>),
    KeyId(String),
    Version(u8),
    Id(CredentialId),
    JsonByte(usize, u8),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(i, b)| Tamper::NonceBit(i, b)),
        (any::<usize>(), 0..8u8).prop_map(|(i, b)| Tamper::CiphertextBit(i, b)),
        any::<usize>().prop_map(Tamper::Truncate),
        prop::collection::vec(any::<u8>(), 1..20).prop_map(Tamper::Extend),
        "[A-Za-z0-9._-]{1,20}".prop_map(Tamper::KeyId),
        (2..=u8::MAX).prop_map(Tamper::Version),
        strategies::id().prop_map(Tamper::Id),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Tamper::JsonByte(i, b)),
    ]
}

fn apply(tamper: &Tamper, record: &RecordEnvelope, json: &[u8]) -> Option<Vec<u8>> {
    let mut r = record.clone();
    let data: &mut EncryptedData = &mut r.encrypted_data;
    match tamper {
        Tamper::NonceBit(i, b) => data.nonce[i % data.nonce.len()] ^= 1 << b,
        Tamper::CiphertextBit(i, b) => {
            let n = data.ciphertext.len();
            data.ciphertext[i % n] ^= 1 << b;
        }
        Tamper::Truncate(n) => {
            let keep = n % data.ciphertext.len();
            data.ciphertext.truncate(keep);
        }
        Tamper::Extend(more) => data.ciphertext.extend_from_slice(more),
        Tamper::KeyId(k) if *k != data.key_id => data.key_id = k.clone(),
        Tamper::Version(v) => data.version = *v,
        Tamper::Id(other) if *other != r.id => r.id = other.clone(),
        Tamper::JsonByte(i, b) => {
            let mut bytes = json.to_vec();
            let at = i % bytes.len();
            if bytes[at] == *b {
                return None;
            }
            bytes[at] = *b;
            return Some(bytes);
        }
        _ => return None,
    }
    Some(serde_json::to_vec(&r).expect("serialises"))
}

/// JSON-ish bytes: arbitrary bytes, records with odd values in every field, and valid
/// records cut short.
fn record_like_bytes(secret: String) -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just(Value::String(secret.clone())),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        strategies::any_text().prop_map(Value::String),
        Just(Value::Null),
        Just(serde_json::json!([1, 2, 3])),
        Just(serde_json::json!({"a": {}})),
    ];
    const FIELDS: &[&str] = &[
        "format_version",
        "id",
        "encrypted_data",
        "metadata",
        "version",
        "key_id",
        "nonce",
        "ciphertext",
    ];
    let structured = (
        prop::sample::select(FIELDS),
        value,
        strategies::id(),
        prop::sample::select(FIELDS),
    )
        .prop_map(|(field, value, id, nested)| {
            let (record, _) = sealed(&id, Tags::new());
            let mut json = serde_json::to_value(&record).expect("serialises");
            if let Some(obj) = json.get_mut(field).and_then(Value::as_object_mut) {
                obj.insert(nested.to_string(), value);
            } else {
                json[field] = value;
            }
            serde_json::to_vec(&json).expect("serialises")
        });
    let cut = (strategies::id(), any::<prop::sample::Index>()).prop_map(|(id, at)| {
        let (_, json) = sealed(&id, Tags::new());
        json[..at.index(json.len())].to_vec()
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        structured,
        cut,
        Just(secret.into_bytes())
    ]
}

#[test]
fn props_record_envelope() {
    let mut codec = Codec::new("record-envelope");
    codec.check(
        "a record round-trips and decrypts only as its own id",
        (strategies::distinct_ids(), strategies::tags()),
        |((id, other), tags)| {
            let (record, json) = sealed(&id, tags);
            let back = RecordEnvelope::from_json(&json, "props", "mem://x", Some(&id))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            ensure(back == record, || "the record does not round-trip".into())?;
            let plain = read_as(&json, &id).map_err(|e| TestCaseError::fail(e.to_string()))?;
            ensure(plain == PLAINTEXT, || "wrong plaintext".into())?;
            let as_other = read_as(&json, &other);
            ensure(matches!(&as_other, Err(e) if e.kind() == ErrorKind::Corrupted), || {
                format!("read as {other}: {as_other:?}")
            })?;
            let decrypted = keyring().decrypt(&other, &record.encrypted_data);
            ensure(decrypted.is_err(), || format!("{id}'s ciphertext decrypts as {other}"))
        },
    );
    codec.check(
        "a tampered record is Corrupted or a Crypto error, never a value",
        (strategies::id(), tamper()),
        |(id, tamper)| {
            let (record, json) = sealed(&id, Tags::new());
            let Some(bytes) = apply(&tamper, &record, &json) else {
                return Ok(());
            };
            match read_as(&bytes, &id) {
                // A flipped byte in a place nothing reads (whitespace-free JSON has few:
                // e.g. a metadata digit) leaves the secret intact: that is no tampering
                // with the value.
                Ok(plain) => ensure(plain == PLAINTEXT, || format!("{tamper:?} gave another value")),
                Err(e) => ensure(matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::Crypto), || {
                    format!("{tamper:?}: {:?} error {e}", e.kind())
                }),
            }
        },
    );
    codec.check(
        "arbitrary bytes never panic, are Corrupted, and never show in the error",
        strategies::secret().prop_flat_map(|s| {
            (
                Just(s.clone()),
                record_like_bytes(s),
                prop::option::of(strategies::id()),
            )
        }),
        |(secret, bytes, expected)| {
            match RecordEnvelope::from_json(&bytes, "props", "mem://x", expected.as_ref()) {
                // Some edits leave a well-formed record (an extra metadata field, …).
                Ok(record) => ensure(expected.as_ref().is_none_or(|id| *id == record.id), || {
                    format!("a record of {} read as {expected:?}", record.id)
                })?,
                Err(e) => {
                    ensure(e.kind() == ErrorKind::Corrupted, || format!("{:?}: {e}", e.kind()))?;
                    let (shown, debug) = (e.to_string(), format!("{e:?}"));
                    ensure(!shown.contains(&secret) && !debug.contains(&secret), || {
                        format!("the stored content shows in {shown} / {debug}")
                    })?;
                }
            }
            Ok(())
        },
    );
    codec.report();
}

/// A regression kept from the properties: a record whose `ciphertext` is shorter than the
/// GCM tag is a Crypto error, not a panic.
#[test]
fn a_ciphertext_shorter_than_its_tag_is_a_crypto_error() {
    let id: CredentialId = "short".parse().unwrap();
    let (mut record, _) = sealed(&id, Tags::new());
    record.encrypted_data.ciphertext.truncate(3);
    let json = serde_json::to_vec(&record).unwrap();
    let e = read_as(&json, &id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Crypto, "{e}");
}
