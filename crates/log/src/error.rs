use std::path::PathBuf;

/// Log and storage failures. `is_retryable` separates a busy or passing
/// condition (try again) from a permanent one (fix something first).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("data directory {path} stayed in use by another idfold process; try again, or stop that process")]
    Locked { path: PathBuf },
    #[error("no idfold data in {path}: ingest events into it first, or check --data")]
    Missing { path: PathBuf },
    #[error("{path} is a file, not a directory: give --data a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path} is not an idfold data directory (its files are not idfold's): check --data, or give a new or empty directory")]
    NotDataDir { path: PathBuf },
    /// The cause (`source`) is printed after the message by whoever shows
    /// the chain, so the message leaves it out: it would appear twice.
    #[error("cannot open data directory {path}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage error")]
    Storage(#[source] sled::Error),
    /// The data directory's filesystem has no room for the write: nothing
    /// of it was acknowledged, and it succeeds again once space is freed.
    #[error("the data directory's filesystem is full ({detail}); free space on it: writes are refused until then")]
    DiskFull { detail: String },
    /// A write failed for lack of space and sled has refused every write
    /// since: it must be reopened (idfold restarted) to write again.
    #[error("a write to {path} failed when its filesystem was full, and the database refuses every write since until it is reopened: restart idfold (nothing acknowledged was lost)")]
    NeedsReopen { path: PathBuf },
    #[error("corrupt record at {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// The log's server is unreachable or timed out: nothing was lost, the
    /// write can be tried again.
    #[error("the log is unavailable: {detail}")]
    Unavailable { detail: String },
    /// The log's server refused the write for good (too large, not allowed,
    /// no such topic): retrying will not help.
    #[error("the log refused the write: {detail}")]
    Refused { detail: String },
}

impl LogError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LogError::Locked { .. }
                | LogError::Unavailable { .. }
                | LogError::DiskFull { .. }
                // For a client: the restart it takes makes a retry succeed.
                | LogError::NeedsReopen { .. }
        ) || self.is_disk_full()
    }

    /// The filesystem had no room: a wait for free space, not a fault.
    pub fn is_disk_full(&self) -> bool {
        match self {
            LogError::DiskFull { .. } => true,
            LogError::Open { source, .. } => io_error_is_disk_full(source),
            LogError::Storage(error) => sled_error_is_disk_full(error),
            _ => false,
        }
    }
}

/// The one place that recognises a full filesystem (or an exhausted disk
/// quota). sled re-wraps the OS error in its own, keeping only the kind,
/// so the kind is checked as well as the OS code.
pub fn io_error_is_disk_full(error: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}

pub fn sled_error_is_disk_full(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io_error_is_disk_full(io))
}

impl From<sled::Error> for LogError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(io) if io_error_is_disk_full(&io) => LogError::DiskFull {
                detail: io.to_string(),
            },
            other => LogError::Storage(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn a_full_disk_is_retryable_however_it_is_wrapped() {
        let os = || io::Error::from_raw_os_error(28);
        // sled keeps only the kind and the text of the OS error.
        let rewrapped = io::Error::new(io::ErrorKind::StorageFull, os().to_string());
        for error in [os(), rewrapped, io::Error::from_raw_os_error(122)] {
            let log = LogError::from(sled::Error::Io(error));
            assert!(matches!(log, LogError::DiskFull { .. }), "{log:?}");
            assert!(log.is_retryable() && log.is_disk_full());
        }
        let open = LogError::Open {
            path: "d".into(),
            source: os(),
        };
        assert!(open.is_retryable(), "{open:?}");
    }

    #[test]
    fn other_storage_failures_stay_permanent() {
        let denied = LogError::from(sled::Error::Io(io::Error::from(
            io::ErrorKind::PermissionDenied,
        )));
        assert!(matches!(denied, LogError::Storage(_)));
        assert!(!denied.is_retryable() && !denied.is_disk_full());
        let corrupt = LogError::from(sled::Error::Corruption { at: None, bt: () });
        assert!(!corrupt.is_retryable());
    }
}
