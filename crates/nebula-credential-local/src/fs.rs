//! Blocking file-system primitives: durable atomic writes, per-credential advisory
//! locks, removal, and cleanup of temporary files left by a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Suffix of temporary files; they also start with a dot, so they are never listed.
const TEMP_SUFFIX: &str = ".tmp";
/// Suffix of lock files (`.{file name}.lock`), kept after a delete: removing a lock
/// file another writer may be waiting on would let two writers in.
const LOCK_SUFFIX: &str = ".lock";
/// Without locking, a temporary file this old is taken as left by a crash.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// The directory of one provider and how it writes.
#[derive(Debug)]
pub(crate) struct Dir {
    pub(crate) path: PathBuf,
    pub(crate) locking: bool,
}

/// Holds an exclusive advisory lock until dropped (closing the file releases it).
pub(crate) struct LockGuard(#[allow(dead_code)] Option<File>);

impl Dir {
    /// Opens (creating if needed) the lock file of `name` and waits for its exclusive lock.
    pub(crate) fn lock(&self, name: &str) -> io::Result<LockGuard> {
        if !self.locking {
            return Ok(LockGuard(None));
        }
        let file = private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.join(format!(".{name}{LOCK_SUFFIX}")))?;
        file.lock()?;
        Ok(LockGuard(Some(file)))
    }

    /// Replaces file `name` with `bytes`, durably and atomically: a unique temporary
    /// file (mode 0600 from creation) in the same directory is written, fsynced and
    /// renamed over the target, then the directory is fsynced. The temporary file is
    /// removed on every error path. Readers see the old file or the new one, never a mix.
    pub(crate) fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let _guard = self.lock(name)?;
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(TEMP_SUFFIX);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
        let mut temp = builder.tempfile_in(&self.path)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(self.path.join(name)).map_err(|e| e.error)?;
        sync_dir(&self.path)
    }

    /// Removes file `name` if present, durably. Missing is fine.
    pub(crate) fn remove(&self, name: &str) -> io::Result<()> {
        let _guard = self.lock(name)?;
        match fs::remove_file(self.path.join(name)) {
            Ok(()) => sync_dir(&self.path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes temporary files left by writers that crashed. With locking, a temporary
    /// file whose credential lock is free has no live writer; without locking, only
    /// files older than ten minutes are removed. Returns how many were removed.
    pub(crate) fn remove_stale_temps(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some(target) = temp_target(&name) else {
                continue;
            };
            let stale = if self.locking {
                let file = private_options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(self.path.join(format!(".{target}{LOCK_SUFFIX}")))?;
                // Held while removing, so no writer can start on this credential meanwhile;
                // a writer that holds it makes this fail with WouldBlock: leave its file.
                let locked = file.try_lock().is_ok();
                locked && remove_quietly(&entry.path())
            } else {
                let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
                age > STALE_TEMP_AGE && remove_quietly(&entry.path())
            };
            if stale {
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

fn remove_quietly(path: &Path) -> bool {
    fs::remove_file(path).is_ok()
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

    #[test]
    fn temp_names() {
        assert_eq!(temp_target(".api_key.enc.json.Ab12Cd.tmp"), Some("api_key.enc.json"));
        assert_eq!(temp_target("api_key.enc.json"), None);
        assert_eq!(temp_target(".api_key.enc.json.lock"), None);
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir {
            path: dir.path().to_path_buf(),
            locking: true,
        };
        // The target is a non-empty directory: the rename fails after the temp file is written.
        fs::create_dir(dir.path().join("blocked.enc.json")).unwrap();
        fs::write(dir.path().join("blocked.enc.json").join("x"), b"x").unwrap();
        assert!(d.write_atomic("blocked.enc.json", b"data").is_err());
        let temps: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
    }

    #[test]
    fn stale_temps_are_removed_unless_a_writer_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir {
            path: dir.path().to_path_buf(),
            locking: true,
        };
        fs::write(dir.path().join(".a.enc.json.x1.tmp"), b"partial").unwrap();
        fs::write(dir.path().join(".b.enc.json.x2.tmp"), b"partial").unwrap();
        let held = d.lock("b.enc.json").unwrap();
        assert_eq!(d.remove_stale_temps().unwrap(), 1);
        assert!(!dir.path().join(".a.enc.json.x1.tmp").exists());
        assert!(
            dir.path().join(".b.enc.json.x2.tmp").exists(),
            "a live writer's file stays"
        );
        drop(held);
        assert_eq!(d.remove_stale_temps().unwrap(), 1);
    }
}
