//! The `--data DIR` directory: one sled database, locked by one process.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::LogError;

/// An open data directory. Holds an exclusive lock file: one process at a
/// time, and a second one waits its turn (or gets a clear "in use" error)
/// rather than sled's own. Every handle that reads its trees keeps a clone,
/// so the lock lasts as long as the database is open.
#[derive(Debug, Clone)]
pub struct DataDir {
    db: sled::Db,
    path: PathBuf,
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

/// How often a waiting opener tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(20);

impl DataDir {
    /// Opens (creating it if missing) for a writer. Waits up to `wait` for
    /// another process to release the directory: a following `idfold run`
    /// holds it only while it folds.
    pub fn open(path: &Path, wait: Duration) -> Result<DataDir, LogError> {
        if path.exists() && !path.is_dir() {
            return Err(LogError::NotADirectory {
                path: path.to_owned(),
            });
        }
        std::fs::create_dir_all(path).map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })?;
        DataDir::open_locked(path, wait)
    }

    /// Opens an existing directory (readers and the fold: a typo must not
    /// look like an empty data set, nor leave an empty directory behind).
    pub fn open_existing(path: &Path, wait: Duration) -> Result<DataDir, LogError> {
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
        DataDir::open_locked(path, wait)
    }

    fn open_locked(path: &Path, wait: Duration) -> Result<DataDir, LogError> {
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
        let db = sled::Config::new()
            .path(path.join(DB))
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        Ok(DataDir {
            db,
            path: path.to_owned(),
            _lock: std::sync::Arc::new(lock),
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
        self.db.flush()?;
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
