//! The fold on Kafka: the canonical log consumed in a consumer group. Each
//! partition's position lives in sled, committed in the same atomic batch
//! as the state it produced; on assignment the consumer starts there, not
//! at Kafka's committed offset (which is written too, for lag monitoring
//! only). On revocation, what was read of the partition is folded and
//! committed before it is let go.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use idfold_cluster::{Ownership, PartitionState};
use idfold_log::LogRecord;
use idfold_projector::{BatchReport, Projector};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::{is_fatal, is_permanent, KafkaStageError};
use crate::settings::KafkaSettings;
use crate::waiting::{FaultWatch, StageHealth, FOLD};
use crate::watermarks::{partitions_of, Watermarks};
use crate::RunMode;

/// How long a rebalance waits for a partition's end offset.
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the loop waits for a record before it folds what it has.
const POLL_WAIT: Duration = Duration::from_millis(100);

pub type FoldStageReport = BatchReport;

/// What the consumer's callbacks and the loop share; the callbacks run
/// inside `poll`, on the loop's thread, so the lock is never contended.
struct FoldState {
    projector: Projector,
    /// Records read and not yet folded, per partition, in offset order.
    pending: BTreeMap<u32, Vec<LogRecord>>,
    pending_records: usize,
    assigned: BTreeSet<u32>,
    total: BatchReport,
    failure: Option<KafkaStageError>,
}

pub struct FoldContext {
    topic: String,
    state: Mutex<FoldState>,
    /// Which partitions this instance holds, and whether each is complete.
    ownership: Arc<Ownership>,
}

impl ClientContext for FoldContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        crate::stats::record_consumer_statistics(&statistics);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        crate::waiting::client_log(&crate::waiting::FOLD, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::waiting::client_error(&crate::waiting::FOLD, &error, reason);
    }
}

impl FoldContext {
    fn lock(&self) -> MutexGuard<'_, FoldState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl FoldState {
    /// Folds the pending records of `only` (all when `None`), commits each
    /// partition's state and position to sled, then reports the positions
    /// to Kafka.
    fn flush(
        &mut self,
        consumer: &BaseConsumer<FoldContext>,
        topic: &str,
        only: Option<&BTreeSet<u32>>,
        mode: CommitMode,
    ) {
        let ownership = consumer.context().ownership.clone();
        let partitions: Vec<u32> = self
            .pending
            .keys()
            .copied()
            .filter(|p| only.is_none_or(|set| set.contains(p)))
            .collect();
        let mut offsets = TopicPartitionList::new();
        for partition in partitions {
            let Some(records) = self.pending.remove(&partition) else {
                continue;
            };
            self.pending_records -= records.len();
            if self.failure.is_some() {
                continue;
            }
            match self.projector.fold_records(partition, records) {
                Ok(report) => {
                    self.total.add(&report);
                    ownership.advanced(partition, report.next_offset);
                    if let (Ok(p), Ok(next)) =
                        (i32::try_from(partition), i64::try_from(report.next_offset))
                    {
                        let _ = offsets.add_partition_offset(topic, p, Offset::Offset(next));
                    }
                }
                Err(error) => self.failure = Some(error.into()),
            }
        }
        if offsets.count() > 0 {
            if let Err(error) = consumer.commit(&offsets, mode) {
                if is_fatal(&error) {
                    // A fenced static member: only a new consumer goes on.
                    self.failure.get_or_insert(error.into());
                } else {
                    // Only lag monitoring reads these: correctness is in sled.
                    tracing::debug!(%error, "Kafka offsets not committed");
                }
            }
        }
    }
}

/// The name a data directory folding this canonical log is bound to.
fn log_name(settings: &KafkaSettings) -> String {
    format!("kafka:{}", settings.topics.events)
}

impl ConsumerContext for FoldContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut state = self.lock();
        let listed: BTreeSet<u32> = partitions
            .elements()
            .iter()
            .filter_map(|e| u32::try_from(e.partition()).ok())
            .collect();
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Start each partition where our own state ends.
                for &partition in &listed {
                    match state.projector.store().position(partition) {
                        Ok(position) => {
                            // Reads of its workspaces wait until it reaches
                            // the end the log has now.
                            let end = i32::try_from(partition)
                                .ok()
                                .and_then(|p| {
                                    consumer
                                        .fetch_watermarks(&self.topic, p, REBALANCE_TIMEOUT)
                                        .ok()
                                })
                                .and_then(|(_, high)| u64::try_from(high).ok())
                                .unwrap_or(u64::MAX);
                            self.ownership.assigned(partition, position, end);
                            let (Ok(p), Ok(offset)) =
                                (i32::try_from(partition), i64::try_from(position))
                            else {
                                continue;
                            };
                            if let Err(error) = partitions.set_partition_offset(
                                &self.topic,
                                p,
                                Offset::Offset(offset),
                            ) {
                                state.failure.get_or_insert(error.into());
                            }
                        }
                        Err(error) => {
                            state.failure.get_or_insert(error.into());
                        }
                    }
                    state.assigned.insert(partition);
                }
                tracing::info!(partitions = ?listed, "partitions of the canonical log assigned");
                if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Fold what was read of them while they are still ours.
                state.flush(consumer, &self.topic, Some(&listed), CommitMode::Sync);
                for partition in &listed {
                    state.assigned.remove(partition);
                    self.ownership.revoked(*partition);
                    // Its lag is the new holder's to report now.
                    metrics::gauge!(
                        idfold_telemetry::names::CONSUMER_LAG,
                        "topic" => self.topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(0.0);
                }
                tracing::info!(partitions = ?listed, "partitions of the canonical log revoked");
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance failed; the group will try again");
                state.pending.clear();
                state.pending_records = 0;
                for partition in std::mem::take(&mut state.assigned) {
                    self.ownership.revoked(partition);
                }
                consumer.unassign()
            }
        };
        if let Err(error) = outcome {
            state.failure.get_or_insert(error.into());
        }
    }
}

pub struct FoldStage {
    consumer: BaseConsumer<FoldContext>,
    settings: KafkaSettings,
    batch_size: usize,
    /// Says on `P.instances` what this instance holds (`serve` on Kafka).
    announcer: Option<crate::instances::Announcer>,
    /// Faults of its polls, waited out (readiness reads its health).
    faults: FaultWatch,
    /// Partitions said to be caught up (a log line and a gauge each).
    caught_up: BTreeSet<u32>,
}

impl std::fmt::Debug for FoldStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoldStage")
            .field("topic", &self.settings.topics.events)
            .field("group", &self.settings.fold_group)
            .finish_non_exhaustive()
    }
}

impl FoldStage {
    /// Joins the fold group on the canonical log (which must exist).
    pub fn new(
        settings: &KafkaSettings,
        mut projector: Projector,
        batch_size: usize,
        ownership: Arc<Ownership>,
    ) -> Result<FoldStage, KafkaStageError> {
        // A stage built again after a fault holds nothing until the group
        // assigns it partitions: what its predecessor held is not claimed.
        for partition in ownership.held().into_keys() {
            ownership.revoked(partition);
            caught_up_gauge(&settings.topics.events, partition, 0.0);
        }
        // Each batch's MAU rows and profile changes go to their compacted
        // topics before the batch commits.
        projector.publish_changes_to(Box::new(crate::writer::KafkaWriter::new(settings)?));
        let context = FoldContext {
            topic: settings.topics.events.clone(),
            state: Mutex::new(FoldState {
                projector,
                pending: BTreeMap::new(),
                pending_records: 0,
                assigned: BTreeSet::new(),
                total: BatchReport::default(),
                failure: None,
            }),
            ownership: ownership.clone(),
        };
        // A position the log no longer holds (the topic was recreated or
        // truncated) must stop the fold: resetting to the earliest offset
        // would skip every record below the stored position without a word.
        let consumer: BaseConsumer<FoldContext> = settings
            .consumer(&settings.fold_group)
            .set("auto.offset.reset", "error")
            .create_with_context(context)?;
        // The broker answers and has the topic before anything is bound
        // or, for a rebuild, cleared.
        let partitions = partitions_of(&consumer, &settings.bootstrap, &settings.topics.events)?;
        ownership.set_partition_count(u32::try_from(partitions.len()).unwrap_or(u32::MAX));
        consumer
            .context()
            .lock()
            .projector
            .store()
            .bind_log(&log_name(settings))?;
        consumer.subscribe(&[settings.topics.events.as_str()])?;
        Ok(FoldStage {
            consumer,
            settings: settings.clone(),
            batch_size: batch_size.max(1),
            announcer: None,
            faults: FaultWatch::new("fold", &FOLD),
            caught_up: BTreeSet::new(),
        })
    }

    /// Reports whether this stage waits out a fault to `health`.
    pub fn report_health_to(&mut self, health: Arc<StageHealth>) {
        self.faults.health = health;
    }

    /// Says, once per partition, when the fold reached the end the log had
    /// when the partition was assigned: a log line and
    /// `idfold_fold_partition_caught_up{topic,partition}` set to 1 (0 while
    /// it catches up, or once the partition is gone).
    fn say_caught_up(&mut self, ownership: &Ownership) {
        let topic = &self.settings.topics.events;
        let held = ownership.held();
        let gauge = |partition: u32, value: f64| caught_up_gauge(topic, partition, value);
        for (&partition, state) in &held {
            let ready = *state == PartitionState::Ready;
            if ready && self.caught_up.insert(partition) {
                gauge(partition, 1.0);
                tracing::info!(topic = %topic, partition, "caught up: the fold reached the end this partition had when it was assigned");
            } else if !ready {
                self.caught_up.remove(&partition);
                gauge(partition, 0.0);
            }
        }
        self.caught_up.retain(|partition| {
            let kept = held.contains_key(partition);
            if !kept {
                gauge(*partition, 0.0);
            }
            kept
        });
    }

    /// Announces on `P.instances`, as `instance` answering at `url`, which
    /// partitions this fold holds and whether each is complete.
    pub fn announce_as(&mut self, instance: &str, url: &str) -> Result<(), KafkaStageError> {
        self.announcer = Some(crate::instances::Announcer::new(
            &self.settings,
            instance,
            url,
        )?);
        Ok(())
    }

    /// Drops every projection and position (`rebuild --kafka`), once `new`
    /// has seen the broker and the topic: an unreachable broker leaves the
    /// state as it was.
    pub fn clear_state(&self) -> Result<(), KafkaStageError> {
        let state = self.consumer.context().lock();
        let store = state.projector.store();
        store.clear()?;
        store.bind_log(&log_name(&self.settings))?;
        Ok(())
    }

    /// Every stored position must lie within what the log holds: beyond
    /// its end (the topic was recreated) or before its start (records were
    /// deleted), folding on would skip records without a word.
    fn check_positions_in_log(&self, topic: &str) -> Result<(), KafkaStageError> {
        let bounds = Watermarks::fetch(
            &self.consumer,
            &self.settings.bootstrap,
            &[topic.to_owned()],
        )?;
        let state = self.consumer.context().lock();
        for ((_, partition), &(low, high)) in &bounds.bounds {
            let Ok(p) = u32::try_from(*partition) else {
                continue;
            };
            let position = state.projector.store().position(p)?;
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            // Position 0 on a log whose start was deleted is a directory
            // that never folded: also a refold from a partial log.
            if position > high || position < low {
                return Err(KafkaStageError::PositionOutOfRange {
                    topic: topic.to_owned(),
                    detail: format!(
                        "partition {partition} holds offsets {low}..{high}, the fold is at {position}"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Folds until `stop` is raised, or (`UntilIdle`) until every assigned
    /// partition reached the end it had when this started.
    pub fn run(
        &mut self,
        mode: RunMode,
        stop: &AtomicBool,
        mut progress: impl FnMut(&FoldStageReport),
    ) -> Result<FoldStageReport, KafkaStageError> {
        let topic_name = self.settings.topics.events.clone();
        let topic = topic_name.as_str();
        let target = Watermarks::target(
            mode,
            &self.consumer,
            &self.settings.bootstrap,
            &[topic.to_owned()],
        )?;
        let context = self.consumer.context().clone();
        self.check_positions_in_log(topic)?;
        let mut last_flush = Instant::now();
        loop {
            let polled = self.consumer.poll(POLL_WAIT);
            let mut state = context.lock();
            if let Some(failure) = state.failure.take() {
                return Err(failure);
            }
            let idle = match polled {
                None => true,
                Some(Ok(message)) => {
                    let (Ok(partition), Ok(offset)) = (
                        u32::try_from(message.partition()),
                        u64::try_from(message.offset()),
                    ) else {
                        continue;
                    };
                    // Only partitions we hold: a record fetched before a
                    // revocation is read again by the new owner.
                    if state.assigned.contains(&partition) {
                        state.pending.entry(partition).or_default().push(LogRecord {
                            partition,
                            offset,
                            payload: message.payload().unwrap_or_default().to_vec(),
                        });
                        state.pending_records += 1;
                    }
                    false
                }
                Some(Err(error)) => {
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
                        return Err(KafkaStageError::PositionOutOfRange {
                            topic: topic.to_owned(),
                            detail: error.to_string(),
                        });
                    }
                    // A fatal error or a missing topic goes to the
                    // supervisor, which builds the stage again or waits.
                    if is_permanent(&error) {
                        return Err(error.into());
                    }
                    self.faults
                        .fault("canonical log: waiting for the broker", &error);
                    true
                }
            };
            self.faults.polled(!idle);
            let stopping = stop.load(Ordering::SeqCst);
            if idle
                || stopping
                || state.pending_records >= self.batch_size
                || last_flush.elapsed() >= Duration::from_secs(1)
            {
                let before = state.total;
                state.flush(&self.consumer, topic, None, CommitMode::Async);
                last_flush = Instant::now();
                if let Some(failure) = state.failure.take() {
                    return Err(failure);
                }
                if state.total != before {
                    progress(&state.total);
                }
                drop(state);
                self.say_caught_up(&context.ownership);
            } else {
                drop(state);
            }
            if let Some(announcer) = &mut self.announcer {
                if let Err(error) = announcer.announce(&context.ownership) {
                    crate::waiting::INSTANCES
                        .transient("could not announce this instance's partitions", &error);
                }
            }
            if stopping {
                break;
            }
            let state = context.lock();
            if idle {
                // librdkafka gave the consumer up (a fenced static member):
                // polling it would fold nothing for ever.
                if let Some((code, reason)) = self.consumer.client().fatal_error() {
                    tracing::warn!(%code, reason, "the fold consumer failed for good; building a new one");
                    return Err(KafkaError::MessageConsumptionFatal(code).into());
                }
                // A partition whose end could not be read at its assignment
                // is asked again, so that it does not wait for a rebalance.
                for (partition, held) in context.ownership.held() {
                    let unknown = matches!(
                        held,
                        PartitionState::CatchingUp {
                            target: u64::MAX,
                            ..
                        }
                    );
                    let end = i32::try_from(partition)
                        .ok()
                        .filter(|_| unknown)
                        .and_then(|p| {
                            self.consumer
                                .fetch_watermarks(topic, p, REBALANCE_TIMEOUT)
                                .ok()
                        });
                    if let Some((_, high)) = end {
                        let position = state.projector.store().position(partition)?;
                        context.ownership.assigned(
                            partition,
                            position,
                            u64::try_from(high).unwrap_or(u64::MAX),
                        );
                    }
                }
                if let Some(target) = &target {
                    if caught_up(&state, topic, target)? {
                        break;
                    }
                }
            }
        }
        if let Some(announcer) = &self.announcer {
            if let Err(error) = announcer.leave() {
                tracing::warn!(%error, "could not say this instance is leaving");
            }
        }
        let state = context.lock();
        state.projector.store().flush()?;
        Ok(state.total)
    }
}

/// `idfold_fold_partition_caught_up{topic,partition}`.
fn caught_up_gauge(topic: &str, partition: u32, value: f64) {
    metrics::gauge!(
        idfold_telemetry::names::FOLD_PARTITION_CAUGHT_UP,
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(value);
}

/// Every assigned partition is at the end the snapshot saw (an empty log
/// needs no assignment to be caught up).
fn caught_up(state: &FoldState, topic: &str, target: &Watermarks) -> Result<bool, KafkaStageError> {
    if target.total() == 0 {
        return Ok(true);
    }
    if state.assigned.is_empty() || state.pending_records > 0 {
        return Ok(false);
    }
    for &partition in &state.assigned {
        let position = state.projector.store().position(partition)?;
        let (Ok(p), Ok(next)) = (i32::try_from(partition), i64::try_from(position)) else {
            return Ok(false);
        };
        if !target.reached(topic, p, Some(next)) {
            return Ok(false);
        }
    }
    Ok(true)
}
