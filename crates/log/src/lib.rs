//! The durable log behind a small seam (append, read from an offset, commit),
//! its embedded implementation on sled, and the dead-letter store. The fold
//! reads any `EventLog` the same way; Kafka is another implementation.

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

/// The seam every log implements. Appends are durable when they return; the
/// consumer's own position is kept by the consumer with its state, and
/// `commit` only reports it back (for lag monitoring).
pub trait EventLog {
    /// Appends payloads in order; returns the offset of the first one.
    fn append(&self, payloads: &[Vec<u8>]) -> Result<u64, LogError>;
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
    /// Reports that everything before `next_offset` has been folded.
    fn commit(&self, partition: u32, next_offset: u64) -> Result<(), LogError>;
}
