//! The canonical event log and the dead-letter topic as `EventSink` and
//! `DeadLetterSink`: a write returns once the broker acknowledged every
//! record of it (acks=all, idempotent producer), or reports it failed.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use idfold_log::{DeadLetter, DeadLetterSink, EventSink, LogEntry, LogError};
use idfold_telemetry::names;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::error::write_failure;
use crate::settings::KafkaSettings;

/// The headers of a dead-letter record, in order: why it was rejected and
/// where it came from. `idfold.source.offset` for records of a topic,
/// `idfold.source.line` for lines of a file.
/// `idfold.workspace` names the workspace whose write key sent it.
pub const DEAD_LETTER_HEADERS: [&str; 8] = [
    "idfold.reason",
    "idfold.field",
    "idfold.message",
    "idfold.source",
    "idfold.source.partition",
    "idfold.source.offset",
    "idfold.truncated",
    "idfold.workspace",
];

/// Counts failed deliveries of the write in progress; the producer calls
/// it from `poll`/`flush`, on the writing thread.
#[derive(Debug, Default)]
pub struct DeliveryTally {
    first_failure: Mutex<Option<KafkaError>>,
}

impl ClientContext for DeliveryTally {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        crate::waiting::client_log(&crate::waiting::WRITER, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::waiting::client_error(&crate::waiting::WRITER, &error, reason);
    }
}

impl ProducerContext for DeliveryTally {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            metrics::counter!(names::KAFKA_DELIVERY_ERRORS).increment(1);
            let mut first = self
                .first_failure
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            first.get_or_insert_with(|| error.clone());
        }
    }
}

impl DeliveryTally {
    fn take(&self) -> Option<KafkaError> {
        self.first_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

pub struct KafkaWriter {
    /// Replaced by a new one when librdkafka gives it up (a fatal error).
    producer: RwLock<Arc<BaseProducer<DeliveryTally>>>,
    config: rdkafka::ClientConfig,
    events_topic: String,
    dead_letter_topic: String,
    pub(crate) mau_topic: String,
    pub(crate) profiles_topic: String,
    /// How long a write waits for its acknowledgements.
    flush_timeout: Duration,
    /// One write at a time: the tally belongs to the write in progress.
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for KafkaWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaWriter")
            .field("events_topic", &self.events_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish_non_exhaustive()
    }
}

impl KafkaWriter {
    pub fn new(settings: &KafkaSettings) -> Result<KafkaWriter, KafkaError> {
        let config = settings.producer();
        Ok(KafkaWriter {
            producer: RwLock::new(Arc::new(
                config.create_with_context(DeliveryTally::default())?,
            )),
            config,
            events_topic: settings.topics.events.clone(),
            dead_letter_topic: settings.topics.dead_letters.clone(),
            mau_topic: settings.topics.mau.clone(),
            profiles_topic: settings.topics.profiles.clone(),
            flush_timeout: settings.delivery_timeout + Duration::from_secs(5),
            write_lock: Mutex::new(()),
        })
    }

    /// Whether the broker answers and has the canonical log (`/readyz`).
    pub fn check_reachable(&self, timeout: Duration) -> Result<(), String> {
        let metadata = self
            .producer()
            .client()
            .fetch_metadata(Some(&self.events_topic), timeout)
            .map_err(|e| format!("Kafka does not answer: {e}"))?;
        match metadata.topics().first() {
            Some(topic) if topic.error().is_none() && !topic.partitions().is_empty() => Ok(()),
            _ => Err(format!(
                "topic {} does not exist; create it with `idfold topics`",
                self.events_topic
            )),
        }
    }

    /// Waits until every record sent is acknowledged or failed. rdkafka's
    /// `flush` polls in 100 ms steps, which made every write take at least
    /// 100 ms; short steps answer as soon as the broker has.
    fn wait_for_acks(&self, producer: &BaseProducer<DeliveryTally>) -> Result<(), KafkaError> {
        const STEP: Duration = Duration::from_millis(1);
        let deadline = std::time::Instant::now() + self.flush_timeout;
        loop {
            match producer.flush(STEP) {
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut))
                    if std::time::Instant::now() < deadline => {}
                done => return done,
            }
        }
    }

    /// Sends every record, then waits until each is acknowledged or failed.
    pub(crate) fn write<'r>(
        &self,
        topic: &str,
        records: impl Iterator<Item = BaseRecord<'r, str, [u8]>>,
    ) -> Result<(), LogError> {
        let _one_at_a_time = self
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let producer = self.producer();
        let outcome = self.send_and_wait(&producer, records);
        if let Some((code, reason)) = producer.client().fatal_error() {
            // The next write goes through a new producer. A write that was
            // acknowledged stands; one that was not is written again by the
            // caller, never acknowledged in between.
            self.replace_producer(&format!("{code}: {reason}"));
            if outcome.is_err() {
                return Err(LogError::Unavailable {
                    detail: format!(
                        "{topic}: the Kafka producer failed for good ({code}); a new one takes over"
                    ),
                });
            }
        }
        outcome.map_err(|error| write_failure(&error, topic))
    }

    fn producer(&self) -> Arc<BaseProducer<DeliveryTally>> {
        self.producer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace_producer(&self, why: &str) {
        metrics::counter!(names::KAFKA_CLIENT_REBUILDS, "stage" => "writer").increment(1);
        match self.config.create_with_context(DeliveryTally::default()) {
            Ok(fresh) => {
                tracing::warn!(
                    reason = why,
                    "the Kafka producer failed for good; a new one takes over"
                );
                *self
                    .producer
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(fresh);
            }
            Err(error) => {
                crate::waiting::WRITER.transient("cannot build a new Kafka producer yet", &error)
            }
        }
    }

    fn send_and_wait<'r>(
        &self,
        producer: &BaseProducer<DeliveryTally>,
        records: impl Iterator<Item = BaseRecord<'r, str, [u8]>>,
    ) -> Result<(), KafkaError> {
        producer.context().take();
        for record in records {
            let mut record = record;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: serve deliveries, retry.
                        producer.poll(Duration::from_millis(50));
                        record = back;
                    }
                    Err((error, _)) => {
                        // Whatever was queued is still delivered; the caller
                        // retries the whole write, and duplicates are dropped
                        // by the fold.
                        let _ = self.wait_for_acks(producer);
                        return Err(error);
                    }
                }
            }
        }
        // Once per write: what waits for acknowledgement now, then what
        // is left once they came.
        metrics::gauge!(names::KAFKA_PRODUCER_QUEUE).set(f64::from(producer.in_flight_count()));
        let acked = self.wait_for_acks(producer);
        metrics::gauge!(names::KAFKA_PRODUCER_QUEUE).set(f64::from(producer.in_flight_count()));
        acked?;
        match producer.context().take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl EventSink for KafkaWriter {
    fn append(&self, entries: &[LogEntry]) -> Result<(), LogError> {
        let topic = self.events_topic.as_str();
        self.write(
            topic,
            entries.iter().map(|entry| {
                BaseRecord::to(topic)
                    .key(entry.key.as_str())
                    .payload(entry.payload.as_slice())
            }),
        )
    }
}

impl DeadLetterSink for KafkaWriter {
    fn append(&self, letters: &[DeadLetter]) -> Result<(), LogError> {
        if letters.is_empty() {
            return Ok(());
        }
        let topic = self.dead_letter_topic.as_str();
        self.write(
            topic,
            letters.iter().map(|letter| {
                BaseRecord::to(topic)
                    .payload(letter.raw.as_slice())
                    .headers(dead_letter_headers(letter))
            }),
        )
    }
}

fn dead_letter_headers(letter: &DeadLetter) -> OwnedHeaders {
    let [reason, field, message, source, partition, offset, truncated, workspace] =
        DEAD_LETTER_HEADERS;
    let mut headers = OwnedHeaders::new_with_capacity(DEAD_LETTER_HEADERS.len())
        .insert(header(reason, &letter.reason))
        .insert(header(message, &letter.message))
        .insert(header(source, &letter.source));
    if let Some(name) = &letter.field {
        headers = headers.insert(header(field, name));
    }
    if let Some(p) = letter.partition {
        headers = headers.insert(header(partition, &p.to_string()));
    }
    if let Some(position) = letter.position {
        // A partition means a topic and an offset; without one, a file line.
        let name = if letter.partition.is_some() {
            offset
        } else {
            "idfold.source.line"
        };
        headers = headers.insert(header(name, &position.to_string()));
    }
    if letter.truncated {
        headers = headers.insert(header(truncated, "true"));
    }
    if let Some(id) = &letter.workspace {
        headers = headers.insert(header(workspace, id));
    }
    headers
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}
