use std::path::PathBuf;

/// Log and storage failures. `is_retryable` separates a busy or passing
/// condition (try again) from a permanent one (fix something first).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("data directory {path} is in use by another idfold process; stop it, or query it through its API")]
    Locked { path: PathBuf },
    #[error("cannot open data directory {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("corrupt record at {what}: {detail}")]
    Corrupt { what: String, detail: String },
}

impl LogError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, LogError::Locked { .. })
    }
}
