//! Copies stored records verbatim from one provider to another, so an application
//! migrates between backends without the CLI (this is the engine behind
//! `nebula-cred migrate`).
//!
//! Records move as they are stored — ciphertext, nonce, key id and metadata unchanged —
//! so the key never leaves the operator and ids stay the same (the id is bound into
//! each ciphertext, so a record only decrypts under its own id).
//!
//! Running it again after an interruption finishes the job: the target is read first, a
//! target that already holds the identical record counts as [`MigrationOutcome::AlreadyPresent`]
//! and is not written again, and a target holding something else is left alone
//! ([`MigrationOutcome::NotOverwritten`]) unless [`MigrateOptions::overwrite`] is set. Records
//! absent from the target are written with [`Precondition::Absent`], the backend's own
//! atomic check, so a writer creating the same id on the target meanwhile is never
//! clobbered.
//!
//! ```
//! use std::sync::Arc;
//! use nebula_credential::{CredentialStore, EncryptionKey, Keyring, MemoryProvider, StorageProvider, Tags};
//! use nebula_credential::migrate::{MigrateOptions, migrate};
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let (from, to) = (MemoryProvider::new(), MemoryProvider::new());
//! let key = EncryptionKey::generate();
//! let id = "api_key".parse()?;
//! CredentialStore::new(Arc::new(from.clone()), Keyring::new(key.clone()))
//!     .put(&id, b"s3cr3t", Tags::new()).await?;
//!
//! let report = migrate(&from, &to, &MigrateOptions::default(), |_| {}).await?;
//! assert_eq!(report.copied, vec![id.clone()]);
//! assert_eq!(from.retrieve(&id).await?.data, to.retrieve(&id).await?.data);
//!
//! let again = migrate(&from, &to, &MigrateOptions::default(), |_| {}).await?;
//! assert_eq!((again.copied.len(), again.already_present.len()), (0, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::fmt;

use futures::StreamExt;
use nebula_credential_core::{
    CredentialFilter, CredentialId, ErrorKind, Precondition, RecordEnvelope, StorageError, StorageProvider, Stored,
    ValidationError,
};

/// Most records copied at once.
pub const MAX_JOBS: usize = 64;

/// Attempts of one overwrite that keeps losing to concurrent writers on the target.
const OVERWRITE_ATTEMPTS: u32 = 5;

/// What [`migrate`] copies and how.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// Which source credentials to copy (validated first; the default selects all).
    pub filter: CredentialFilter,
    /// Replace target records whose content differs (conditionally on the revision
    /// read, so a concurrent write between the read and the write is not lost silently:
    /// it is re-read and replaced again, at most 5 times).
    pub overwrite: bool,
    /// Read both sides and report what would happen, writing nothing (a record too large
    /// for the target is reported failed, as its store would be).
    pub dry_run: bool,
    /// Read every migrated record back from the target and compare it byte for byte.
    pub verify: bool,
    /// Records in flight at once, 1 ..= [`MAX_JOBS`] (default 4).
    pub jobs: usize,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            filter: CredentialFilter::new(),
            overwrite: false,
            dry_run: false,
            verify: false,
            jobs: 4,
        }
    }
}

impl MigrateOptions {
    /// Options selecting the credentials that match `filter`, with the defaults otherwise.
    pub fn new(filter: CredentialFilter) -> Self {
        MigrateOptions {
            filter,
            ..Self::default()
        }
    }

    /// Sets [`overwrite`](Self::overwrite).
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Sets [`dry_run`](Self::dry_run).
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Sets [`verify`](Self::verify).
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }

    /// Sets [`jobs`](Self::jobs).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs;
        self
    }

    fn validate(&self) -> Result<(), StorageError> {
        self.filter.validate()?;
        if !(1..=MAX_JOBS).contains(&self.jobs) {
            return Err(ValidationError::InvalidArgument {
                what: "number of jobs",
                reason: format!("must be between 1 and {MAX_JOBS} (got {})", self.jobs),
            }
            .into());
        }
        Ok(())
    }
}

/// Why a record was not migrated.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// A read or write failed; the library's error says what to do.
    Storage(StorageError),
    /// `verify` read back something other than what was copied.
    Mismatch {
        /// The target provider.
        provider: &'static str,
    },
}

impl Failure {
    /// The error kind, for exit codes and metrics ([`ErrorKind::Corrupted`] for a mismatch).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Failure::Storage(e) => e.kind(),
            Failure::Mismatch { .. } => ErrorKind::Corrupted,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Storage(e) => write!(f, "{e}"),
            Failure::Mismatch { provider } => write!(
                f,
                "read back from {provider} differs from the source record; run the migration again \
                 with --overwrite, or check what else writes to the target"
            ),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Storage(e) => e.source(),
            Failure::Mismatch { .. } => None,
        }
    }
}

/// What happened to one credential (in a dry run: what would happen).
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrationOutcome {
    /// Written to the target, where it did not exist.
    Copied,
    /// Replaced a different record on the target (only with `overwrite`).
    Overwritten,
    /// The target already held the identical record: nothing written.
    AlreadyPresent,
    /// The target holds a different record and `overwrite` is off: left alone.
    NotOverwritten,
    /// Deleted from the source after it was listed: nothing to copy.
    Vanished,
    /// Not migrated.
    Failed(Failure),
}

/// One finished credential, as passed to [`migrate`]'s progress callback.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Credentials finished so far, this one included.
    pub done: usize,
    /// Credentials selected.
    pub total: usize,
    /// The credential just finished.
    pub id: &'a CredentialId,
    /// What happened to it.
    pub outcome: &'a MigrationOutcome,
}

/// The outcome of [`migrate`], by credential (each list sorted by id).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Whether this was a dry run (the lists then say what would happen).
    pub dry_run: bool,
    /// Credentials the filter selected on the source.
    pub selected: usize,
    /// Written to the target, where they did not exist.
    pub copied: Vec<CredentialId>,
    /// Replaced a different record on the target.
    pub overwritten: Vec<CredentialId>,
    /// Already identical on the target; not written again.
    pub already_present: Vec<CredentialId>,
    /// Different on the target and left alone (no `overwrite`).
    pub not_overwritten: Vec<CredentialId>,
    /// Deleted from the source meanwhile.
    pub vanished: Vec<CredentialId>,
    /// Not migrated, with the reason.
    pub failed: Vec<(CredentialId, Failure)>,
    /// Records read back from the target and found identical (with `verify`, plus those
    /// found already present, which were compared anyway).
    pub verified: usize,
    /// The target cannot store conditionally, so existence was checked by a separate
    /// read: a writer creating the same id on the target meanwhile may have been overwritten.
    pub unconditional: bool,
}

impl MigrationReport {
    /// `true` when every selected credential is on the target, identical to the source
    /// (nothing failed and nothing was left different).
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.not_overwritten.is_empty()
    }

    fn record(&mut self, id: CredentialId, outcome: MigrationOutcome) {
        match outcome {
            MigrationOutcome::Copied => self.copied.push(id),
            MigrationOutcome::Overwritten => self.overwritten.push(id),
            MigrationOutcome::AlreadyPresent => self.already_present.push(id),
            MigrationOutcome::NotOverwritten => self.not_overwritten.push(id),
            MigrationOutcome::Vanished => self.vanished.push(id),
            MigrationOutcome::Failed(f) => self.failed.push((id, f)),
        }
    }

    fn sort(&mut self) {
        for list in [
            &mut self.copied,
            &mut self.overwritten,
            &mut self.already_present,
            &mut self.not_overwritten,
            &mut self.vanished,
        ] {
            list.sort();
        }
        self.failed.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// Copies the source credentials selected by `options.filter` to `target`, verbatim,
/// `options.jobs` at a time, calling `progress` after each one.
///
/// Fails only when the options are invalid or the source cannot be listed; a record that
/// cannot be copied is reported in [`MigrationReport::failed`] and the others are still
/// copied. Safe to run again after an interruption: nothing is written twice (see the
/// module documentation).
pub async fn migrate(
    source: &dyn StorageProvider,
    target: &dyn StorageProvider,
    options: &MigrateOptions,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<MigrationReport, StorageError> {
    options.validate()?;
    let ids = source.list(&options.filter).await?;
    let mut report = MigrationReport {
        dry_run: options.dry_run,
        selected: ids.len(),
        ..MigrationReport::default()
    };
    let conditional = target.capabilities().conditional_store;
    report.unconditional = !conditional && !options.dry_run;
    let total = ids.len();
    let mut finished = futures::stream::iter(ids)
        .map(|id| async move {
            let (outcome, verified) = migrate_one(source, target, options, conditional, &id).await;
            (id, outcome, verified)
        })
        .buffer_unordered(options.jobs);
    let mut done = 0;
    while let Some((id, outcome, verified)) = finished.next().await {
        done += 1;
        report.verified += usize::from(verified);
        progress(Progress {
            done,
            total,
            id: &id,
            outcome: &outcome,
        });
        report.record(id, outcome);
    }
    report.sort();
    Ok(report)
}

/// `true` when two records hold the same bytes and metadata.
fn same(a: &Stored, b: &Stored) -> bool {
    a.data == b.data && a.metadata == b.metadata
}

/// Migrates one record; also says whether the target was read back identical.
async fn migrate_one(
    source: &dyn StorageProvider,
    target: &dyn StorageProvider,
    options: &MigrateOptions,
    conditional: bool,
    id: &CredentialId,
) -> (MigrationOutcome, bool) {
    let record = match source.retrieve(id).await {
        Ok(record) => record,
        Err(e) if e.is_not_found() => return (MigrationOutcome::Vanished, false),
        Err(e) => return (MigrationOutcome::Failed(Failure::Storage(e)), false),
    };
    let outcome = if options.dry_run {
        preview(target, options, id, &record).await
    } else if options.overwrite {
        overwrite(target, conditional, id, &record).await
    } else {
        copy_if_absent(target, conditional, id, &record).await
    };
    match outcome {
        Ok(MigrationOutcome::AlreadyPresent) => (MigrationOutcome::AlreadyPresent, true),
        Ok(o @ (MigrationOutcome::Copied | MigrationOutcome::Overwritten)) if options.verify && !options.dry_run => {
            match target.retrieve(id).await {
                Ok(back) if same(&back, &record) => (o, true),
                Ok(_) => (
                    MigrationOutcome::Failed(Failure::Mismatch {
                        provider: target.provider_name(),
                    }),
                    false,
                ),
                Err(e) => (MigrationOutcome::Failed(Failure::Storage(e)), false),
            }
        }
        Ok(o) => (o, false),
        Err(e) => (MigrationOutcome::Failed(Failure::Storage(e)), false),
    }
}

/// What the target holds for `id`: `None` when absent.
async fn current(target: &dyn StorageProvider, id: &CredentialId) -> Result<Option<Stored>, StorageError> {
    match target.retrieve(id).await {
        Ok(stored) => Ok(Some(stored)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Compares with what the target holds, writing nothing; a record the target could not
/// hold fails as its store would (the size rule is the core's, the same on every backend).
async fn preview(
    target: &dyn StorageProvider,
    options: &MigrateOptions,
    id: &CredentialId,
    record: &Stored,
) -> Result<MigrationOutcome, StorageError> {
    let outcome = match current(target, id).await? {
        None => MigrationOutcome::Copied,
        Some(existing) => match compared(&existing, record) {
            MigrationOutcome::NotOverwritten if options.overwrite => MigrationOutcome::Overwritten,
            outcome => outcome,
        },
    };
    if matches!(outcome, MigrationOutcome::Copied | MigrationOutcome::Overwritten) {
        RecordEnvelope::encode(
            id,
            &record.data,
            &record.metadata,
            target.provider_name(),
            target.capabilities().max_payload_bytes,
        )?;
    }
    Ok(outcome)
}

/// Writes `record` only where the target has nothing under `id`.
///
/// Reads first: a record already there is compared, never written again (a backend may
/// accept a conditional create of identical bytes as the retry of an earlier write, so
/// the write's success alone would not tell a copy from a record already present). The
/// write itself is still conditional, so a writer creating the id meanwhile wins.
async fn copy_if_absent(
    target: &dyn StorageProvider,
    conditional: bool,
    id: &CredentialId,
    record: &Stored,
) -> Result<MigrationOutcome, StorageError> {
    if let Some(existing) = current(target, id).await? {
        return Ok(compared(&existing, record));
    }
    if !conditional {
        return target
            .store(id, &record.data, &record.metadata)
            .await
            .map(|_| MigrationOutcome::Copied);
    }
    match target
        .store_if(id, &record.data, &record.metadata, &Precondition::Absent)
        .await
    {
        Ok(_) => Ok(MigrationOutcome::Copied),
        // Created meanwhile: by another writer, or by an earlier attempt of this store
        // whose reply was lost (the retry layer then sees a conflict).
        Err(e) if e.is_conflict() => match current(target, id).await? {
            Some(existing) => Ok(compared(&existing, record)),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// What an existing target record means for a copy without `overwrite`.
fn compared(existing: &Stored, record: &Stored) -> MigrationOutcome {
    if same(existing, record) {
        MigrationOutcome::AlreadyPresent
    } else {
        MigrationOutcome::NotOverwritten
    }
}

/// Makes the target hold `record`, replacing what differs.
async fn overwrite(
    target: &dyn StorageProvider,
    conditional: bool,
    id: &CredentialId,
    record: &Stored,
) -> Result<MigrationOutcome, StorageError> {
    let mut last = None;
    for _ in 0..OVERWRITE_ATTEMPTS {
        let (precondition, outcome) = match current(target, id).await? {
            Some(existing) if same(&existing, record) => return Ok(MigrationOutcome::AlreadyPresent),
            Some(existing) => (Precondition::Revision(existing.revision), MigrationOutcome::Overwritten),
            None => (Precondition::Absent, MigrationOutcome::Copied),
        };
        let precondition = if conditional {
            precondition
        } else {
            Precondition::Overwrite
        };
        match target.store_if(id, &record.data, &record.metadata, &precondition).await {
            Ok(_) => return Ok(outcome),
            Err(e) if e.is_conflict() && precondition.is_conditional() => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last
        .unwrap_or_else(|| StorageError::conflict(target.provider_name(), id, "concurrent writers kept changing it")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nebula_credential_core::{
        Capabilities, CredentialMetadata, CredentialStore, EncryptedData, EncryptionKey, Keyring, MemoryProvider,
        Operation, Revision, Tags, async_trait,
    };

    use super::*;

    fn id(s: &str) -> CredentialId {
        s.parse().unwrap()
    }

    async fn seeded(ids: &[&str]) -> MemoryProvider {
        let memory = MemoryProvider::new();
        let store = CredentialStore::new(Arc::new(memory.clone()), Keyring::new(EncryptionKey::generate()));
        for i in ids {
            store.put(&id(i), i.as_bytes(), Tags::new()).await.unwrap();
        }
        memory
    }

    /// A target where another writer creates each id just before our conditional store.
    #[derive(Debug)]
    struct Racing(MemoryProvider);

    #[async_trait]
    impl StorageProvider for Racing {
        fn provider_name(&self) -> &'static str {
            "racing"
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        async fn store_if(
            &self,
            id: &CredentialId,
            data: &EncryptedData,
            metadata: &CredentialMetadata,
            precondition: &Precondition,
        ) -> Result<Revision, StorageError> {
            let theirs = EncryptionKey::generate().encrypt(id, b"theirs").unwrap();
            self.0.store(id, &theirs, &CredentialMetadata::new()).await?;
            self.0.store_if(id, data, metadata, precondition).await
        }
        async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
            self.0.retrieve(id).await
        }
        async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
            self.0.delete(id).await
        }
        async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
            self.0.list(filter).await
        }
        async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
            self.0.exists(id).await
        }
    }

    /// A target that loses the tags of every record it stores (a backend bug `verify` must catch).
    #[derive(Debug)]
    struct Lossy(MemoryProvider);

    #[async_trait]
    impl StorageProvider for Lossy {
        fn provider_name(&self) -> &'static str {
            "lossy"
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        async fn store_if(
            &self,
            id: &CredentialId,
            data: &EncryptedData,
            metadata: &CredentialMetadata,
            precondition: &Precondition,
        ) -> Result<Revision, StorageError> {
            let mut lost = metadata.clone();
            lost.tags = Tags::new();
            self.0.store_if(id, data, &lost, precondition).await
        }
        async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
            self.0.retrieve(id).await
        }
        async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
            self.0.delete(id).await
        }
        async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
            self.0.list(filter).await
        }
        async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
            self.0.exists(id).await
        }
    }

    #[test]
    fn verify_reports_a_record_the_target_did_not_keep_verbatim() {
        block_on(async {
            let source = MemoryProvider::new();
            let store = CredentialStore::new(Arc::new(source.clone()), Keyring::new(EncryptionKey::generate()));
            let tags: Tags = [("env".to_string(), "prod".to_string())].into_iter().collect();
            store.put(&id("tagged"), b"v", tags).await.unwrap();
            store.put(&id("plain"), b"v", Tags::new()).await.unwrap();

            let unverified = migrate(
                &source,
                &Lossy(MemoryProvider::new()),
                &MigrateOptions::default(),
                |_| {},
            )
            .await
            .unwrap();
            assert_eq!(unverified.copied.len(), 2, "without verify the loss goes unnoticed");

            let target = Lossy(MemoryProvider::new());
            let options = MigrateOptions::default().verify(true);
            let report = migrate(&source, &target, &options, |_| {}).await.unwrap();
            assert_eq!(report.copied, vec![id("plain")]);
            assert_eq!(report.verified, 1);
            assert_eq!(report.failed.len(), 1);
            assert_eq!(report.failed[0].0, id("tagged"));
            assert_eq!(report.failed[0].1.kind(), ErrorKind::Corrupted);
            assert!(
                report.failed[0].1.to_string().contains("lossy"),
                "{}",
                report.failed[0].1
            );
            assert!(!report.is_complete());
        });
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_writer_creating_the_id_meanwhile_is_never_clobbered() {
        block_on(async {
            let source = seeded(&["a", "b"]).await;
            let target = Racing(MemoryProvider::new());
            let report = migrate(&source, &target, &MigrateOptions::default(), |_| {})
                .await
                .unwrap();
            assert_eq!(report.not_overwritten, vec![id("a"), id("b")]);
            assert!(report.copied.is_empty() && !report.is_complete());
            let kept = target.retrieve(&id("a")).await.unwrap();
            assert_ne!(kept.data, source.retrieve(&id("a")).await.unwrap().data, "theirs stays");
        });
    }

    #[test]
    fn a_failing_record_is_reported_and_the_others_are_copied() {
        block_on(async {
            let source = seeded(&["a", "b", "c"]).await;
            let target = MemoryProvider::new();
            // jobs = 1: list, then read `a` on the source, then read `a` on the target fails.
            source.fail_next_with(StorageError::unavailable("memory", Operation::List, None));
            let options = MigrateOptions::default().jobs(1);
            let err = migrate(&source, &target, &options, |_| {}).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "a failing list fails the call");
            let mut seen = Vec::new();
            target.fail_next_with(StorageError::unavailable("memory", Operation::Retrieve, Some(&id("a"))));
            let report = migrate(&source, &target, &options, |p| seen.push((p.done, p.total)))
                .await
                .unwrap();
            assert_eq!(report.failed.len(), 1);
            assert_eq!(report.failed[0].0, id("a"));
            assert_eq!(report.failed[0].1.kind(), ErrorKind::Unavailable);
            assert_eq!(report.copied, vec![id("b"), id("c")]);
            assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
            let again = migrate(&source, &target, &options, |_| {}).await.unwrap();
            assert_eq!((again.copied, again.already_present.len()), (vec![id("a")], 2));
        });
    }

    #[test]
    fn options_are_validated() {
        block_on(async {
            let m = MemoryProvider::new();
            for jobs in [0, MAX_JOBS + 1] {
                let e = migrate(&m, &m, &MigrateOptions::default().jobs(jobs), |_| {})
                    .await
                    .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Invalid);
            }
        });
    }
}
