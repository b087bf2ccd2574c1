//! `P.instances`, a compacted topic keyed by instance id: each instance
//! announces where its HTTP API answers and which partitions of the
//! canonical log it holds (ready, or still being replayed), when that
//! changes and every few seconds; every instance reads them all, so a read
//! of any workspace can go to the instance that holds it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use idfold_cluster::{InstanceInfo, Ownership, PartitionState, Registry};
use idfold_log::LogError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::KafkaStageError;
use crate::settings::KafkaSettings;
use crate::waiting::{sleep_unless_stopped, QuietContext, INSTANCES};
use crate::watermarks::partitions_of;
use crate::writer::KafkaWriter;

/// An unchanged announcement is repeated this often.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// This instance's side: what it holds, said on `P.instances`.
pub struct Announcer {
    writer: KafkaWriter,
    topic: String,
    instance: String,
    url: String,
    last: Option<(Instant, Vec<u32>, Vec<u32>)>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("instance", &self.instance)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Announcer {
    pub fn new(
        settings: &KafkaSettings,
        instance: &str,
        url: &str,
    ) -> Result<Announcer, KafkaStageError> {
        Ok(Announcer {
            writer: KafkaWriter::new(settings)?,
            topic: settings.topics.instances.clone(),
            instance: instance.to_owned(),
            url: url.to_owned(),
            last: None,
        })
    }

    /// Says what this instance holds, if it changed or was said a while ago.
    pub fn announce(&mut self, ownership: &Ownership) -> Result<(), LogError> {
        let held = ownership.held();
        let ready: Vec<u32> = held
            .iter()
            .filter(|(_, s)| **s == PartitionState::Ready)
            .map(|(p, _)| *p)
            .collect();
        let catching_up: Vec<u32> = held
            .iter()
            .filter(|(_, s)| **s != PartitionState::Ready)
            .map(|(p, _)| *p)
            .collect();
        let due = self.last.as_ref().is_none_or(|(at, r, c)| {
            at.elapsed() >= ANNOUNCE_EVERY || *r != ready || *c != catching_up
        });
        if !due {
            return Ok(());
        }
        let info = InstanceInfo {
            instance: self.instance.clone(),
            url: self.url.clone(),
            ready: ready.clone(),
            catching_up: catching_up.clone(),
            at_ms: now_ms(),
        };
        let payload = serde_json::to_vec(&info).unwrap_or_default();
        self.writer.write(
            &self.topic,
            std::iter::once(
                BaseRecord::to(self.topic.as_str())
                    .key(self.instance.as_str())
                    .payload(payload.as_slice()),
            ),
        )?;
        self.last = Some((Instant::now(), ready, catching_up));
        Ok(())
    }

    /// Says this instance holds nothing any more (it is stopping): reads
    /// of its partitions wait for the next holder rather than come here.
    pub fn leave(&self) -> Result<(), LogError> {
        self.writer.write(
            &self.topic,
            std::iter::once(
                BaseRecord::<str, [u8]>::to(self.topic.as_str()).key(self.instance.as_str()),
            ),
        )
    }
}

/// Reads every announcement into `registry` until `stop` is raised, and
/// tells `ownership` the canonical log's partition count (an instance
/// without the fold stage needs it to route reads too). A broker that
/// cannot be reached is tried again every few seconds.
pub fn follow_instances(
    settings: &KafkaSettings,
    registry: &Arc<Registry>,
    ownership: &Ownership,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        if let Err(error) = read_instances(settings, registry, ownership, stop) {
            INSTANCES.transient("cannot read the instances topic yet; trying again (reads of workspaces held elsewhere get 503 meanwhile)", &error);
            sleep_unless_stopped(Duration::from_secs(2), stop);
        }
    }
}

fn read_instances(
    settings: &KafkaSettings,
    registry: &Arc<Registry>,
    ownership: &Ownership,
    stop: &AtomicBool,
) -> Result<(), KafkaStageError> {
    // No group: it reads every partition from the start, and commits nothing.
    let consumer: BaseConsumer<QuietContext> = settings
        .client()
        .set(
            "group.id",
            format!("{}-instances-reader", settings.fold_group),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create_with_context(QuietContext(&INSTANCES))?;
    if ownership.partition_count() == 0 {
        let events = partitions_of(&consumer, &settings.bootstrap, &settings.topics.events)?;
        ownership.set_partition_count(u32::try_from(events.len()).unwrap_or(u32::MAX));
    }
    let topic = settings.topics.instances.as_str();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions_of(&consumer, &settings.bootstrap, topic)? {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let Some(Ok(instance)) = message.key().map(std::str::from_utf8) else {
                    continue;
                };
                let info = message
                    .payload()
                    .and_then(|p| serde_json::from_slice::<InstanceInfo>(p).ok());
                registry.update(instance, info);
            }
            Some(Err(error)) => tracing::debug!(%error, "reading the instances topic"),
            None => {}
        }
    }
    Ok(())
}
