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

/// How often a waiting opener tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(20);

impl DataDir {
    /// Opens (creating it if missing) for a writer. Waits up to `wait` for
    /// another process to release the directory: a following `idfold run`
    /// holds it only while it folds.
    pub fn open(path: &Path, wait: Duration) -> Result<DataDir, LogError> {
        let io = |source| LogError::Open {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        DataDir::open_locked(path, wait)
    }

    /// Opens an existing directory (readers: a typo must not look like an
    /// empty data set).
    pub fn open_existing(path: &Path, wait: Duration) -> Result<DataDir, LogError> {
        if !path.join("db").is_dir() {
            return Err(LogError::Missing {
                path: path.to_owned(),
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
            .open(path.join("idfold.lock"))
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
        let db = sled::Config::new()
            .path(path.join("db"))
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
