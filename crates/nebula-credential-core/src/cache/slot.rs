//! What the cache holds per credential: a [`Slot`] with the record as `retrieve` returned
//! it (ciphertext, metadata, revision), never plaintext, zeroized when dropped.

use tokio::time::Instant;
use zeroize::Zeroize;

use crate::provider::Stored;

/// One cached answer for a credential.
#[derive(Debug)]
pub(crate) enum Slot {
    /// The record, read (or written by us) at `at`.
    Present { stored: Stored, at: Instant, epoch: u64 },
    /// The backend said `NotFound` at `at` (negative caching, `not_found_ms > 0`).
    Missing { at: Instant, epoch: u64 },
}

impl Slot {
    /// The write epoch this slot was filled at (see `Shared::epoch`).
    pub(crate) fn epoch(&self) -> u64 {
        match self {
            Slot::Present { epoch, .. } | Slot::Missing { epoch, .. } => *epoch,
        }
    }

    /// When the answer was read.
    pub(crate) fn at(&self) -> Instant {
        match self {
            Slot::Present { at, .. } | Slot::Missing { at, .. } => *at,
        }
    }

    /// The record, when present.
    pub(crate) fn stored(&self) -> Option<&Stored> {
        match self {
            Slot::Present { stored, .. } => Some(stored),
            Slot::Missing { .. } => None,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Slot::Present { stored, .. } = self {
            stored.data.ciphertext.zeroize();
            stored.data.nonce.zeroize();
        }
    }
}
