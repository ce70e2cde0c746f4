//! [`StoredRecord`]: the versioned JSON document backends persist per credential.
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
pub struct StoredRecord {
    /// Record format version; see [`StoredRecord::FORMAT_VERSION`].
    pub format_version: u32,
    /// The credential's id, exactly as given.
    pub id: CredentialId,
    /// The encrypted value.
    pub encrypted_data: EncryptedData,
    /// The metadata.
    pub metadata: CredentialMetadata,
}

impl StoredRecord {
    /// The record format this library writes.
    pub const FORMAT_VERSION: u32 = 1;

    /// A record in the current format.
    pub fn new(id: CredentialId, encrypted_data: EncryptedData, metadata: CredentialMetadata) -> Self {
        StoredRecord {
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
        let bytes = serde_json::to_vec(self).map_err(|e| StorageError::Backend {
            provider,
            operation: crate::Operation::Store,
            id: Some(self.id.clone()),
            status: None,
            code: None,
            message: "cannot serialize the record".into(),
            source: Some(Box::new(e)),
        })?;
        if bytes.len() > limit {
            return Err(StorageError::TooLarge {
                provider,
                id: self.id.clone(),
                size: bytes.len(),
                limit,
            });
        }
        Ok(bytes)
    }

    /// Parses a record read from `location`. Garbage, truncation and records from a
    /// newer format give [`StorageError::Corrupted`] naming the location.
    pub fn from_json(
        bytes: &[u8],
        provider: &'static str,
        location: &str,
        expected: Option<&CredentialId>,
    ) -> Result<Self, StorageError> {
        let corrupted = |reason: String| StorageError::Corrupted {
            provider,
            id: expected.cloned(),
            location: location.to_string(),
            reason,
        };
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| corrupted(format!("not a credential record ({e})")))?;
        if version.format_version > Self::FORMAT_VERSION {
            return Err(corrupted(format!(
                "written by record format {}, this library reads up to format {}; upgrade nebula-credential",
                version.format_version,
                Self::FORMAT_VERSION
            )));
        }
        let record: StoredRecord =
            serde_json::from_slice(bytes).map_err(|e| corrupted(format!("invalid record ({e})")))?;
        if let Some(expected) = expected
            && &record.id != expected
        {
            return Err(corrupted(format!("it holds credential '{}' instead", record.id)));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> StoredRecord {
        StoredRecord::new(
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
        assert_eq!(StoredRecord::from_json(&bytes, "mock", "mem", Some(&r.id)).unwrap(), r);
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
        let e = StoredRecord::from_json(truncated, "local", "/x/Key.json", Some(&r.id)).unwrap_err();
        assert!(matches!(e, StorageError::Corrupted { .. }));
        assert!(e.to_string().contains("/x/Key.json"));

        let newer = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"format_version\":1", "\"format_version\":9");
        let e = StoredRecord::from_json(newer.as_bytes(), "local", "f", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("format 9") && e.contains("format 1"), "{e}");

        let other: CredentialId = "other".parse().unwrap();
        assert!(StoredRecord::from_json(&bytes, "local", "f", Some(&other)).is_err());
        assert!(!r.needs_migration());
    }
}
