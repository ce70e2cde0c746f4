//! [`Stamp`]: what identifies one version of a file (and gives its [`Revision`]), and
//! [`MetadataCache`]: what `list` learned from each file, kept until the file changes.
//!
//! A filtered `list` needs every candidate's metadata. Reading 10,000 files costs about
//! 100 ms; a `stat` per file about a tenth of that. The cache keys each file's parsed
//! metadata by its stamp (device, inode, size, modification and change times), so only
//! files written since the last `list` are read again.
//!
//! Sound across processes and on file systems with coarse timestamps: every store
//! renames a new file into place, and any other edit changes the change time, which no
//! user can set. A change made after the cache read a file is stamped no earlier than
//! [`AMBIGUITY`] before that read, so an entry is trusted only when its stamp is older
//! than that: a later rewrite, even one that gets a reused inode back, then has a
//! different stamp. Entries stamped more recently are read again on every pass.

use std::collections::HashMap;
use std::fs::Metadata;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use nebula_credential_core::{CredentialMetadata, Revision};

/// The coarsest timestamp granularity in common use (FAT: 2 s); stamps within this of
/// the time a file was read cannot tell that version from a later one.
const AMBIGUITY: Duration = Duration::from_secs(2);

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    #[cfg(unix)]
    ids: [u64; 2],
    /// Modification and (Unix) change time.
    times: [Option<SystemTime>; 2],
}

impl Stamp {
    /// The stamp of the file version `m` describes (from `stat`, or `fstat` of an open file).
    pub(crate) fn of(m: &Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ctime = u64::try_from(m.ctime())
                .ok()
                .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, m.ctime_nsec() as u32)));
            Stamp {
                len: m.len(),
                ids: [m.dev(), m.ino()],
                times: [m.modified().ok(), ctime],
            }
        }
        #[cfg(not(unix))]
        Stamp {
            len: m.len(),
            times: [m.modified().ok(), None],
        }
    }

    /// The modification time, which writers keep strictly increasing per credential.
    pub(crate) fn modified(&self) -> Option<SystemTime> {
        self.times[0]
    }

    /// The revision of this version of the file: its modification time (to the
    /// nanosecond), size and, on Unix, device and inode.
    ///
    /// It changes on every store: each one renames a new file into place with a
    /// modification time set strictly after that of every earlier version of the
    /// credential, deleted ones included (see `Dir::write_atomic`), so even a reused inode
    /// with the same size, written within one tick of the kernel clock, gets a new
    /// revision. The change time is left out: it also moves when a later store unlinks
    /// the version a reader still holds open, and that reader must report the revision
    /// the store did. Reading it costs one `stat`, never the file's content.
    pub(crate) fn revision(&self) -> Revision {
        let modified = nanos(&self.times[0]);
        #[cfg(unix)]
        let token = format!("{modified}-{:x}-{:x}.{:x}", self.len, self.ids[0], self.ids[1]);
        #[cfg(not(unix))]
        let token = format!("{modified}-{:x}", self.len);
        Revision::new(token)
    }

    /// Whether a file read at `read_at` with this stamp cannot be confused with a later
    /// version: every time is known and at least [`AMBIGUITY`] older than the read.
    fn unambiguous_at(&self, read_at: SystemTime) -> bool {
        let settled = read_at.checked_sub(AMBIGUITY);
        #[cfg(not(unix))]
        let times = &self.times[..1];
        #[cfg(unix)]
        let times = &self.times[..];
        times
            .iter()
            .all(|t| matches!((t, settled), (Some(t), Some(settled)) if *t <= settled))
    }
}

/// A time as hex nanoseconds since the Unix epoch (`-` before it), `?` when unknown.
fn nanos(t: &Option<SystemTime>) -> String {
    match t.map(|t| t.duration_since(SystemTime::UNIX_EPOCH)) {
        Some(Ok(after)) => format!("{:x}", after.as_nanos()),
        Some(Err(before)) => format!("-{:x}", before.duration().as_nanos()),
        None => "?".to_string(),
    }
}

struct Entry {
    stamp: Stamp,
    metadata: CredentialMetadata,
    /// The stamp could not have been given to a later version too.
    trusted: bool,
    /// The last pass that met the file.
    pass: u64,
}

#[derive(Default)]
struct Entries {
    by_name: HashMap<String, Entry>,
    /// The number of the current (or last) pass.
    pass: u64,
}

/// Parsed metadata per file name, valid while the file's [`Stamp`] is unchanged.
#[derive(Default)]
pub(crate) struct MetadataCache {
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("MetadataCache");
        if let Ok(entries) = self.entries.try_lock() {
            d.field("entries", &entries.by_name.len());
        }
        d.finish_non_exhaustive()
    }
}

impl MetadataCache {
    /// Starts a pass over the directory. Lists run one at a time per provider; the
    /// pass keeps what it meets and drops the rest (files deleted since) when finished.
    pub(crate) fn pass(&self) -> Pass<'_> {
        let started = SystemTime::now();
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        guard.pass += 1;
        Pass { guard, started }
    }
}

/// One directory scan's view of the cache; see [`MetadataCache::pass`].
pub(crate) struct Pass<'a> {
    guard: MutexGuard<'a, Entries>,
    /// Taken before any file of the pass is looked at: files are read after it.
    started: SystemTime,
}

impl Pass<'_> {
    /// Keeps the entry of `name` as it is (the file was not looked at).
    pub(crate) fn keep(&mut self, name: &str) {
        let pass = self.guard.pass;
        if let Some(entry) = self.guard.by_name.get_mut(name) {
            entry.pass = pass;
        }
    }

    /// The metadata of `name` at `stamp`: cached when the entry has this stamp and
    /// the stamp is unambiguous, else loaded and remembered.
    pub(crate) fn get_or_load<E>(
        &mut self,
        name: &str,
        stamp: Stamp,
        load: impl FnOnce() -> Result<CredentialMetadata, E>,
    ) -> Result<&CredentialMetadata, E> {
        let pass = self.guard.pass;
        let cached = matches!(self.guard.by_name.get(name), Some(e) if e.trusted && e.stamp == stamp);
        if !cached {
            let entry = Entry {
                metadata: load()?,
                trusted: stamp.unambiguous_at(self.started),
                stamp,
                pass,
            };
            self.guard.by_name.insert(name.to_owned(), entry);
        }
        let entry = self.guard.by_name.get_mut(name).expect("found or inserted above");
        entry.pass = pass;
        Ok(&entry.metadata)
    }

    /// Ends the pass: entries not met are dropped.
    pub(crate) fn finish(mut self) {
        let pass = self.guard.pass;
        self.guard.by_name.retain(|_, entry| entry.pass == pass);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stamp as a file system with one-second timestamps and reused inodes gives
    /// two versions of one file written within the same second.
    fn coarse(at: SystemTime) -> Stamp {
        let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let t = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        Stamp {
            len: 100,
            #[cfg(unix)]
            ids: [1, 42],
            times: [t, t],
        }
    }

    fn version(v: u64) -> CredentialMetadata {
        CredentialMetadata {
            version: v,
            ..CredentialMetadata::new()
        }
    }

    fn list_once(cache: &MetadataCache, stamp: &Stamp, on_disk: u64) -> (u64, bool) {
        let mut pass = cache.pass();
        let mut loaded = false;
        let v = pass
            .get_or_load("k.enc.json", stamp.clone(), || {
                loaded = true;
                Ok::<_, ()>(version(on_disk))
            })
            .unwrap()
            .version;
        pass.finish();
        (v, loaded)
    }

    #[test]
    fn equal_recent_stamps_are_not_trusted() {
        let cache = MetadataCache::default();
        let stamp = coarse(SystemTime::now());
        assert_eq!(list_once(&cache, &stamp, 1), (1, true));
        // Rewritten within the same second: same inode, size and times, new content.
        assert_eq!(list_once(&cache, &stamp, 2), (2, true), "a stale entry was served");
    }

    #[test]
    fn settled_stamps_are_served_from_the_cache() {
        let cache = MetadataCache::default();
        let stamp = coarse(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(list_once(&cache, &stamp, 1), (1, true));
        assert_eq!(list_once(&cache, &stamp, 1), (1, false), "read again without need");
        let mut changed = stamp.clone();
        changed.len += 1;
        assert_eq!(list_once(&cache, &changed, 3), (3, true));
    }

    #[test]
    fn a_stamp_without_times_is_never_trusted() {
        let cache = MetadataCache::default();
        let mut stamp = coarse(SystemTime::now() - Duration::from_secs(60));
        stamp.times = [None, None];
        list_once(&cache, &stamp, 1);
        assert_eq!(list_once(&cache, &stamp, 2), (2, true));
    }

    #[test]
    fn a_real_file_with_a_forced_recent_mtime_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.enc.json");
        let file = std::fs::File::create(&path).unwrap();
        let now = SystemTime::now();
        file.set_modified(now).unwrap();
        let stamp = Stamp::of(&file.metadata().unwrap());
        let cache = MetadataCache::default();
        list_once(&cache, &stamp, 1);
        assert_eq!(list_once(&cache, &stamp, 2), (2, true));
        file.set_modified(now - Duration::from_secs(60)).unwrap();
        assert!(
            !Stamp::of(&file.metadata().unwrap()).unambiguous_at(now),
            "ctime is recent"
        );
    }
}
