//! The end of each partition of some topics at one moment: what "caught
//! up" means for `--until-idle`.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::error::KafkaStageError;

/// How long a metadata or offsets request may take before the broker is
/// reported unreachable.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// (topic, partition) -> (the first offset still kept, the offset the
    /// next record will get).
    pub bounds: BTreeMap<(String, i32), (i64, i64)>,
}

impl Watermarks {
    /// What `mode` runs until: the ends of `topics` now for `UntilIdle`,
    /// nothing (stop only on request) for `Follow`.
    pub fn target<C: ConsumerContext>(
        mode: crate::RunMode,
        consumer: &BaseConsumer<C>,
        bootstrap: &str,
        topics: &[String],
    ) -> Result<Option<Watermarks>, KafkaStageError> {
        match mode {
            crate::RunMode::UntilIdle => Watermarks::fetch(consumer, bootstrap, topics).map(Some),
            crate::RunMode::Follow => Ok(None),
        }
    }

    /// Reads the high watermark of every partition of `topics`.
    pub fn fetch<C: ConsumerContext>(
        consumer: &BaseConsumer<C>,
        bootstrap: &str,
        topics: &[String],
    ) -> Result<Watermarks, KafkaStageError> {
        let mut bounds = BTreeMap::new();
        for topic in topics {
            for partition in partitions_of(consumer, bootstrap, topic)? {
                let range = consumer
                    .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                    .map_err(|e| unreachable(bootstrap, &e))?;
                bounds.insert((topic.clone(), partition), range);
            }
        }
        Ok(Watermarks { bounds })
    }

    /// Whether a reader at `next` (None: has not read) is at the end this
    /// snapshot saw: past its last record, or the partition had none kept.
    pub fn reached(&self, topic: &str, partition: i32, next: Option<i64>) -> bool {
        match self.bounds.get(&(topic.to_owned(), partition)) {
            Some(&(low, high)) => low >= high || next.is_some_and(|n| n >= high),
            None => true,
        }
    }

    /// Records in all partitions together (an upper bound on the work).
    pub fn total(&self) -> i64 {
        self.bounds.values().map(|(low, high)| high - low).sum()
    }
}

/// The partitions of a topic that must exist.
/// How long, and how far apart, a failed metadata request is repeated (an
/// unreachable broker fails after the first request's timeout).
const METADATA_PATIENCE: Duration = Duration::from_secs(5);
const METADATA_RETRY: Duration = Duration::from_millis(250);

pub(crate) fn partitions_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    bootstrap: &str,
    topic: &str,
) -> Result<Vec<i32>, KafkaStageError> {
    // Right after a topic is created the broker may answer "not leader",
    // or not know the topic yet: ask again for a few seconds before giving
    // up (a supervisor waits longer, within the topic grace).
    let give_up = std::time::Instant::now() + METADATA_PATIENCE;
    loop {
        let found = match consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT) {
            Ok(metadata) => metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| match t.error() {
                    None if !t.partitions().is_empty() => {
                        Ok(t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
                    }
                    None => Err(None),
                    Some(code) => Err(Some(RDKafkaErrorCode::from(code))),
                }),
            Err(error) if std::time::Instant::now() < give_up => {
                tracing::debug!(%error, "asking the broker for metadata again");
                std::thread::sleep(METADATA_RETRY);
                continue;
            }
            Err(error) => return Err(unreachable(bootstrap, &error)),
        };
        match found {
            Some(Ok(partitions)) => return Ok(partitions),
            // Refused for good: say so rather than "does not exist".
            Some(Err(Some(code)))
                if matches!(
                    code,
                    RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::InvalidTopic
                ) =>
            {
                return Err(KafkaError::MetadataFetch(code).into())
            }
            _ if std::time::Instant::now() < give_up => std::thread::sleep(METADATA_RETRY),
            _ => {
                return Err(KafkaStageError::TopicMissing {
                    topic: topic.to_owned(),
                })
            }
        }
    }
}

pub(crate) fn unreachable(bootstrap: &str, error: &rdkafka::error::KafkaError) -> KafkaStageError {
    KafkaStageError::Unreachable {
        bootstrap: bootstrap.to_owned(),
        detail: error.to_string(),
    }
}
