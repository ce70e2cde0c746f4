//! [`EncryptedData`]: what a provider stores in place of the secret.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of an AES-GCM nonce in bytes (96 bits).
pub const NONCE_LEN: usize = 12;

/// An encrypted credential value: AES-256-GCM ciphertext (tag included), the random
/// nonce, and the id of the key that sealed it. Bytes serialize as base64 in JSON.
///
/// Ciphertext is not secret, but `Debug` still shows only its length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedData {
    /// Encryption format version (currently [`EncryptedData::CURRENT_VERSION`]).
    pub version: u8,
    /// Id of the key in the [`Keyring`](crate::Keyring) that encrypted this.
    pub key_id: String,
    /// The 96-bit random nonce.
    #[serde(with = "b64_array")]
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte GCM tag.
    #[serde(with = "b64_vec")]
    pub ciphertext: Vec<u8>,
}

impl EncryptedData {
    /// The encryption format this library writes: AES-256-GCM, id as associated data.
    pub const CURRENT_VERSION: u8 = 1;
}

impl fmt::Debug for EncryptedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedData")
            .field("version", &self.version)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

mod b64_vec {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

mod b64_array {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; NONCE_LEN], s: S) -> Result<S::Ok, S::Error> {
        super::b64_vec::serialize(bytes, s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; NONCE_LEN], D::Error> {
        let v = super::b64_vec::deserialize(d)?;
        let len = v.len();
        v.try_into()
            .map_err(|_| serde::de::Error::custom(format!("nonce must be {NONCE_LEN} bytes, got {len}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_json_round_trip() {
        let d = EncryptedData {
            version: 1,
            key_id: "k1".into(),
            nonce: [7; NONCE_LEN],
            ciphertext: vec![0, 1, 2, 255],
        };
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"ciphertext\":\"AAEC/w==\""), "{json}");
        assert_eq!(serde_json::from_str::<EncryptedData>(&json).unwrap(), d);
        let bad = json.replace("BwcHBwcHBwcHBwcH", "BwcH");
        assert!(
            serde_json::from_str::<EncryptedData>(&bad)
                .unwrap_err()
                .to_string()
                .contains("12 bytes")
        );
        assert!(!format!("{d:?}").contains("255"));
    }
}
