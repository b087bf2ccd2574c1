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
    /// The cause is in the message, not a source, so that it prints once
    /// in a log line and in an error chain alike.
    #[error("Kafka client: {0}")]
    Client(KafkaError),
    #[error("topic {topic}: {problem}")]
    TopicSetup { topic: String, problem: String },
    /// Waited for while a new topic reaches every broker, for as long as
    /// the topic grace (`--kafka-topic-grace`).
    #[error("topic {topic} does not exist; create the topics with `idfold topics --kafka ...`")]
    TopicMissing { topic: String },
    #[error(
        "the canonical log {topic} no longer holds the offset this data directory folded up to \
         ({detail}): the topic was recreated or truncated. Folding on would skip records; \
         run `idfold rebuild --kafka` to refold what the log holds"
    )]
    PositionOutOfRange { topic: String, detail: String },
    #[error(
        "the Kafka client was given up {times} times in a row within seconds ({detail}): \
         another member of the group has the same instance id; give each instance its own \
         --instance-id"
    )]
    FencedRepeatedly { times: u32, detail: String },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

impl From<KafkaError> for KafkaStageError {
    fn from(error: KafkaError) -> Self {
        KafkaStageError::Client(error)
    }
}

impl KafkaStageError {
    pub fn is_retryable(&self) -> bool {
        match self {
            // Within the grace a supervisor gives a new topic.
            KafkaStageError::Unreachable { .. } | KafkaStageError::TopicMissing { .. } => true,
            // A fatal client error is mended by a new client.
            KafkaStageError::Client(e) => !is_permanent(e) || is_missing_topic(e) || is_fatal(e),
            KafkaStageError::TopicSetup { .. }
            | KafkaStageError::PositionOutOfRange { .. }
            | KafkaStageError::FencedRepeatedly { .. } => false,
            KafkaStageError::Log(e) => e.is_retryable(),
            KafkaStageError::Projector(e) => e.is_retryable(),
            KafkaStageError::Producer(e) => e.is_retryable(),
        }
    }

    /// A topic that does not exist (yet): waited for only within a grace.
    pub fn is_missing_topic(&self) -> bool {
        match self {
            KafkaStageError::TopicMissing { .. } => true,
            KafkaStageError::Client(e) => is_missing_topic(e),
            _ => false,
        }
    }

    /// librdkafka gave the client up (a fenced static member, a fatal
    /// idempotence error): only a new client goes on.
    pub fn needs_new_client(&self) -> bool {
        matches!(self, KafkaStageError::Client(e) if is_fatal(e))
    }
}

/// The client is dead for good: librdkafka raised a fatal error.
pub(crate) fn is_fatal(error: &KafkaError) -> bool {
    matches!(error, KafkaError::MessageConsumptionFatal(_))
        || matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::FencedInstanceId)
        )
}

fn is_missing_topic(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition)
    )
}

/// A failure no retry with the same client can mend: the record or the
/// set-up must change (a fatal client error is mended by a new client).
pub(crate) fn is_permanent(error: &KafkaError) -> bool {
    // The client could not even be configured or created: no retry helps.
    if is_fatal(error)
        || matches!(
            error,
            KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)
        )
    {
        return true;
    }
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::InvalidConfig
        )
    )
}

/// A write failure in the log's terms: refused for good, or try again.
pub(crate) fn write_failure(error: &KafkaError, topic: &str) -> LogError {
    // The writer builds a new producer after a fatal error: try again.
    if is_permanent(error) && !is_fatal(error) {
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

    #[test]
    fn a_fatal_client_is_mended_by_a_new_one_and_a_missing_topic_is_waited_for() {
        let fenced = KafkaStageError::from(KafkaError::MessageConsumptionFatal(
            RDKafkaErrorCode::FencedInstanceId,
        ));
        assert!(fenced.is_retryable() && fenced.needs_new_client());
        let fatal_write = KafkaError::MessageProduction(RDKafkaErrorCode::Fatal);
        assert!(write_failure(&fatal_write, "t").is_retryable());

        let unknown = KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition);
        let missing = KafkaStageError::from(unknown.clone());
        assert!(missing.is_retryable() && missing.is_missing_topic());
        assert!(!missing.needs_new_client());
        // A write to a topic that is not there is refused: nothing to retry.
        assert!(!write_failure(&unknown, "t").is_retryable());

        let denied = KafkaStageError::from(KafkaError::MetadataFetch(
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ));
        assert!(!denied.is_retryable());
        let unconfigured = KafkaStageError::from(KafkaError::ClientCreation("bad".into()));
        assert!(!unconfigured.is_retryable());
    }
}
