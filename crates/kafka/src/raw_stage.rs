//! The producer stage on Kafka: raw records in (JSON or Avro, any key),
//! validated events to the canonical log keyed by workspace, rejections to
//! the dead-letter topic. Raw offsets are committed only after both writes
//! were acknowledged, so nothing is lost; a crash before the commit sends a
//! batch again, and the fold drops what it already has by message_id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use idfold_producer::{validate, Publisher, RawInput, Validated, MAX_LINE_BYTES};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

use crate::stats::StatisticsContext;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{is_permanent, KafkaStageError};
use crate::settings::KafkaSettings;
use crate::waiting::{FaultWatch, StageHealth, RAW};
use crate::watermarks::{partitions_of, Watermarks, REQUEST_TIMEOUT};
use crate::writer::KafkaWriter;
use crate::RunMode;
use std::sync::Arc;

/// How long a batch waits to fill before it is written anyway.
const BATCH_LINGER: Duration = Duration::from_millis(100);
/// The longest pause between attempts to write a batch the broker refused
/// for now.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RawStageReport {
    pub consumed: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Batches written again after the broker did not acknowledge them.
    pub write_retries: u64,
}

pub struct RawStage {
    consumer: BaseConsumer<StatisticsContext>,
    writer: KafkaWriter,
    settings: KafkaSettings,
    batch_size: usize,
    /// Faults of its polls, waited out (readiness reads its health).
    faults: FaultWatch,
}

impl std::fmt::Debug for RawStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStage")
            .field("topics", &self.settings.topics.raw)
            .finish_non_exhaustive()
    }
}

/// One raw record, with where it came from.
struct Polled {
    topic: String,
    partition: i32,
    offset: i64,
    input: RawInput,
}

impl RawStage {
    /// Joins the producer group on the raw topics (which must exist).
    pub fn new(settings: &KafkaSettings, batch_size: usize) -> Result<RawStage, KafkaStageError> {
        let consumer: BaseConsumer<StatisticsContext> = settings
            .consumer(&settings.producer_group)
            .create_with_context(StatisticsContext)?;
        for topic in &settings.topics.raw {
            partitions_of(&consumer, &settings.bootstrap, topic)?;
        }
        let topics: Vec<&str> = settings.topics.raw.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(RawStage {
            consumer,
            writer: KafkaWriter::new(settings)?,
            settings: settings.clone(),
            batch_size: batch_size.max(1),
            faults: FaultWatch::new("raw", &RAW),
        })
    }

    /// Reports whether this stage waits out a fault to `health`.
    pub fn report_health_to(&mut self, health: Arc<StageHealth>) {
        self.faults.health = health;
    }

    /// Moves raw records to the canonical log until `stop` is raised, or
    /// (`UntilIdle`) until the group has committed everything the raw
    /// topics held when it started.
    pub fn run(
        &mut self,
        mode: RunMode,
        stop: &AtomicBool,
        mut progress: impl FnMut(&RawStageReport),
    ) -> Result<RawStageReport, KafkaStageError> {
        let target = Watermarks::target(
            mode,
            &self.consumer,
            &self.settings.bootstrap,
            &self.settings.topics.raw,
        )?;
        let mut report = RawStageReport::default();
        // Offsets written but not yet committed (a commit failed): tried
        // again until they are, and the stage is not caught up before.
        let mut uncommitted: BTreeMap<(String, i32), i64> = BTreeMap::new();
        while !stop.load(Ordering::SeqCst) {
            let batch = self.poll_batch()?;
            self.faults.polled(!batch.is_empty());
            if batch.is_empty() {
                // librdkafka gave the consumer up (a fenced static member):
                // polling it would move nothing for ever.
                if let Some((code, reason)) = self.consumer.client().fatal_error() {
                    tracing::warn!(%code, reason, "the raw-stage consumer failed for good; building a new one");
                    return Err(KafkaError::MessageConsumptionFatal(code).into());
                }
                if !uncommitted.is_empty() && self.commit(&uncommitted) {
                    uncommitted.clear();
                }
                match &target {
                    Some(target) if uncommitted.is_empty() && self.caught_up(target) => break,
                    _ => continue,
                }
            }
            let validated = validate_batch(&batch)?;
            let publisher = Publisher::new(&self.writer, &self.writer, "kafka");
            let mut backoff = Duration::from_millis(100);
            let written = loop {
                match publisher.write(&validated) {
                    Ok(()) => break Some(&validated.report),
                    Err(error) if error.is_retryable() => {
                        self.faults.fault(
                            "the broker did not take the batch; writing it again",
                            &error,
                        );
                        report.write_retries += 1;
                        if stop.load(Ordering::SeqCst) {
                            // Not committed: the next run reads it again.
                            break None;
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            let Some(written) = written else { break };
            for polled in &batch {
                let next = uncommitted
                    .entry((polled.topic.clone(), polled.partition))
                    .or_default();
                *next = (*next).max(polled.offset + 1);
            }
            if self.commit(&uncommitted) {
                uncommitted.clear();
            }
            report.consumed += batch.len() as u64;
            report.accepted += written.accepted as u64;
            report.rejected += written.rejected.len() as u64;
            progress(&report);
        }
        Ok(report)
    }

    /// Up to `batch_size` records, waiting at most `BATCH_LINGER` for them.
    fn poll_batch(&mut self) -> Result<Vec<Polled>, KafkaStageError> {
        let deadline = Instant::now() + BATCH_LINGER;
        let mut batch = Vec::new();
        while batch.len() < self.batch_size {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    let payload = message.payload().unwrap_or_default();
                    let truncated = payload.len() > MAX_LINE_BYTES;
                    let kept = &payload[..payload.len().min(MAX_LINE_BYTES)];
                    batch.push(Polled {
                        topic: message.topic().to_owned(),
                        partition: message.partition(),
                        offset: message.offset(),
                        input: RawInput {
                            bytes: kept.to_vec(),
                            partition: u32::try_from(message.partition()).ok(),
                            position: u64::try_from(message.offset()).ok(),
                            truncated,
                            received_at: message
                                .timestamp()
                                .to_millis()
                                .map(|ms| ms.saturating_mul(1_000_000)),
                        },
                    });
                }
                Some(Err(error)) => self.consumer_error(error)?,
            }
        }
        Ok(batch)
    }

    fn consumer_error(&mut self, error: KafkaError) -> Result<(), KafkaStageError> {
        // A fatal error or a missing topic goes to the supervisor, which
        // builds the stage again or waits.
        if is_permanent(&error) {
            return Err(error.into());
        }
        // The broker is away or the group is rebalancing: librdkafka
        // reconnects by itself; nothing was read, nothing is lost.
        self.faults
            .fault("raw topics: waiting for the broker", &error);
        Ok(())
    }

    /// Commits the next offsets to read; false when the commit failed (a
    /// rebalance took the partition, the broker is away): the caller tries
    /// again, and meanwhile those records may be read again (their events
    /// are dropped as duplicates by the fold).
    fn commit(&self, next: &BTreeMap<(String, i32), i64>) -> bool {
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if let Err(error) =
                offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            {
                tracing::warn!(%error, topic, partition, "cannot list an offset to commit");
            }
        }
        match self.consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "raw offsets not committed yet; trying again");
                false
            }
        }
    }

    /// Whether the group's committed offsets reached the target. A broker
    /// that does not answer means "not yet": the stage waits for it.
    fn caught_up(&self, target: &Watermarks) -> bool {
        let mut asked = TopicPartitionList::new();
        for (topic, partition) in target.bounds.keys() {
            asked.add_partition(topic, *partition);
        }
        let committed = match self.consumer.committed_offsets(asked, REQUEST_TIMEOUT) {
            Ok(committed) => committed,
            Err(error) => {
                tracing::warn!(%error, "raw topics: cannot read committed offsets; waiting for the broker");
                return false;
            }
        };
        committed.elements().iter().all(|element| {
            let next = match element.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            target.reached(element.topic(), element.partition(), next)
        })
    }
}

/// Validates a batch topic by topic (the topic names the dead letters'
/// source), into one write. Validation is the stage's own work and most of
/// its time, so the batch is split across the cores.
fn validate_batch(batch: &[Polled]) -> Result<Validated, KafkaStageError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = batch.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Validated, KafkaStageError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(chunk)
            .map(|part| scope.spawn(move || validate_part(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut all = Validated::default();
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

/// Consecutive records of one topic are validated together.
fn validate_part(part: &[Polled]) -> Result<Validated, KafkaStageError> {
    let mut all = Validated::default();
    let mut start = 0;
    while start < part.len() {
        let topic = &part[start].topic;
        let run = part[start..]
            .iter()
            .take_while(|p| &p.topic == topic)
            .count();
        let inputs: Vec<&RawInput> = part[start..start + run].iter().map(|p| &p.input).collect();
        all.extend(validate(topic, &inputs)?);
        start += run;
    }
    Ok(all)
}
