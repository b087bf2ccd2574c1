use idfold_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("storage error")]
    Storage(#[from] sled::Error),
    #[error("cannot write the output")]
    Output(std::io::Error),
    #[error("corrupt state at {key}: {detail}; run `idfold rebuild` to refold it from the log")]
    Corrupt { key: String, detail: String },
    #[error("this data directory holds the fold of the {folds} log, not of the {asked} log; use another --data directory, or `idfold rebuild` it")]
    OtherLog { folds: String, asked: String },
}

impl ProjectorError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ProjectorError::Log(e) => e.is_retryable(),
            ProjectorError::Storage(_)
            | ProjectorError::Corrupt { .. }
            | ProjectorError::Output(_)
            | ProjectorError::OtherLog { .. } => false,
        }
    }
}
