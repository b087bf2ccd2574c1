use idfold_log::LogError;
use idfold_producer::ProducerError;
use idfold_projector::ProjectorError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What can stop a Kafka stage. `is_retryable` separates a passing
/// condition (the broker is down, a rebalance) from one to fix first.
#[derive(Debug, thiserror::Error)]
pub enum KafkaStageError {
    #[error(
        "cannot reach Kafka at {bootstrap}: {detail}; is the broker up? (deploy/kafka.sh start)"
    )]
    Unreachable { bootstrap: String, detail: String },
    #[error("Kafka client")]
    Client(#[from] KafkaError),
    #[error("topic {topic}: {problem}")]
    TopicSetup { topic: String, problem: String },
    #[error(
        "the canonical log {topic} no longer holds the offset this data directory folded up to \
         ({detail}): the topic was recreated or truncated. Folding on would skip records; \
         run `idfold rebuild --kafka` to refold what the log holds"
    )]
    PositionOutOfRange { topic: String, detail: String },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

impl KafkaStageError {
    pub fn is_retryable(&self) -> bool {
        match self {
            KafkaStageError::Unreachable { .. } => true,
            KafkaStageError::Client(e) => !is_permanent(e),
            KafkaStageError::TopicSetup { .. } | KafkaStageError::PositionOutOfRange { .. } => {
                false
            }
            KafkaStageError::Log(e) => e.is_retryable(),
            KafkaStageError::Projector(e) => e.is_retryable(),
            KafkaStageError::Producer(e) => e.is_retryable(),
        }
    }
}

/// A failure no retry can mend: the record or the set-up must change.
pub(crate) fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::InvalidConfig
        )
    )
}

/// A write failure in the log's terms: refused for good, or try again.
pub(crate) fn write_failure(error: &KafkaError, topic: &str) -> LogError {
    if is_permanent(error) {
        LogError::Refused {
            detail: format!("{topic}: {error} (does the topic exist? `idfold topics` creates it)"),
        }
    } else {
        LogError::Unavailable {
            detail: format!("{topic}: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_outage_is_retryable_and_an_oversized_record_is_not() {
        let down = KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown);
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(write_failure(&down, "t").is_retryable());
        assert!(write_failure(&timed_out, "t").is_retryable());
        assert!(!write_failure(&too_large, "t").is_retryable());
        assert!(KafkaStageError::Client(down).is_retryable());
        assert!(!KafkaStageError::Client(too_large).is_retryable());
    }
}
