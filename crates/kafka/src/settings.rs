//! Where the broker is, which topics, and how to write to them.

use std::time::Duration;

use rdkafka::ClientConfig;

/// Producer acknowledgements. Only `All` makes a 2xx (or a committed raw
/// offset) mean the event survives a broker failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    #[default]
    All,
    /// The partition leader alone: faster, and an acknowledged event can be
    /// lost when the leader fails before its followers copied it.
    Leader,
}

/// Compression of the records idfold produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    #[default]
    Lz4,
}

impl Compression {
    fn as_kafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

/// The topics idfold reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Raw inputs from upstream apps (JSON or Avro values, any keys).
    pub raw: Vec<String>,
    /// The canonical event log (Avro, keyed by workspace_id): the source of truth.
    pub events: String,
    /// Rejected raw records, with their reasons in headers.
    pub dead_letters: String,
    /// MAU rows as they change, keyed `<workspace>/<YYYY-MM>` (compacted).
    pub mau: String,
    /// Identified profiles as they change, keyed `<workspace>/<profile id>`;
    /// a tombstone where one no longer exists (compacted).
    pub profiles: String,
    /// Each instance's announcement: where it answers and which partitions
    /// it holds, keyed by instance id (compacted).
    pub instances: String,
}

impl Topics {
    /// `<prefix>.raw.{identify,traits,track,survey}`, `<prefix>.events`,
    /// `<prefix>.dead-letters`, `<prefix>.mau`, `<prefix>.profiles`.
    pub fn with_prefix(prefix: &str) -> Topics {
        Topics {
            raw: ["identify", "traits", "track", "survey"]
                .iter()
                .map(|kind| format!("{prefix}.raw.{kind}"))
                .collect(),
            events: format!("{prefix}.events"),
            dead_letters: format!("{prefix}.dead-letters"),
            mau: format!("{prefix}.mau"),
            profiles: format!("{prefix}.profiles"),
            instances: format!("{prefix}.instances"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    pub topics: Topics,
    /// Consumer group of the producer stage (raw topics).
    pub producer_group: String,
    /// Consumer group of the fold stage (the canonical log).
    pub fold_group: String,
    pub acks: Acks,
    pub compression: Compression,
    /// Partitions `idfold topics` gives the canonical log (and raw topics).
    pub partitions: i32,
    /// How long a consumer may go silent before the group moves its
    /// partitions to others (a killed instance is noticed after this).
    pub session_timeout: Duration,
    /// Static membership: this instance's stable name in the consumer
    /// groups (`group.instance.id`), so a restart within the session
    /// timeout gets its partitions back without a rebalance.
    pub instance_id: Option<String>,
    /// How long a write may wait for the broker's acknowledgement before it
    /// is reported as failed (and retried by the stage).
    pub delivery_timeout: Duration,
    /// How long a stage waits for a topic that does not exist (yet: a new
    /// topic takes a moment to reach every broker) before it stops.
    pub topic_grace: Duration,
}

impl KafkaSettings {
    pub fn new(bootstrap: impl Into<String>, prefix: &str) -> KafkaSettings {
        KafkaSettings {
            bootstrap: bootstrap.into(),
            topics: Topics::with_prefix(prefix),
            producer_group: format!("{prefix}-producer"),
            fold_group: format!("{prefix}-fold"),
            acks: Acks::All,
            compression: Compression::Lz4,
            partitions: 6,
            session_timeout: Duration::from_secs(10),
            instance_id: None,
            delivery_timeout: Duration::from_secs(120),
            topic_grace: Duration::from_secs(60),
        }
    }

    /// Settings every client shares.
    pub(crate) fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "idfold")
            // librdkafka logs every failed connection attempt at error
            // level; the stages report an unreachable broker themselves.
            .set("log_level", "3");
        config
    }

    pub(crate) fn producer(&self) -> ClientConfig {
        let mut config = self.client();
        let idempotent = self.acks == Acks::All;
        config
            .set(
                "acks",
                match self.acks {
                    Acks::All => "all",
                    Acks::Leader => "1",
                },
            )
            .set(
                "enable.idempotence",
                if idempotent { "true" } else { "false" },
            )
            .set("compression.type", self.compression.as_kafka())
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            );
        config
    }

    pub(crate) fn consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.client();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                self.session_timeout.as_millis().to_string(),
            )
            .set("fetch.wait.max.ms", "100")
            // Lag and positions for /metrics (see stats.rs).
            .set("statistics.interval.ms", "5000");
        if let Some(instance) = &self.instance_id {
            // Unique per group member: the group's name tells the stages apart.
            config.set("group.instance.id", format!("{instance}-{group}"));
        }
        config
    }
}
