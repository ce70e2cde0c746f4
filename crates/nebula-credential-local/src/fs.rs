//! Blocking file-system primitives: durable atomic writes that stamp each version with
//! a modification time later than every earlier one, per-credential advisory locks taken
//! with a bounded wait, a commit point after which a write may land and before which it
//! can be abandoned, reads that return the [`Stamp`] of what they read, cleanup of
//! temporary files left by a crash, and [`InlineReads`]: when a short read may skip the
//! hop to tokio's blocking pool.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use nebula_credential_core::Timeouts;

use crate::cache::Stamp;

/// Suffix of temporary files; they also start with a dot, so they are never listed.
const TEMP_SUFFIX: &str = ".tmp";
/// Suffix of lock files (`.{file name}.lock`), kept after a delete: removing a lock
/// file another writer may be waiting on would let two writers in.
const LOCK_SUFFIX: &str = ".lock";
/// A temporary file untouched this long is taken as left by a crash. Every writer
/// renames its temporary file or gives up before its deadline, at most
/// [`Timeouts::MAX_MS`] after it started, whether it locks or not; this leaves a wide
/// margin for writers of older versions and for clocks that disagree.
pub(crate) const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);
/// Longest pause between two attempts to take a busy lock.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(5);
/// Steps tried above a wanted modification time until the file system keeps one at least
/// that late: none (nanosecond file systems: ext4, XFS, Btrfs, tmpfs, APFS, ZFS), then
/// the coarser granularities in use (NTFS 100 ns, exFAT 10 ms, HFS+ and ext3 1 s, FAT 2 s).
const TIME_STEPS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_micros(1),
    Duration::from_millis(10),
    Duration::from_secs(2),
];

const _: () = assert!(STALE_TEMP_AGE.as_millis() > 3 * Timeouts::MAX_MS as u128);

/// Why a file-system step did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    /// The file system refused.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The deadline passed (waiting for a lock, or before the commit point), or the
    /// caller stopped waiting; nothing was changed.
    #[error("the deadline passed before the change could be made")]
    Expired,
}

/// The fate of one write, shared by the blocking thread doing it and the task waiting
/// for it. The write becomes visible only after [`Commit::commit`] succeeded, which it
/// does only before the deadline and while the caller still waits; once the caller gave
/// up ([`Commit::abandon`]) the write never lands.
#[derive(Debug)]
pub(crate) struct Commit {
    state: Mutex<State>,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Abandoned,
    Committed,
}

impl Commit {
    /// A pending write that must commit before `deadline`.
    pub(crate) fn new(deadline: Instant) -> Self {
        Commit {
            state: Mutex::new(State::Pending),
            deadline,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The caller stops waiting. Returns `false` when the write had already committed
    /// (it may land), `true` when it never will.
    pub(crate) fn abandon(&self) -> bool {
        let mut state = self.state();
        match *state {
            State::Committed => false,
            _ => {
                *state = State::Abandoned;
                true
            }
        }
    }

    /// Whether waiting longer is pointless: abandoned, or past the deadline.
    fn expired(&self) -> bool {
        *self.state() == State::Abandoned || Instant::now() >= self.deadline
    }

    /// The commit point, right before the change is made visible: fails with
    /// [`FsError::Expired`] (and abandons the write) when the caller stopped waiting or
    /// the deadline passed.
    pub(crate) fn commit(&self) -> Result<(), FsError> {
        let mut state = self.state();
        if *state == State::Abandoned || Instant::now() >= self.deadline {
            *state = State::Abandoned;
            return Err(FsError::Expired);
        }
        *state = State::Committed;
        Ok(())
    }
}

/// The directory of one provider and how it writes.
#[derive(Debug)]
pub(crate) struct Dir {
    pub(crate) path: PathBuf,
    pub(crate) locking: bool,
}

/// Holds an exclusive advisory lock until dropped (closing the file releases it).
///
/// The lock file's own modification time is the credential's high-water mark: at least
/// the modification time of every version deleted under the lock, so a version written
/// after a delete is stamped later than the deleted one, whatever the clock did.
pub(crate) struct LockGuard(Option<File>);

impl LockGuard {
    /// The high-water mark, when locking.
    pub(crate) fn high_water(&self) -> io::Result<Option<SystemTime>> {
        self.0.as_ref().map(|f| f.metadata()?.modified()).transpose()
    }

    /// Raises the high-water mark to `modified`, the time of a version about to be deleted.
    pub(crate) fn raise_high_water(&self, modified: SystemTime) -> io::Result<()> {
        match &self.0 {
            Some(f) if f.metadata()?.modified()? < modified => set_modified_at_least(f, modified).map(drop),
            _ => Ok(()),
        }
    }
}

impl Dir {
    /// Takes the exclusive lock of file `name` (creating its lock file if needed),
    /// polling while another writer holds it, until `commit` expires. No thread ever
    /// waits on a lock past its operation's deadline.
    pub(crate) fn lock(&self, name: &str, commit: &Commit) -> Result<LockGuard, FsError> {
        if !self.locking {
            return Ok(LockGuard(None));
        }
        let file = private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.join(format!(".{name}{LOCK_SUFFIX}")))?;
        let mut pause = Duration::from_micros(50);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(LockGuard(Some(file))),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(e.into()),
            }
            if commit.expired() {
                return Err(FsError::Expired);
            }
            let left = commit.deadline.saturating_duration_since(Instant::now());
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_LOCK_PAUSE);
        }
    }

    /// The stamp of file `name` as it is, or `None` when it does not exist.
    pub(crate) fn stamp(&self, name: &str) -> io::Result<Option<Stamp>> {
        match fs::metadata(self.path.join(name)) {
            Ok(m) => Ok(Some(Stamp::of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces file `name` with `bytes`, durably and atomically: a unique temporary
    /// file (mode 0600 from creation) in the same directory is written, given a
    /// modification time strictly after `after` (the current version's, or the lock's
    /// high-water mark) and no earlier than now, and fsynced, then, if `commit` still
    /// allows, renamed over the target, then the directory is fsynced. Returns the stamp
    /// of the new version, taken after the rename (which sets its change time). The
    /// temporary file is removed on every error path. Readers see the old file or the new
    /// one, never a mix. Writers of one file hold its [`lock`](Self::lock).
    pub(crate) fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        after: Option<SystemTime>,
        commit: &Commit,
    ) -> Result<Stamp, FsError> {
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(TEMP_SUFFIX);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
        let mut temp = builder.tempfile_in(&self.path)?;
        temp.write_all(bytes)?;
        let now = SystemTime::now();
        let least = after
            .and_then(|t| t.checked_add(Duration::from_nanos(1)))
            .map_or(now, |t| t.max(now));
        if let Err(e) = set_modified_at_least(temp.as_file(), least) {
            tracing::warn!(
                dir = %self.path.display(),
                error = %e,
                "the file system did not keep the modification time set on a new credential file; \
                 its revision may repeat an earlier one: keep credentials on a file system with \
                 settable timestamps (ext4, XFS, Btrfs, APFS, NTFS)"
            );
        }
        temp.as_file().sync_all()?;
        commit.commit()?;
        let file = temp.persist(self.path.join(name)).map_err(|e| e.error)?;
        let stamp = Stamp::of(&file.metadata()?);
        sync_dir(&self.path)?;
        Ok(stamp)
    }

    /// Removes file `name` if present, durably, if `commit` still allows. Missing is fine.
    pub(crate) fn remove(&self, name: &str, commit: &Commit) -> Result<(), FsError> {
        commit.commit()?;
        match fs::remove_file(self.path.join(name)) {
            Ok(()) => Ok(sync_dir(&self.path)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes temporary files left by writers that crashed: those untouched for
    /// [`STALE_TEMP_AGE`]. A younger one may belong to a live writer, locking or not, that
    /// is about to rename it. Returns how many were removed.
    pub(crate) fn remove_stale_temps(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if temp_target(&name).is_none() {
                continue;
            }
            let age = match entry.metadata().and_then(|m| m.modified()) {
                Ok(modified) => modified.elapsed().unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if age > STALE_TEMP_AGE && fs::remove_file(entry.path()).is_ok() {
                tracing::info!(file = %entry.path().display(), "removed a temporary file left by an interrupted write");
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.path)?;
        }
        Ok(removed)
    }
}

/// Sets the modification time of `file` to `least` or, where the file system keeps
/// coarser times, to the first later time it keeps at `least` or after. Returns the time
/// kept; fails when the file system keeps none at least that late.
pub(crate) fn set_modified_at_least(file: &File, least: SystemTime) -> io::Result<SystemTime> {
    for step in TIME_STEPS {
        file.set_modified(least + step)?;
        let kept = file.metadata()?.modified()?;
        if kept >= least {
            return Ok(kept);
        }
    }
    Err(io::Error::other(
        "the file system keeps no modification time as late as the one set",
    ))
}

/// The bytes of the file at `path` and the stamp of the version read. The stamp is
/// taken (`fstat`) before the bytes are read: a version edited in place meanwhile has a
/// later stamp than the one returned, so the edit is never hidden behind an old revision.
///
/// Anything but a regular file (a FIFO, a device, a directory) is refused with
/// `InvalidData` before a byte is read: opening a FIFO for reading would wait for a writer
/// forever, on the calling thread when the read runs inline (Linux opens without
/// blocking for that reason; the flag changes nothing for a regular file).
pub(crate) fn read_stamped(path: &Path) -> io::Result<(Vec<u8>, Stamp)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let mut file = options.open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"));
    }
    // One more byte than the size, so the read ends without growing the buffer.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).map_or(0, |n| n.saturating_add(1)));
    file.read_to_end(&mut bytes)?;
    Ok((bytes, Stamp::of(&metadata)))
}

/// Whether a short read (a `stat`, one small file) may run on the calling thread
/// instead of making the round trip to tokio's blocking pool, which costs more than the
/// read itself (two thread wake-ups).
///
/// Only where a read cannot hang and no other task can be stalled by it: the directory
/// is on a local disk or memory file system (Linux: ext2/3/4, XFS, Btrfs, tmpfs, overlayfs,
/// ZFS, F2FS, bcachefs; never a network or FUSE file system, whose calls can block for as
/// long as a server is away), the runtime is multi-threaded (its other workers keep
/// running the other tasks), and no other inline read of this provider is running — so
/// a disk that stalls holds at most one worker thread, and every other read goes through
/// the pool with its deadline. Elsewhere (other systems, unknown file systems) every read
/// goes through the pool.
#[derive(Debug, Default)]
pub(crate) struct InlineReads {
    /// Decided on the first read, on the blocking pool.
    local: OnceLock<bool>,
    busy: AtomicBool,
}

/// Held while a read runs inline; see [`InlineReads::enter`].
pub(crate) struct InlineSlot<'a>(&'a InlineReads);

impl InlineReads {
    /// Decides, on the blocking pool, whether `dir`'s file system allows inline reads.
    pub(crate) fn decide(&self, dir: &Path) {
        self.local.get_or_init(|| local_file_system(dir));
    }

    /// Whether the decision was made.
    pub(crate) fn decided(&self) -> bool {
        self.local.get().is_some()
    }

    /// A slot to run one read on the calling thread, or `None` when it must go to the
    /// blocking pool (see the type's documentation).
    pub(crate) fn enter(&self) -> Option<InlineSlot<'_>> {
        if self.local.get() != Some(&true) {
            return None;
        }
        let flavor = tokio::runtime::Handle::try_current().ok()?.runtime_flavor();
        if flavor != tokio::runtime::RuntimeFlavor::MultiThread {
            return None;
        }
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(InlineSlot(self))
    }
}

impl Drop for InlineSlot<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// Whether `dir` is on a local disk or memory file system whose reads cannot hang on a
/// server (Linux `statfs` magic numbers; anything unknown is taken as not local).
#[cfg(target_os = "linux")]
fn local_file_system(dir: &Path) -> bool {
    const LOCAL: [u32; 12] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0x794C_7630, // overlayfs
        0x2FC1_2FC1, // ZFS
        0xF2F5_2010, // F2FS
        0xCA45_1A4E, // bcachefs
        0x3153_464A, // JFS
        0x5265_4973, // ReiserFS
        0x0000_4D44, // FAT (MSDOS)
    ];
    rustix::fs::statfs(dir).is_ok_and(|s| LOCAL.contains(&(s.f_type as u32)))
}

/// Other systems: every read goes through the blocking pool.
#[cfg(not(target_os = "linux"))]
fn local_file_system(_dir: &Path) -> bool {
    false
}

/// The credential file a temporary file was meant to become: `.{target}.{random}.tmp`.
pub(crate) fn temp_target(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    inner.rsplit_once('.').map(|(target, _random)| target)
}

/// Creates `path` and missing parents with mode 0700 (Unix).
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Checks that the process can create files in `path` (a temporary probe, removed).
pub(crate) fn probe_writable(path: &Path) -> io::Result<()> {
    tempfile::Builder::new()
        .prefix(".nebula-probe-")
        .suffix(".probe")
        .tempfile_in(path)
        .map(drop)
}

fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Makes a rename or removal in `dir` durable. Windows has no directory fsync.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &Path, locking: bool) -> Dir {
        Dir {
            path: path.to_path_buf(),
            locking,
        }
    }

    fn in_(d: Duration) -> Commit {
        Commit::new(Instant::now() + d)
    }

    fn temps(path: &Path) -> Vec<String> {
        fs::read_dir(path)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .collect()
    }

    #[test]
    fn temp_names() {
        assert_eq!(temp_target(".api_key.enc.json.Ab12Cd.tmp"), Some("api_key.enc.json"));
        assert_eq!(temp_target("api_key.enc.json"), None);
        assert_eq!(temp_target(".api_key.enc.json.lock"), None);
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir(tmp.path(), true);
        // The target is a non-empty directory: the rename fails after the temp file is written.
        fs::create_dir(tmp.path().join("blocked.enc.json")).unwrap();
        fs::write(tmp.path().join("blocked.enc.json").join("x"), b"x").unwrap();
        let commit = in_(Duration::from_secs(10));
        assert!(d.write_atomic("blocked.enc.json", b"data", None, &commit).is_err());
        assert!(temps(tmp.path()).is_empty());
    }

    #[test]
    fn an_abandoned_write_never_lands_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir(tmp.path(), true);
        let commit = in_(Duration::from_secs(10));
        assert!(commit.abandon());
        assert!(matches!(
            d.write_atomic("k.enc.json", b"data", None, &commit),
            Err(FsError::Expired)
        ));
        let past = Commit::new(Instant::now());
        assert!(matches!(
            d.write_atomic("k.enc.json", b"data", None, &past),
            Err(FsError::Expired)
        ));
        assert!(!tmp.path().join("k.enc.json").exists());
        assert!(temps(tmp.path()).is_empty());
        let done = in_(Duration::from_secs(10));
        d.write_atomic("k.enc.json", b"data", None, &done).unwrap();
        assert!(!done.abandon(), "a committed write cannot be abandoned");
        assert!(tmp.path().join("k.enc.json").exists());
    }

    #[test]
    fn a_held_lock_is_waited_for_until_the_deadline_only() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir(tmp.path(), true);
        let held = d.lock("k.enc.json", &in_(Duration::from_secs(1))).unwrap();
        let start = Instant::now();
        let waited = d.lock("k.enc.json", &in_(Duration::from_millis(150)));
        assert!(matches!(waited, Err(FsError::Expired)));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let abandoned = in_(Duration::from_secs(60));
        abandoned.abandon();
        assert!(matches!(d.lock("k.enc.json", &abandoned), Err(FsError::Expired)));
        drop(held);
        d.lock("k.enc.json", &in_(Duration::from_millis(150))).unwrap();
    }

    #[test]
    fn only_old_temps_are_removed_whatever_the_locks_say() {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join(".a.enc.json.x1.tmp");
        let young = tmp.path().join(".b.enc.json.x2.tmp");
        for path in [&old, &young] {
            fs::write(path, b"partial").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        for locking in [true, false] {
            // No lock is held on `b`: its writer may not lock at all.
            let _ = dir(tmp.path(), locking).remove_stale_temps().unwrap();
            assert!(young.exists(), "a young temp file was removed (locking {locking})");
        }
        assert!(!old.exists());
    }
}
