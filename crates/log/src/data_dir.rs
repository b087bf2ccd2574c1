//! The `--data DIR` directory: one sled database, locked by one process.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{sled_error_is_disk_full, LogError};

/// Free space every write leaves on the data directory's filesystem, unless
/// `with_space_reserve` says otherwise (`--disk-reserve-mb`). sled
/// refuses every write after one that failed for lack of space, until it is
/// reopened: writes are refused before that can happen, with room left for
/// what sled writes on its own (segment headers, snapshots, the flush of
/// what was already accepted).
pub const SPACE_RESERVE_BYTES: u64 = 4 * 1024 * 1024;

/// An open data directory. Holds an exclusive lock file: one process at a
/// time, and a second one waits its turn (or gets a clear "in use" error)
/// rather than sled's own. Every handle that reads its trees keeps a clone,
/// so the lock lasts as long as the database is open.
#[derive(Debug, Clone)]
pub struct DataDir {
    db: sled::Db,
    path: PathBuf,
    /// Set when sled reported a full disk itself: it refuses writes from
    /// then on, whatever space is freed, until the database is reopened.
    poisoned: Arc<AtomicBool>,
    _keeper: Arc<Keeper>,
    space_reserve: u64,
    _lock: std::sync::Arc<File>,
}

/// The sled database inside a data directory.
const DB: &str = "db";
/// The lock file every opener creates.
const LOCK: &str = "idfold.lock";

/// Whether `dir` holds nothing but what an opener leaves behind (the lock
/// file of an earlier, failed open).
fn holds_only_idfold_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .all(|entry| entry.file_name() == LOCK)
    })
}

/// Whether `db` is missing, empty, or looks like a database sled wrote (its
/// `conf` file starts with the segment size): anything else is not ours.
fn is_new_or_sled_database(db: &Path) -> bool {
    match std::fs::read_dir(db) {
        Err(_) => !db.exists(),
        Ok(mut entries) => {
            entries.next().is_none()
                || std::fs::read(db.join("conf"))
                    .is_ok_and(|conf| conf.starts_with(b"segment_size: "))
        }
    }
}

/// sled's page cache where no budget says otherwise.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// How long sled's own file lock is waited for once idfold's is held.
const SLED_LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// Opens the database. With idfold's lock held, sled's own lock can only be
/// held by this process's previous handle on it: sled 0.34 frees its
/// file handles through epoch-based reclamation, a moment after the last
/// handle is dropped, so a directory closed and reopened at once (a
/// following `run`, a test) may find it still locked. Waited for.
fn open_sled(db: &Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
    let give_up = Instant::now() + SLED_LOCK_PATIENCE;
    loop {
        match sled::Config::new()
            .path(db)
            .cache_capacity(cache_bytes)
            .open()
        {
            // sled reports its lock as an I/O error of kind Other; the
            // operating system's own errors keep their kinds.
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::Other && Instant::now() < give_up =>
            {
                std::thread::sleep(LOCK_RETRY);
            }
            outcome => return outcome,
        }
    }
}

/// How often a waiting opener tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(20);

impl DataDir {
    /// Opens (creating it if missing) for a writer. Waits up to `wait` for
    /// another process to release the directory: a following `idfold run`
    /// holds it only while it folds.
    pub fn open(path: &Path, wait: Duration) -> Result<DataDir, LogError> {
        DataDir::open_sized(path, wait, DEFAULT_CACHE_BYTES)
    }

    /// [`DataDir::open`] with sled's page cache bounded to `cache_bytes`
    /// (the fold gives it a share of its memory budget).
    pub fn open_sized(path: &Path, wait: Duration, cache_bytes: u64) -> Result<DataDir, LogError> {
        if path.exists() && !path.is_dir() {
            return Err(LogError::NotADirectory {
                path: path.to_owned(),
            });
        }
        std::fs::create_dir_all(path).map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })?;
        DataDir::open_locked(path, wait, cache_bytes)
    }

    /// Opens an existing directory (readers and the fold: a typo must not
    /// look like an empty data set, nor leave an empty directory behind).
    pub fn open_existing(path: &Path, wait: Duration) -> Result<DataDir, LogError> {
        DataDir::open_existing_sized(path, wait, DEFAULT_CACHE_BYTES)
    }

    /// [`DataDir::open_existing`] with sled's page cache bounded.
    pub fn open_existing_sized(
        path: &Path,
        wait: Duration,
        cache_bytes: u64,
    ) -> Result<DataDir, LogError> {
        let path_buf = || path.to_owned();
        if !path.exists() {
            return Err(LogError::Missing { path: path_buf() });
        }
        if !path.is_dir() {
            return Err(LogError::NotADirectory { path: path_buf() });
        }
        if !path.join(DB).is_dir() {
            // Files of something else, or nothing at all.
            return Err(if holds_only_idfold_files(path) {
                LogError::Missing { path: path_buf() }
            } else {
                LogError::NotDataDir { path: path_buf() }
            });
        }
        DataDir::open_locked(path, wait, cache_bytes)
    }

    fn open_locked(path: &Path, wait: Duration, cache_bytes: u64) -> Result<DataDir, LogError> {
        let io = |source| LogError::Open {
            path: path.to_owned(),
            source,
        };
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK))
            .map_err(io)?;
        let deadline = Instant::now() + wait;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY)
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LogError::Locked {
                        path: path.to_owned(),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        // Before sled sees them: sled's words for files it did not write
        // ("created using a sled version earlier than 0.29") mislead, and
        // it may write its own over them.
        if !is_new_or_sled_database(&path.join(DB)) {
            return Err(LogError::NotDataDir {
                path: path.to_owned(),
            });
        }
        remove_unfinished_snapshots(&path.join(DB)).map_err(io)?;
        let poisoned = Arc::new(AtomicBool::new(false));
        let db = open_sled(&path.join(DB), cache_bytes).map_err(|e| match LogError::from(e) {
            LogError::DiskFull { detail } => LogError::DiskFull {
                detail: format!(
                    "{detail}; sled writes to {} to open it, and cannot",
                    path.display()
                ),
            },
            other => other,
        })?;
        Ok(DataDir {
            db: db.clone(),
            path: path.to_owned(),
            _keeper: Arc::new(Keeper {
                db: Some(db),
                poisoned: poisoned.clone(),
            }),
            poisoned,
            space_reserve: SPACE_RESERVE_BYTES,
            _lock: std::sync::Arc::new(lock),
        })
    }

    /// The free space writes leave (0: none, the filesystem's own ENOSPC
    /// then stops sled's writes until it is reopened).
    pub fn with_space_reserve(mut self, bytes: u64) -> DataDir {
        self.space_reserve = bytes;
        self
    }

    /// Whether a write of about `bytes` may go ahead: refused while the
    /// filesystem has less than the reserve free beyond it, and
    /// for good once sled itself failed for lack of space (until reopened).
    pub fn ensure_space(&self, bytes: u64) -> Result<(), LogError> {
        let free = fs2::available_space(&self.path).map_err(|source| LogError::Open {
            path: self.path.clone(),
            source,
        })?;
        let poisoned = self.poisoned.load(Ordering::SeqCst);
        let mut needed = self.space_reserve.saturating_add(bytes);
        if poisoned {
            // The way out is a restart, and opening takes room: until there
            // is some, this is still a wait for space.
            needed = needed.max(SPACE_RESERVE_BYTES);
        }
        if free < needed {
            return Err(LogError::DiskFull {
                detail: format!(
                    "{free} bytes free under {}, {needed} needed",
                    self.path.display()
                ),
            });
        }
        if poisoned {
            return Err(LogError::NeedsReopen {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Whether sled failed a write for lack of space: it takes no more
    /// writes from this process, which must be restarted to write again
    /// (the database is not let go: see `Keeper`).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// Converts a sled write's error, remembering a full disk: sled has
    /// then stopped taking writes until it is reopened.
    pub fn written<T>(&self, result: Result<T, sled::Error>) -> Result<T, LogError> {
        result.map_err(|error| {
            if sled_error_is_disk_full(&error) {
                self.poisoned.store(true, Ordering::SeqCst);
            }
            LogError::from(error)
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tree(&self, name: &str) -> Result<sled::Tree, LogError> {
        Ok(self.db.open_tree(name)?)
    }

    pub fn drop_tree(&self, name: &str) -> Result<(), LogError> {
        self.db.drop_tree(name)?;
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), LogError> {
        // A flush of a database sled failed to write can wait for ever for
        // a write that will not come: not tried.
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(LogError::NeedsReopen {
                path: self.path.clone(),
            });
        }
        self.written(self.db.flush())?;
        Ok(())
    }

    /// Copies every tree, live entries only, into `target` (a directory
    /// that must not hold data yet). Deleted entries stay in this
    /// directory's files until sled reuses their space; the copy has none.
    pub fn copy_live_into(&self, target: &DataDir) -> Result<u64, LogError> {
        const BATCH: usize = 10_000;
        let mut copied = 0;
        for name in self.db.tree_names() {
            let from = self.db.open_tree(&name)?;
            let into = target.db.open_tree(&name)?;
            let mut batch = sled::Batch::default();
            let mut pending = 0;
            for entry in from.iter() {
                let (k, v) = entry?;
                batch.insert(k, v);
                pending += 1;
                copied += 1;
                if pending == BATCH {
                    into.apply_batch(std::mem::take(&mut batch))?;
                    pending = 0;
                }
            }
            into.apply_batch(batch)?;
        }
        target.flush()?;
        Ok(copied)
    }

    pub fn size_on_disk(&self) -> Result<u64, LogError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// Holds one handle on the database for as long as a `DataDir` lives, and
/// never lets it go if sled failed a write: the last handle's drop flushes,
/// and sled 0.34's flush after a failed write can wait for ever, which
/// would hang the process on its way out. Nothing is lost by not flushing
/// then: what was acknowledged was flushed before it was.
#[derive(Debug)]
struct Keeper {
    db: Option<sled::Db>,
    poisoned: Arc<AtomicBool>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if self.poisoned.load(Ordering::SeqCst) {
            std::mem::forget(self.db.take());
        }
    }
}

/// sled 0.34 writes a snapshot as `snap.N.generating` and renames it when
/// complete; one left by a write that failed (a full disk) is taken for the
/// newest snapshot at the next open, which then fails as corrupt for ever.
/// An unfinished one never holds anything the log does not: remove it.
fn remove_unfinished_snapshots(db: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(db) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_WAIT: Duration = Duration::ZERO;

    #[test]
    fn a_file_is_named_as_a_file_by_readers_and_writers() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let file = tmp.path().join("a-file");
        std::fs::write(&file, b"x")?;
        for result in [
            DataDir::open(&file, NO_WAIT),
            DataDir::open_existing(&file, NO_WAIT),
        ] {
            assert!(
                matches!(result, Err(LogError::NotADirectory { .. })),
                "{result:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn readers_refuse_a_missing_or_empty_directory_without_creating_it() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let missing = tmp.path().join("nope");
        let result = DataDir::open_existing(&missing, NO_WAIT);
        assert!(
            matches!(result, Err(LogError::Missing { .. })),
            "{result:?}"
        );
        assert!(!missing.exists(), "a reader creates nothing");
        let result = DataDir::open_existing(tmp.path(), NO_WAIT);
        assert!(
            matches!(result, Err(LogError::Missing { .. })),
            "{result:?}"
        );
        Ok(())
    }

    #[test]
    fn garbage_files_are_not_an_idfold_data_directory() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        // Beside the database: readers refuse.
        std::fs::write(tmp.path().join("notes.txt"), b"hello")?;
        let result = DataDir::open_existing(tmp.path(), NO_WAIT);
        assert!(
            matches!(result, Err(LogError::NotDataDir { .. })),
            "{result:?}"
        );
        // In place of sled's files: readers and writers refuse.
        let db = tmp.path().join(DB);
        std::fs::create_dir(&db)?;
        let garbage: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(151) ^ 0x5a).collect();
        std::fs::write(db.join("conf"), &garbage)?;
        std::fs::write(db.join("snap.0000000000000000"), b"\x01\x02garbage")?;
        for result in [
            DataDir::open(tmp.path(), NO_WAIT),
            DataDir::open_existing(tmp.path(), NO_WAIT),
        ] {
            assert!(
                matches!(result, Err(LogError::NotDataDir { .. })),
                "{result:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_directory_a_writer_created_opens_for_readers() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("data");
        let dir = DataDir::open(&path, NO_WAIT)?;
        dir.tree("t")?.insert(b"k", b"v")?;
        dir.flush()?;
        drop(dir);
        assert!(is_new_or_sled_database(&path.join(DB)));
        let again = DataDir::open_existing(&path, NO_WAIT)?;
        assert_eq!(again.tree("t")?.get(b"k")?.as_deref(), Some(&b"v"[..]));
        Ok(())
    }

    #[test]
    fn an_os_error_is_the_cause_not_part_of_the_message() {
        let error = LogError::Open {
            path: PathBuf::from("/proc/nope/x"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let cause = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
        assert!(!error.to_string().contains(&cause), "{error}");
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source, Some(cause));
    }
}
