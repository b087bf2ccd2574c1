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
    Storage(#[from] sled::Error),
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
        matches!(self, LogError::Locked { .. } | LogError::Unavailable { .. })
    }
}
