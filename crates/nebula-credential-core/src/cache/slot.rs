//! What the cache holds per credential: a [`Slot`] with the record as `retrieve` returned
//! it (ciphertext, metadata, revision), never plaintext, zeroized when dropped.

use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;
use zeroize::Zeroize;

use crate::provider::{Revision, Stored};

/// Most revisions a slot remembers having superseded.
const SUPERSEDED: usize = 16;

/// One cached answer for a credential.
#[derive(Debug)]
pub(crate) enum Slot {
    /// The record, read (or written by us) at `at`.
    Present {
        stored: Stored,
        at: Instant,
        epoch: u64,
        /// Revisions this record is known to be newer than (the ones the entry held
        /// before, and those `refresh` callers reported): a `refresh` with one of them
        /// needs no fetch. Any other revision the cache never held may be newer than
        /// this record.
        superseded: Mutex<Vec<Revision>>,
    },
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

    /// The record newly read (or written) at `at`, superseding what `previous` held.
    pub(crate) fn present(stored: Stored, at: Instant, epoch: u64, previous: Option<&Slot>) -> Self {
        let mut superseded = Vec::new();
        if let Some(Slot::Present {
            stored: before,
            superseded: theirs,
            ..
        }) = previous
        {
            superseded = theirs.lock().unwrap_or_else(PoisonError::into_inner).clone();
            if before.revision != stored.revision {
                superseded.push(before.revision.clone());
            }
            superseded.retain(|r| *r != stored.revision);
            let excess = superseded.len().saturating_sub(SUPERSEDED);
            superseded.drain(..excess);
        }
        Slot::Present {
            stored,
            at,
            epoch,
            superseded: Mutex::new(superseded),
        }
    }

    /// Whether this record is known to be newer than `revision`.
    pub(crate) fn supersedes(&self, revision: &Revision) -> bool {
        match self {
            Slot::Present { superseded, .. } => superseded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(revision),
            Slot::Missing { .. } => false,
        }
    }

    /// Remembers that this record is newer than `revision` (a refresh reported it).
    pub(crate) fn note_superseded(&self, revision: &Revision) {
        if let Slot::Present { stored, superseded, .. } = self
            && stored.revision != *revision
        {
            let mut list = superseded.lock().unwrap_or_else(PoisonError::into_inner);
            if !list.contains(revision) {
                if list.len() >= SUPERSEDED {
                    list.remove(0);
                }
                list.push(revision.clone());
            }
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
