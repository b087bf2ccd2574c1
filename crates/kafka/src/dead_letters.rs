//! The dead-letter topic read back from its start to its end now, each
//! record with its headers and its bytes exactly as they were written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::KafkaStageError;
use crate::settings::KafkaSettings;
use crate::waiting::{QuietContext, ADMIN};
use crate::watermarks::Watermarks;

/// How long the topic gets to deliver what it held when the read began.
const READ_PATIENCE: Duration = Duration::from_secs(30);

/// One record of the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRecord {
    pub partition: i32,
    pub offset: i64,
    /// `idfold.reason`, `idfold.message`, ... (idfold writes them as text).
    pub headers: BTreeMap<String, String>,
    /// The rejected input, byte for byte.
    pub raw: Vec<u8>,
}

/// Every record the dead-letter topic holds now, in partition and offset order.
pub fn read_dead_letters(
    settings: &KafkaSettings,
) -> Result<Vec<DeadLetterRecord>, KafkaStageError> {
    let topic = settings.topics.dead_letters.clone();
    let consumer: BaseConsumer<QuietContext> = settings
        .client()
        .set("group.id", "idfold-dlq-reader")
        .set("enable.auto.commit", "false")
        .create_with_context(QuietContext(&ADMIN))?;
    let end = Watermarks::fetch(&consumer, &settings.bootstrap, std::slice::from_ref(&topic))?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for ((t, partition), (low, high)) in &end.bounds {
        assignment.add_partition_offset(t, *partition, Offset::Beginning)?;
        remaining += usize::try_from(high - low).unwrap_or(0);
    }
    consumer.assign(&assignment)?;
    let mut letters = Vec::with_capacity(remaining);
    let deadline = Instant::now() + READ_PATIENCE;
    while letters.len() < remaining {
        if Instant::now() > deadline {
            return Err(KafkaStageError::TopicSetup {
                topic,
                problem: format!(
                    "did not deliver its {remaining} records within {} s",
                    READ_PATIENCE.as_secs()
                ),
            });
        }
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(error)) if crate::error::is_permanent(&error) => return Err(error.into()),
            Some(Err(_)) => continue,
            Some(Ok(message)) => message,
        };
        let Some(&(_, high)) = end.bounds.get(&(topic.clone(), message.partition())) else {
            continue;
        };
        if message.offset() >= high {
            continue;
        }
        let mut headers = BTreeMap::new();
        if let Some(list) = message.headers() {
            for header in list.iter() {
                let value = header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                headers.insert(header.key.to_owned(), value);
            }
        }
        letters.push(DeadLetterRecord {
            partition: message.partition(),
            offset: message.offset(),
            headers,
            raw: message.payload().unwrap_or_default().to_vec(),
        });
    }
    letters.sort_by_key(|l| (l.partition, l.offset));
    Ok(letters)
}
