//! The idfold event model: the four event types, their validation at the edge,
//! and the two codecs: canonical JSON (what people type and read) and Avro
//! single-object encoding (what the log stores). No I/O, no clock.

mod avro;
mod erasure;
mod error;
mod identifier;
/// Reading the canonical log fast: the fixed schemas read directly, with an
/// integrity check instead of the edge's full validation.
mod log_reader;
mod model;
mod time;
mod validate;

pub use avro::{decode_avro, encode_avro, is_avro_single_object, schema_fingerprints, AVRO_MAGIC};
pub use erasure::{encode_erasure, ErasureRequest, LogPayload};
pub use error::{ReasonCode, Rejection};
pub use identifier::{
    is_invisible, normalize_identifier, parse_profile_id, CodePoint, InvalidIdentifier,
    InvalidProfileId, MAX_EMAIL_CHARS, MAX_IDENTIFIER_CHARS, PLACEHOLDER_IDENTIFIERS,
};
pub use log_reader::decode_log_payload;
pub use model::{
    Channel, Event, EventBody, EventKind, EventOrder, Identifier, IdentifierKind, SurveyAction,
    MAX_EVENT_BYTES,
};
pub use time::{
    format_nanos, format_wide_nanos, in_event_time_range, month_end_nanos, month_of,
    parse_event_time, parse_month, parse_rfc3339, EventTime, Month, TimeProblem, EVENT_TIME_END,
    EVENT_TIME_MIN, EVENT_TIME_RANGE,
};
pub use validate::check_workspace_id;
pub use validate::{
    decode_event, decode_json, is_plausible_email, json_type_name, optional_object,
    optional_string, parse_json_event, stamp_received_at, validate_value,
};
