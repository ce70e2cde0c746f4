//! Encryption: [`EncryptionKey`], [`Keyring`], AES-256-GCM with the credential id bound
//! as associated data, Argon2id passphrase derivation, and [`CryptoError`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use zeroize::{Zeroize, Zeroizing};

use crate::data::{EncryptedData, NONCE_LEN};
use crate::id::{CredentialId, MAX_ID_LEN};

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;
/// Shortest salt accepted for passphrase derivation, in bytes.
pub const MIN_SALT_LEN: usize = 16;

/// Argon2id parameters of [`EncryptionKey::from_passphrase`], pinned: OWASP's minimum
/// (m = 19 MiB, t = 2, p = 1), version 1.3, 32-byte output.
fn argon2() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, Some(KEY_LEN)).expect("valid Argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Length of the GCM authentication tag that ends every ciphertext, in bytes.
const TAG_LEN: usize = 16;

/// Prefix of the associated data, before the credential id.
const AAD_PREFIX: &[u8] = b"nebula-credential/v1/";

/// Associated data: binds a ciphertext to its credential id and format. Built on the
/// stack (an id is at most [`MAX_ID_LEN`] ASCII characters), no allocation per call.
struct AssociatedData {
    bytes: [u8; AAD_PREFIX.len() + MAX_ID_LEN],
    len: usize,
}

impl AssociatedData {
    fn new(id: &CredentialId) -> Self {
        let id = id.as_str().as_bytes();
        // `CredentialId` guarantees at most MAX_ID_LEN ASCII bytes.
        let len = AAD_PREFIX.len() + id.len();
        let mut bytes = [0u8; AAD_PREFIX.len() + MAX_ID_LEN];
        bytes[..AAD_PREFIX.len()].copy_from_slice(AAD_PREFIX);
        bytes[AAD_PREFIX.len()..len].copy_from_slice(id);
        AssociatedData { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The expanded key (AES round keys and GHASH key powers) of `bytes`; zeroized when
/// dropped (aes-gcm's `zeroize` feature).
fn cipher(bytes: &[u8; KEY_LEN]) -> Aes256Gcm {
    // A 32-byte slice is always a valid AES-256 key.
    Aes256Gcm::new_from_slice(bytes).expect("32-byte key")
}

/// A 256-bit AES key with an id. Zeroized on drop; never printed.
///
/// The id defaults to a key check value (the first 8 bytes of an AES-GCM tag over
/// nothing, in hex): stable for the same key, useless for recovering it.
///
/// The key schedule is expanded once, when the key is made, and shared by its clones;
/// it is zeroized with the key when the last clone is dropped.
///
/// ```
/// use nebula_credential_core::EncryptionKey;
/// let key = EncryptionKey::generate();
/// use secrecy::ExposeSecret;
/// assert!(!format!("{key:?}").contains(&key.to_base64().expose_secret()[..8]));
/// ```
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    bytes: Zeroizing<[u8; KEY_LEN]>,
    /// `bytes` expanded once for AES-256-GCM (not per operation); zeroized on drop.
    cipher: Arc<Aes256Gcm>,
}

impl EncryptionKey {
    /// A fresh random key from a cryptographically secure generator.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::fill(&mut bytes[..]);
        Self::from_array(bytes)
    }

    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::InvalidKey {
            reason: format!("a key must be {KEY_LEN} bytes, got {}", bytes.len()),
        })?;
        Ok(Self::from_array(Zeroizing::new(array)))
    }

    /// A key from standard base64 of 32 bytes (e.g. `openssl rand -base64 32`).
    pub fn from_base64(encoded: &SecretString) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(encoded.expose_secret().trim().as_bytes())
                .map_err(|_| CryptoError::InvalidKey {
                    reason: "the key is not valid base64; generate one with `openssl rand -base64 32`".into(),
                })?,
        );
        Self::from_bytes(&decoded)
    }

    /// Derives a key from a passphrase with Argon2id v1.3 (19 MiB, 2 passes, 1 lane; pinned,
    /// so a crate upgrade never changes a derived key). Slow on purpose:
    /// derive once at startup, not per operation. Keep `salt` (≥ 16 random bytes) with
    /// your configuration; the same passphrase and salt give the same key.
    pub fn from_passphrase(passphrase: &SecretString, salt: &[u8]) -> Result<Self, CryptoError> {
        if salt.len() < MIN_SALT_LEN {
            return Err(CryptoError::InvalidKey {
                reason: format!(
                    "the salt has {} bytes; use at least {MIN_SALT_LEN} random bytes",
                    salt.len()
                ),
            });
        }
        if passphrase.expose_secret().is_empty() {
            return Err(CryptoError::InvalidKey {
                reason: "the passphrase is empty".into(),
            });
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        argon2()
            .hash_password_into(passphrase.expose_secret().as_bytes(), salt, &mut bytes[..])
            .map_err(|e| CryptoError::InvalidKey {
                reason: format!("key derivation failed: {e}"),
            })?;
        Ok(Self::from_array(bytes))
    }

    fn from_array(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let cipher = cipher(&bytes);
        let check = cipher
            .encrypt(
                &Nonce::from([0u8; NONCE_LEN]),
                Payload {
                    msg: b"",
                    aad: b"nebula-credential key check value",
                },
            )
            .expect("encrypting nothing cannot fail");
        let id = check[..8].iter().map(|b| format!("{b:02x}")).collect();
        EncryptionKey {
            id,
            bytes,
            cipher: Arc::new(cipher),
        }
    }

    /// Names the key explicitly (1..=64 characters of `[A-Za-z0-9._-]`).
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self, CryptoError> {
        let id = id.into();
        let ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(CryptoError::InvalidKey {
                reason: format!("key id {id:?} must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'"),
            });
        }
        self.id = id;
        Ok(self)
    }

    /// The key's id, stored beside each ciphertext it seals.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// Whether both hold the same key material (compared in constant time).
    fn same_material(&self, other: &EncryptionKey) -> bool {
        self.bytes
            .iter()
            .zip(other.bytes.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// The key as base64, for saving a generated key; [`from_base64`](Self::from_base64)
    /// reads it back. Zeroized on drop, never printed.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(&self.bytes[..]))
    }

    /// Encrypts `plaintext` for credential `id` with a fresh random nonce.
    pub fn encrypt(&self, id: &CredentialId, plaintext: &[u8]) -> Result<EncryptedData, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let aad = AssociatedData::new(id);
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::EncryptionFailed { id: id.clone() })?;
        Ok(EncryptedData {
            version: EncryptedData::CURRENT_VERSION,
            key_id: self.id.clone(),
            nonce,
            ciphertext,
        })
    }

    /// Decrypts `data` sealed for credential `id`; fails on any tampering, a wrong key,
    /// or data sealed for another id.
    pub fn decrypt(&self, id: &CredentialId, data: &EncryptedData) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.check_version(id, data)?;
        let aad = AssociatedData::new(id);
        self.cipher
            .decrypt(
                &Nonce::from(data.nonce),
                Payload {
                    msg: &data.ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| self.decryption_failed(id))
    }

    /// Like [`decrypt`](Self::decrypt), straight into the returned secret: the plaintext
    /// is written once, into a buffer of exactly its length, so no other copy of it is
    /// ever made (nor left in freed memory by a reallocation). Nothing is decrypted
    /// before the tag is verified.
    pub fn decrypt_secret(&self, id: &CredentialId, data: &EncryptedData) -> Result<SecretSlice<u8>, CryptoError> {
        self.check_version(id, data)?;
        let Some(len) = data.ciphertext.len().checked_sub(TAG_LEN) else {
            return Err(self.decryption_failed(id));
        };
        let (sealed, tag) = data.ciphertext.split_at(len);
        let tag = <&Tag>::try_from(tag).map_err(|_| self.decryption_failed(id))?;
        // Exactly `len` bytes, never reallocated, so the plaintext lives only here: the
        // sealed bytes are copied in and decrypted in place once the tag is verified (a
        // failed check leaves only ciphertext behind). Copying is cheaper than
        // zero-filling here: glibc serves `calloc` outside its per-thread cache.
        let mut plain: Box<[u8]> = Box::from(sealed);
        let aad = AssociatedData::new(id);
        let verified = self.cipher.decrypt_inout_detached(
            &Nonce::from(data.nonce),
            aad.as_bytes(),
            InOutBuf::from(&mut plain[..]),
            tag,
        );
        if verified.is_err() {
            // `AeadInOut` leaves the buffer unspecified on failure (aes-gcm 0.11 checks
            // the tag first today, and plans to interleave): wipe it either way.
            plain.zeroize();
            return Err(self.decryption_failed(id));
        }
        Ok(SecretSlice::new(plain))
    }

    fn check_version(&self, id: &CredentialId, data: &EncryptedData) -> Result<(), CryptoError> {
        if data.version != EncryptedData::CURRENT_VERSION {
            return Err(CryptoError::UnsupportedVersion {
                id: id.clone(),
                found: data.version,
                supported: EncryptedData::CURRENT_VERSION,
            });
        }
        Ok(())
    }

    fn decryption_failed(&self, id: &CredentialId) -> CryptoError {
        CryptoError::DecryptionFailed {
            id: id.clone(),
            key_id: self.id.clone(),
        }
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("key_id", &self.id)
            .field("bytes", &"[REDACTED]")
            .finish()
    }
}

impl Drop for EncryptionKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// One current key, used for new encryptions, and older keys by id, still able to
/// decrypt what they sealed — so keys can rotate without losing data.
#[derive(Clone)]
pub struct Keyring {
    current: EncryptionKey,
    older: BTreeMap<String, EncryptionKey>,
}

impl Keyring {
    /// A keyring with `current` as its only key.
    pub fn new(current: EncryptionKey) -> Self {
        Keyring {
            current,
            older: BTreeMap::new(),
        }
    }

    /// Adds an older key that may still be needed for decryption. Adding a key already
    /// held changes nothing; a different key under an id already held is refused (records
    /// name their key by id only, so one of the two could never decrypt again).
    pub fn with_old_key(mut self, key: EncryptionKey) -> Result<Self, CryptoError> {
        self.check_id_free(&key)?;
        if key.key_id() != self.current.key_id() {
            self.older.insert(key.key_id().to_string(), key);
        }
        Ok(self)
    }

    /// Makes `key` current; the previous current key stays available for decryption.
    /// Refused, leaving the keyring as it was, when another key is held under `key`'s id.
    pub fn rotate_to(&mut self, key: EncryptionKey) -> Result<(), CryptoError> {
        self.check_id_free(&key)?;
        let previous = std::mem::replace(&mut self.current, key);
        self.older.remove(self.current.key_id());
        if previous.key_id() != self.current.key_id() {
            self.older.insert(previous.key_id().to_string(), previous);
        }
        Ok(())
    }

    /// `Ok` unless a key other than `key` is held under `key`'s id.
    fn check_id_free(&self, key: &EncryptionKey) -> Result<(), CryptoError> {
        let held = std::iter::once(&self.current)
            .chain(self.older.values())
            .find(|k| k.key_id() == key.key_id());
        match held {
            Some(held) if !held.same_material(key) => Err(CryptoError::InvalidKey {
                reason: format!(
                    "the keyring already holds another key with id '{}', and records name their key by id \
                     only; a key that has sealed nothing yet can take an id of its own (EncryptionKey::with_id, \
                     or no id, derived from the key); a key whose records name that id must keep it",
                    key.key_id()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The key used for new encryptions.
    pub fn current(&self) -> &EncryptionKey {
        &self.current
    }

    /// Ids of every key held, current first.
    pub fn key_ids(&self) -> Vec<&str> {
        std::iter::once(self.current.key_id())
            .chain(self.older.keys().map(String::as_str))
            .collect()
    }

    /// Encrypts with the current key.
    pub fn encrypt(&self, id: &CredentialId, plaintext: &[u8]) -> Result<EncryptedData, CryptoError> {
        self.current.encrypt(id, plaintext)
    }

    /// Decrypts with whichever key sealed `data`.
    pub fn decrypt(&self, id: &CredentialId, data: &EncryptedData) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.key_for(id, data)?.decrypt(id, data)
    }

    /// Decrypts with whichever key sealed `data`, straight into the returned secret (see
    /// [`EncryptionKey::decrypt_secret`]).
    pub fn decrypt_secret(&self, id: &CredentialId, data: &EncryptedData) -> Result<SecretSlice<u8>, CryptoError> {
        self.key_for(id, data)?.decrypt_secret(id, data)
    }

    /// The key that sealed `data`.
    fn key_for(&self, id: &CredentialId, data: &EncryptedData) -> Result<&EncryptionKey, CryptoError> {
        if data.key_id == self.current.key_id() {
            return Ok(&self.current);
        }
        self.older.get(&data.key_id).ok_or_else(|| CryptoError::UnknownKey {
            id: id.clone(),
            key_id: data.key_id.clone(),
        })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.key_id())
            .field("older", &self.older.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Encryption, decryption or key handling failed. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication of the ciphertext failed: wrong key, tampered data, or data
    /// moved from another credential id.
    #[error(
        "cannot decrypt credential '{id}' with key '{key_id}': wrong key, tampered data, or a record copied from another id"
    )]
    DecryptionFailed {
        /// The credential being decrypted.
        id: CredentialId,
        /// The key tried.
        key_id: String,
    },
    /// The record names a key the keyring does not hold.
    #[error(
        "credential '{id}' is encrypted with key '{key_id}', which is not in the keyring; add that key as an old key"
    )]
    UnknownKey {
        /// The credential being decrypted.
        id: CredentialId,
        /// The key it needs.
        key_id: String,
    },
    /// The record was written by an encryption format this version does not know.
    #[error(
        "credential '{id}' uses encryption format {found}, this library reads up to {supported}; upgrade nebula-credential"
    )]
    UnsupportedVersion {
        /// The credential being decrypted.
        id: CredentialId,
        /// The format found.
        found: u8,
        /// The newest format supported.
        supported: u8,
    },
    /// Key material is malformed (wrong length, bad base64, weak salt), or a keyring
    /// already holds another key under the key's id.
    #[error("invalid encryption key: {reason}")]
    InvalidKey {
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// Encryption itself failed.
    #[error("encryption of credential '{id}' failed")]
    EncryptionFailed {
        /// The credential being encrypted.
        id: CredentialId,
    },
    /// The backend's own key service (e.g. AWS KMS) could not encrypt or decrypt the
    /// stored record.
    #[error("the key service behind {provider} could not process credential '{id}' ({code}): {required}")]
    KeyService {
        /// Provider name.
        provider: &'static str,
        /// The credential concerned.
        id: CredentialId,
        /// The service's error code (e.g. `DecryptionFailure`).
        code: String,
        /// What to check or grant, e.g. `grant kms:Decrypt on the secret's KMS key`.
        required: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn id(s: &str) -> CredentialId {
        s.parse().unwrap()
    }

    #[test]
    fn round_trip() {
        let key = EncryptionKey::generate();
        let data = key.encrypt(&id("a"), b"hunter2").unwrap();
        assert_eq!(data.ciphertext.len(), 7 + 16);
        assert_ne!(&data.ciphertext[..7], b"hunter2");
        assert_eq!(&key.decrypt(&id("a"), &data).unwrap()[..], b"hunter2");
        let empty = key.encrypt(&id("a"), b"").unwrap();
        assert!(key.decrypt(&id("a"), &empty).unwrap().is_empty());
    }

    #[test]
    fn decrypt_secret_matches_decrypt_at_every_length() {
        let old = EncryptionKey::generate();
        let mut ring = Keyring::new(old.clone());
        ring.rotate_to(EncryptionKey::generate()).unwrap();
        for len in [0, 1, 15, 16, 17, 31, 64, 1024, 4099] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let data = old.encrypt(&id("a"), &plain).unwrap();
            assert_eq!(old.decrypt_secret(&id("a"), &data).unwrap().expose_secret(), &plain[..]);
            assert_eq!(
                ring.decrypt_secret(&id("a"), &data).unwrap().expose_secret(),
                &plain[..]
            );
            assert_eq!(&old.decrypt(&id("a"), &data).unwrap()[..], &plain[..]);
        }
    }

    #[test]
    fn decrypt_secret_refuses_whatever_decrypt_refuses() {
        let key = EncryptionKey::generate();
        let a = id("a");
        let data = key.encrypt(&a, b"some secret").unwrap();
        let refused = |bad: &EncryptedData| {
            let secret = key.decrypt_secret(&a, bad).map(|s| s.expose_secret().to_vec());
            assert!(
                matches!(secret, Err(CryptoError::DecryptionFailed { .. })),
                "{secret:?}"
            );
            assert!(key.decrypt(&a, bad).is_err());
        };
        // Every bit of the ciphertext and of the tag.
        for i in 0..data.ciphertext.len() {
            for bit in 0..8 {
                let mut bad = data.clone();
                bad.ciphertext[i] ^= 1 << bit;
                refused(&bad);
            }
        }
        let mut bad = data.clone();
        bad.nonce[11] ^= 0x01;
        refused(&bad);
        // Truncated (down to shorter than a tag, without panicking) or extended.
        for len in 0..data.ciphertext.len() {
            let mut bad = data.clone();
            bad.ciphertext.truncate(len);
            refused(&bad);
        }
        let mut bad = data.clone();
        bad.ciphertext.push(0);
        refused(&bad);
        // Sealed for another id, or under another key.
        assert!(matches!(
            key.decrypt_secret(&id("b"), &data),
            Err(CryptoError::DecryptionFailed { .. })
        ));
        let other = EncryptionKey::generate().encrypt(&a, b"some secret").unwrap();
        refused(&EncryptedData {
            key_id: key.key_id().into(),
            ..other
        });
        // A newer format, and a key the keyring does not hold.
        let newer = EncryptedData {
            version: 2,
            ..data.clone()
        };
        assert!(matches!(
            key.decrypt_secret(&a, &newer),
            Err(CryptoError::UnsupportedVersion { found: 2, .. })
        ));
        assert!(matches!(
            Keyring::new(EncryptionKey::generate()).decrypt_secret(&a, &data),
            Err(CryptoError::UnknownKey { .. })
        ));
    }

    #[test]
    fn the_key_schedule_is_expanded_once_shared_by_clones_and_zeroized_on_drop() {
        // Compile-time: the expanded key wipes itself (aes-gcm's `zeroize` feature).
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let key = EncryptionKey::generate();
        zeroized_on_drop(&*key.cipher);
        let clone = key.clone();
        assert!(Arc::ptr_eq(&key.cipher, &clone.cipher), "clones share one schedule");
        drop(key);
        let data = clone.encrypt(&id("a"), b"x").unwrap();
        assert_eq!(clone.decrypt_secret(&id("a"), &data).unwrap().expose_secret(), b"x");
        // The same bytes expand to the same schedule: another process reads what this one sealed.
        let again = EncryptionKey::from_base64(&clone.to_base64()).unwrap();
        assert_eq!(again.decrypt_secret(&id("a"), &data).unwrap().expose_secret(), b"x");
    }

    /// `decrypt_secret` relies on the tag being checked before any byte is decrypted in
    /// place (and wipes the buffer on failure anyway): pinned here, so an aes-gcm that
    /// decrypts first is noticed.
    #[test]
    fn a_failed_in_place_decryption_leaves_the_ciphertext_untouched() {
        let key = EncryptionKey::generate();
        let data = key.encrypt(&id("a"), b"some secret value").unwrap();
        let (sealed, tag) = data.ciphertext.split_at(data.ciphertext.len() - TAG_LEN);
        let mut bad_tag = Tag::try_from(tag).unwrap();
        bad_tag[0] ^= 1;
        let mut buffer = sealed.to_vec();
        let aad = AssociatedData::new(&id("a"));
        assert!(
            key.cipher
                .decrypt_inout_detached(
                    &Nonce::from(data.nonce),
                    aad.as_bytes(),
                    InOutBuf::from(&mut buffer[..]),
                    &bad_tag,
                )
                .is_err()
        );
        assert_eq!(buffer, sealed, "nothing decrypted before the tag check");
    }

    #[test]
    fn the_associated_data_holds_the_longest_id() {
        let longest = id(&"x".repeat(MAX_ID_LEN));
        let aad = AssociatedData::new(&longest);
        assert_eq!(aad.as_bytes(), [AAD_PREFIX, longest.as_str().as_bytes()].concat());
        let key = EncryptionKey::generate();
        let data = key.encrypt(&longest, b"v").unwrap();
        assert_eq!(key.decrypt_secret(&longest, &data).unwrap().expose_secret(), b"v");
        assert!(key.decrypt_secret(&id(&"x".repeat(MAX_ID_LEN - 1)), &data).is_err());
    }

    /// A ciphertext sealed by the per-operation cipher this library used before the
    /// schedule was cached still decrypts (the format did not change).
    #[test]
    fn records_sealed_with_a_fresh_cipher_still_decrypt() {
        let key = EncryptionKey::from_bytes(&[0x42; KEY_LEN]).unwrap();
        let mut aad = b"nebula-credential/v1/".to_vec();
        aad.extend_from_slice(b"db_password");
        let nonce = [9u8; NONCE_LEN];
        let ciphertext = cipher(&[0x42; KEY_LEN])
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: b"hunter2",
                    aad: &aad,
                },
            )
            .unwrap();
        let data = EncryptedData {
            version: 1,
            key_id: key.key_id().into(),
            nonce,
            ciphertext,
        };
        assert_eq!(
            key.decrypt_secret(&id("db_password"), &data).unwrap().expose_secret(),
            b"hunter2"
        );
        assert_eq!(&key.decrypt(&id("db_password"), &data).unwrap()[..], b"hunter2");
    }

    #[test]
    fn wrong_key_fails() {
        let data = EncryptionKey::generate().encrypt(&id("a"), b"x").unwrap();
        let err = EncryptionKey::generate().decrypt(&id("a"), &data).unwrap_err();
        assert!(matches!(err, CryptoError::DecryptionFailed { .. }));
    }

    #[test]
    fn flipped_bit_fails() {
        let key = EncryptionKey::generate();
        let data = key.encrypt(&id("a"), b"some secret").unwrap();
        for i in 0..data.ciphertext.len() {
            let mut bad = data.clone();
            bad.ciphertext[i] ^= 0x01;
            assert!(key.decrypt(&id("a"), &bad).is_err(), "bit flip at byte {i}");
        }
        let mut bad = data.clone();
        bad.nonce[0] ^= 0x80;
        assert!(key.decrypt(&id("a"), &bad).is_err());
    }

    #[test]
    fn ciphertext_moved_to_another_id_fails() {
        let key = EncryptionKey::generate();
        let data = key.encrypt(&id("a"), b"x").unwrap();
        assert!(matches!(
            key.decrypt(&id("b"), &data),
            Err(CryptoError::DecryptionFailed { .. })
        ));
        assert!(key.decrypt(&id("A"), &data).is_err());
    }

    #[test]
    fn nonces_are_unique() {
        let key = EncryptionKey::generate();
        let id = id("a");
        let mut seen = HashSet::with_capacity(100_000);
        for _ in 0..100_000 {
            assert!(seen.insert(key.encrypt(&id, b"").unwrap().nonce));
        }
    }

    #[test]
    fn keyring_keeps_old_keys_decrypting() {
        let old = EncryptionKey::generate();
        let mut ring = Keyring::new(old.clone());
        let sealed = ring.encrypt(&id("a"), b"v1").unwrap();
        assert_eq!(sealed.key_id, old.key_id());
        let new = EncryptionKey::generate();
        ring.rotate_to(new.clone()).unwrap();
        assert_eq!(ring.current().key_id(), new.key_id());
        assert_eq!(&ring.decrypt(&id("a"), &sealed).unwrap()[..], b"v1");
        assert_eq!(ring.encrypt(&id("a"), b"v2").unwrap().key_id, new.key_id());
        assert_eq!(ring.key_ids(), [new.key_id(), old.key_id()]);
        let lonely = Keyring::new(new);
        assert!(matches!(
            lonely.decrypt(&id("a"), &sealed),
            Err(CryptoError::UnknownKey { .. })
        ));
    }

    #[test]
    fn a_different_key_under_an_id_already_held_is_refused_and_nothing_is_lost() {
        let old = EncryptionKey::generate().with_id("prod").unwrap();
        let twin = EncryptionKey::generate().with_id("prod").unwrap();
        let mut ring = Keyring::new(old.clone());
        let sealed = ring.encrypt(&id("a"), b"v1").unwrap();
        let refused = ring.rotate_to(twin.clone()).unwrap_err();
        assert!(matches!(refused, CryptoError::InvalidKey { .. }), "{refused}");
        assert!(refused.to_string().contains("'prod'") && refused.to_string().contains("with_id"));
        assert_eq!(ring.key_ids(), ["prod"], "the keyring is unchanged");
        assert_eq!(&ring.decrypt(&id("a"), &sealed).unwrap()[..], b"v1");
        assert!(Keyring::new(old.clone()).with_old_key(twin.clone()).is_err());
        let other = EncryptionKey::generate();
        assert!(
            Keyring::new(other)
                .with_old_key(old.clone())
                .unwrap()
                .with_old_key(twin)
                .is_err()
        );
        // The same key again changes nothing.
        ring.rotate_to(old.clone()).unwrap();
        let ring = ring.with_old_key(old).unwrap();
        assert_eq!(ring.key_ids(), ["prod"]);
        assert_eq!(&ring.decrypt(&id("a"), &sealed).unwrap()[..], b"v1");
    }

    #[test]
    fn key_sources() {
        let k = EncryptionKey::generate();
        let b64 = k.to_base64();
        let again = EncryptionKey::from_base64(&b64).unwrap();
        assert_eq!(again.key_id(), k.key_id());
        assert_eq!(k.key_id().len(), 16);
        assert!(EncryptionKey::from_bytes(&[0; 31]).is_err());
        assert!(EncryptionKey::from_base64(&SecretString::from("not base64!")).is_err());
        assert_eq!(k.clone().with_id("prod-2026").unwrap().key_id(), "prod-2026");
        assert!(k.with_id("bad id").is_err());

        let pass = SecretString::from("correct horse battery staple");
        let salt = b"0123456789abcdef";
        let a = EncryptionKey::from_passphrase(&pass, salt).unwrap();
        let b = EncryptionKey::from_passphrase(&pass, salt).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let c = EncryptionKey::from_passphrase(&pass, b"fedcba9876543210").unwrap();
        assert_ne!(a.key_id(), c.key_id());
        assert!(EncryptionKey::from_passphrase(&pass, b"short").is_err());
        assert!(EncryptionKey::from_passphrase(&SecretString::from(""), salt).is_err());
    }

    #[test]
    fn passphrase_derivation_matches_its_known_answer() {
        let key =
            EncryptionKey::from_passphrase(&SecretString::from("correct horse battery staple"), b"nebula-salt-0001")
                .unwrap();
        assert_eq!(key.to_base64().expose_secret(), KNOWN_ANSWER);
    }

    /// Argon2id v1.3, m = 19456 KiB, t = 2, p = 1, 32 bytes of "correct horse battery
    /// staple" with salt "nebula-salt-0001", as the reference implementation (argon2-cffi,
    /// libargon2) computes it.
    const KNOWN_ANSWER: &str = "MpR8PQraco5JMZt2AmLSwVhLwplVPkB4k5BAqSszYHg=";

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = EncryptionKey::from_bytes(&[0xAB; 32]).unwrap();
        let ring = Keyring::new(k.clone());
        for shown in [format!("{k:?}"), format!("{ring:?}")] {
            assert!(!shown.contains("ab, ") && !shown.contains("171"), "{shown}");
            assert!(!shown.contains(k.to_base64().expose_secret()), "{shown}");
        }
        assert!(format!("{k:?}").contains("REDACTED"));
    }
}
