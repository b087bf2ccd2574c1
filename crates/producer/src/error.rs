use idfold_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("cannot write to the log")]
    Log(#[from] LogError),
    #[error("event {message_id} passed validation but does not encode to its Avro schema (a bug: please report it)")]
    Encode { message_id: String },
}

impl ProducerError {
    /// Retryable: the same inputs may be sent again (the fold drops the
    /// re-delivered ones by message_id).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProducerError::Log(e) => e.is_retryable(),
            ProducerError::Encode { .. } => false,
        }
    }
}
