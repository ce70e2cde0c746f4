//! [`RecordEnvelope`]: the versioned JSON document backends persist per credential.
//!
//! Written once here so every backend stores the same bytes and checks sizes the same way.

use serde::{Deserialize, Serialize};

use crate::data::EncryptedData;
use crate::error::StorageError;
use crate::id::CredentialId;
use crate::metadata::CredentialMetadata;

/// One credential as persisted: `{format_version, id, encrypted_data, metadata}`.
///
/// The original id travels inside the record so backends whose names cannot carry it
/// (case-insensitive or lowercase names) can still return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEnvelope {
    /// Record format version; see [`RecordEnvelope::FORMAT_VERSION`].
    pub format_version: u32,
    /// The credential's id, exactly as given.
    pub id: CredentialId,
    /// The encrypted value.
    pub encrypted_data: EncryptedData,
    /// The metadata.
    pub metadata: CredentialMetadata,
}

impl RecordEnvelope {
    /// The record format this library writes.
    pub const FORMAT_VERSION: u32 = 1;

    /// A record in the current format.
    pub fn new(id: CredentialId, encrypted_data: EncryptedData, metadata: CredentialMetadata) -> Self {
        RecordEnvelope {
            format_version: Self::FORMAT_VERSION,
            id,
            encrypted_data,
            metadata,
        }
    }

    /// `true` when the record was written by an older format and should be rewritten.
    pub fn needs_migration(&self) -> bool {
        self.format_version < Self::FORMAT_VERSION
    }

    /// Serializes to compact JSON and checks the size against `limit` bytes, so a
    /// backend refuses an oversized record before any I/O.
    pub fn to_json(&self, provider: &'static str, limit: usize) -> Result<Vec<u8>, StorageError> {
        Self::encode(&self.id, &self.encrypted_data, &self.metadata, provider, limit)
    }

    /// The JSON record of `id` with `data` and `metadata`, without copying them; fails
    /// with [`StorageError::TooLarge`] above `limit` bytes.
    pub fn encode(
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        provider: &'static str,
        limit: usize,
    ) -> Result<Vec<u8>, StorageError> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            format_version: u32,
            id: &'a CredentialId,
            encrypted_data: &'a EncryptedData,
            metadata: &'a CredentialMetadata,
        }
        let record = Borrowed {
            format_version: Self::FORMAT_VERSION,
            id,
            encrypted_data: data,
            metadata,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| {
            StorageError::backend(
                provider,
                crate::Operation::Store,
                Some(id),
                "cannot serialize the record",
            )
            .with_source(e)
        })?;
        if bytes.len() > limit {
            return Err(StorageError::too_large(provider, id, bytes.len(), limit));
        }
        Ok(bytes)
    }

    /// Checks that the record of `id` fits in `limit` bytes, as [`encode`](Self::encode) does.
    pub fn check_size(
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        provider: &'static str,
        limit: usize,
    ) -> Result<(), StorageError> {
        Self::encode(id, data, metadata, provider, limit).map(drop)
    }

    /// Parses a record read from `location`. Garbage, truncation and records from a
    /// newer format give [`StorageError::Corrupted`] naming the location.
    pub fn from_json(
        bytes: &[u8],
        provider: &'static str,
        location: &str,
        expected: Option<&CredentialId>,
    ) -> Result<Self, StorageError> {
        let corrupted = |reason: String| StorageError::corrupted(provider, expected, location, reason);
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let version: Version = serde_json::from_slice(bytes)
            .map_err(|e| corrupted(format!("not a credential record ({})", position(&e))))?;
        if version.format_version > Self::FORMAT_VERSION {
            return Err(corrupted(format!(
                "written by record format {}, this library reads up to format {}; upgrade nebula-credential",
                version.format_version,
                Self::FORMAT_VERSION
            )));
        }
        let record: RecordEnvelope =
            serde_json::from_slice(bytes).map_err(|e| corrupted(format!("invalid record ({})", position(&e))))?;
        if let Some(expected) = expected
            && &record.id != expected
        {
            return Err(corrupted(format!("it holds credential '{}' instead", record.id)));
        }
        Ok(record)
    }
}

/// Where and what kind of parse error, never its text: serde_json quotes the input it
/// could not read, and that input may be a secret.
fn position(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected content",
        serde_json::error::Category::Eof => "truncated",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RecordEnvelope {
        RecordEnvelope::new(
            "Key".parse().unwrap(),
            EncryptedData {
                version: 1,
                key_id: "k".into(),
                nonce: [0; 12],
                ciphertext: vec![1; 100],
            },
            CredentialMetadata::new(),
        )
    }

    #[test]
    fn round_trip_and_size_limit() {
        let r = record();
        let bytes = r.to_json("mock", 10_000).unwrap();
        let n = bytes.len();
        assert_eq!(
            RecordEnvelope::from_json(&bytes, "mock", "mem", Some(&r.id)).unwrap(),
            r
        );
        assert!(r.to_json("mock", n).is_ok());
        match r.to_json("mock", n - 1) {
            Err(StorageError::TooLarge { size, limit, .. }) => {
                assert_eq!((size, limit), (n, n - 1))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupted_inputs() {
        let r = record();
        let bytes = r.to_json("mock", 10_000).unwrap();
        let truncated = &bytes[..bytes.len() / 2];
        let e = RecordEnvelope::from_json(truncated, "local", "/x/Key.json", Some(&r.id)).unwrap_err();
        assert!(matches!(e, StorageError::Corrupted { .. }));
        assert!(e.to_string().contains("/x/Key.json"));

        let newer = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"format_version\":1", "\"format_version\":9");
        let e = RecordEnvelope::from_json(newer.as_bytes(), "local", "f", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("format 9") && e.contains("format 1"), "{e}");

        for foreign in [
            &b"123456"[..],
            br#"{"format_version":1,"id":"Key","pin":"987654"}"#,
            b"\"hunter2\"",
        ] {
            let e = RecordEnvelope::from_json(foreign, "local", "f", Some(&r.id))
                .unwrap_err()
                .to_string();
            for secret in ["123456", "987654", "hunter2"] {
                assert!(!e.contains(secret), "stored content leaked into {e}");
            }
            assert!(e.contains("line 1"), "{e}");
        }

        let other: CredentialId = "other".parse().unwrap();
        assert!(RecordEnvelope::from_json(&bytes, "local", "f", Some(&other)).is_err());
        assert!(!r.needs_migration());
    }
}
