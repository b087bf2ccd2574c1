//! The durable log behind two small seams: `EventSink` and `DeadLetterSink`
//! (where validated events and rejections are written, durably, before an
//! input is acknowledged) and `EventLog` (read from an offset, commit). The
//! embedded implementations live on sled; Kafka's live in `idfold-kafka`.

mod data_dir;
mod dead_letter;
mod embedded;
mod error;

pub use data_dir::DataDir;
pub use dead_letter::{DeadLetter, DeadLetterStore};
pub use embedded::EmbeddedLog;
pub use error::LogError;

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub partition: u32,
    pub offset: u64,
    /// Avro single-object encoded event.
    pub payload: Vec<u8>,
}

/// One validated event on its way into the log. The key (the workspace)
/// decides the partition, so a workspace's events stay in order in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub key: String,
    /// Avro single-object encoded event.
    pub payload: Vec<u8>,
}

/// Where validated events go. Durable when `append` returns `Ok`: an input
/// is acknowledged only after that.
pub trait EventSink {
    fn append(&self, entries: &[LogEntry]) -> Result<(), LogError>;
}

/// Where rejected inputs go, with their reasons. Durable when `append`
/// returns `Ok`, like `EventSink`.
pub trait DeadLetterSink {
    fn append(&self, letters: &[DeadLetter]) -> Result<(), LogError>;
}

/// The read side of a log. The consumer's own position is kept by the
/// consumer with its state, and `commit` only reports it back (for lag
/// monitoring).
pub trait EventLog {
    /// Reads up to `max` records of `partition` from `offset` on, in order.
    fn read_from(
        &self,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<LogRecord>, LogError>;
    /// The offset the next appended record of `partition` will get.
    fn end_offset(&self, partition: u32) -> Result<u64, LogError>;
    /// The partitions this reader owns.
    fn partitions(&self) -> Vec<u32>;
    /// The `topic` label of its lag and position metrics.
    fn name(&self) -> &str {
        "log"
    }
    /// Reports that everything before `next_offset` has been folded.
    fn commit(&self, partition: u32, next_offset: u64) -> Result<(), LogError>;
    /// Whether `forget` deletes records (Kafka's log cannot delete single
    /// records: its retention does).
    fn can_forget(&self) -> bool {
        false
    }
    /// Deletes the records at `offsets` (an erasure's), keeping every other
    /// offset where it is.
    fn forget(&self, _partition: u32, _offsets: &[u64]) -> Result<(), LogError> {
        Ok(())
    }
}
