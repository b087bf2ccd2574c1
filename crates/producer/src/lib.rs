//! The edge: validates raw inputs (JSON or Avro single-object), appends the
//! accepted ones to the log in Avro, and sends every rejection, with its
//! original bytes, to the dead-letter store. Each input is counted exactly
//! once, as accepted or rejected.

mod error;
mod ndjson;
mod publisher;

pub use error::ProducerError;
pub use ndjson::{NdjsonReader, MAX_LINE_BYTES};
pub use publisher::{validate, PublishReport, Publisher, RawInput, Validated};
