//! The `--data DIR` directory: one sled database, locked by one process.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::LogError;

/// An open data directory. Holds an exclusive lock file so a second process
/// gets a clear "in use" error rather than sled's own.
#[derive(Debug, Clone)]
pub struct DataDir {
    db: sled::Db,
    path: PathBuf,
    _lock: std::sync::Arc<File>,
}

impl DataDir {
    pub fn open(path: &Path) -> Result<DataDir, LogError> {
        let io = |source| LogError::Open {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join("idfold.lock"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    path: path.to_owned(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
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

    pub fn size_on_disk(&self) -> Result<u64, LogError> {
        Ok(self.db.size_on_disk()?)
    }
}
