//! idfold's HTTP front door. `POST /v1/events` takes canonical events;
//! `/v1/{identify,track,page,screen,group,alias,batch,import}` speak
//! Segment's tracking API. A write key names the workspace; every item is
//! validated by the core rules, and the answer is 2xx only once the log has
//! the accepted events and the dead-letter store the rejected ones
//! (group-committed by one writer thread). When the log cannot keep up, or
//! is down, the answer is 503 with Retry-After, and memory stays bounded.
//! `server` runs the connections (timeouts, a cap) so that no client, however
//! slow, holds what others need; `scrub` keeps write keys out of dead
//! letters; `http_errors` makes every error answer JSON with a code.

mod body;
mod durable;
mod error;
mod http_errors;
mod http_metrics;
mod items;
mod routes;
mod scrub;
mod server;

pub use body::{
    timed_bodies, BodyStalled, BodyTimeouts, TimedBody, MAX_BATCH_BYTES, MAX_EVENT_BYTES,
};
pub use durable::{DurableWriter, SharedDeadLetterSink, SharedEventSink};
pub use error::{error_json, IntakeError};
pub use http_errors::{json_errors, MAX_HEADER_BYTES, MAX_URI_BYTES};
pub use http_metrics::record_http_metrics;
pub use routes::{router, IntakeState, Limits, Readiness};
pub use server::{serve_connections, ConnectionLimits};
