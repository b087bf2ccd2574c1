//! idfold on Apache Kafka. Adapters only: the rules stay in `idfold-producer`
//! (validation) and `idfold-projector` (stitching, fold, MAU).
//! - `admin`: creates and checks the topics idfold needs.
//! - `writer`: the canonical event log and the dead-letter topic as sinks,
//!   durable when the broker acknowledged (idempotent producer, acks=all).
//! - `raw_stage`: raw topics in, validated events out; raw offsets are
//!   committed only after the writes are acknowledged.
//! - `fold_stage`: the canonical log folded in a consumer group, each
//!   partition's position kept in sled with the state it produced.
//! - `stats`: librdkafka's statistics as lag and position gauges.
//! - `changes`: the fold's MAU rows and profile changes as compacted topics.
//! - `instances`: which instance holds which partition, announced and read.
//! - `waiting`: faults waited out (backoff, client rebuilds, readiness).
//! - `dead_letters`: the dead-letter topic read back, byte for byte.

mod admin;
mod changes;
mod dead_letters;
mod error;
mod fold_stage;
mod instances;
mod raw_stage;
mod settings;
mod stats;
mod waiting;
mod watermarks;
mod writer;

pub use admin::{ensure_topics, TopicCheck};
pub use dead_letters::{read_dead_letters, DeadLetterRecord};
pub use error::KafkaStageError;
pub use fold_stage::{FoldStage, FoldStageReport};
pub use instances::{follow_instances, Announcer};
pub use raw_stage::{RawStage, RawStageReport};
pub use settings::{Acks, Compression, KafkaSettings, Topics};
pub use waiting::{supervise, Patience, StageHealth};
pub use watermarks::Watermarks;
pub use writer::{KafkaWriter, DEAD_LETTER_HEADERS};

/// How a stage's loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Until everything in the topics when it started is done.
    UntilIdle,
    /// Until the stop flag is raised.
    Follow,
}
