use idfold_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("storage error")]
    Storage(#[source] sled::Error),
    #[error("cannot write the output")]
    Output(std::io::Error),
    #[error("corrupt state at {key}: {detail}; run `idfold rebuild` to refold it from the log")]
    Corrupt { key: String, detail: String },
    #[error("this data directory holds the fold of the {folds} log, not of the {asked} log; use another --data directory, or `idfold rebuild` it")]
    OtherLog { folds: String, asked: String },
    #[error("this data directory holds a projection written by an older idfold (fold format {found}, this one reads {reads}); the log is the truth: run `idfold rebuild` to refold the projection from it")]
    NeedsRebuild { found: String, reads: String },
}

/// sled's errors are classified by the log's one rule: a full disk becomes
/// the log's retryable `DiskFull`, anything else stays a storage fault.
impl From<sled::Error> for ProjectorError {
    fn from(error: sled::Error) -> Self {
        match LogError::from(error) {
            LogError::Storage(other) => ProjectorError::Storage(other),
            classified => ProjectorError::Log(classified),
        }
    }
}

impl ProjectorError {
    /// The filesystem had no room: the fold waits for space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, ProjectorError::Log(e) if e.is_disk_full())
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            ProjectorError::Log(e) => e.is_retryable(),
            ProjectorError::Storage(_)
            | ProjectorError::Corrupt { .. }
            | ProjectorError::Output(_)
            | ProjectorError::OtherLog { .. }
            | ProjectorError::NeedsRebuild { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_under_the_fold_is_waited_for_and_other_faults_are_not() {
        let full = ProjectorError::from(sled::Error::Io(std::io::Error::from_raw_os_error(28)));
        assert!(full.is_retryable() && full.is_disk_full(), "{full:?}");
        let denied = ProjectorError::from(sled::Error::Io(std::io::Error::from(
            std::io::ErrorKind::PermissionDenied,
        )));
        assert!(
            !denied.is_retryable() && !denied.is_disk_full(),
            "{denied:?}"
        );
    }
}
