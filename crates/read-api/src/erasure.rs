//! Forgetting a person over HTTP. `DELETE .../profiles/{id}` writes an
//! erasure request to the canonical log, where it takes its place after
//! every event accepted before it, and waits for the fold to apply it; the
//! outcome is read back from the store.

use std::sync::Arc;

use idfold_events::{encode_erasure, ErasureRequest, EventTime, Identifier};
use idfold_log::{EventSink, LogEntry};
use idfold_projector::ErasureRecord;
use rand::Rng;
use serde_json::{json, Value};

use crate::error::ReadError;

/// Where erasure requests are written: the log the server writes events to.
#[derive(Clone)]
pub struct ErasureLog {
    sink: Arc<dyn EventSink + Send + Sync>,
    /// Whether the fold deletes the person's records from this log (the
    /// embedded one does; Kafka keeps them until its retention).
    purges: bool,
}

impl std::fmt::Debug for ErasureLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureLog")
            .field("purges", &self.purges)
            .finish_non_exhaustive()
    }
}

impl ErasureLog {
    pub fn new(sink: Arc<dyn EventSink + Send + Sync>, purges: bool) -> ErasureLog {
        ErasureLog { sink, purges }
    }

    /// Appends the request durably.
    pub fn request(&self, request: &ErasureRequest) -> Result<(), ReadError> {
        let entry = LogEntry {
            key: request.workspace_id.clone(),
            payload: encode_erasure(request),
        };
        self.sink
            .append(&[entry])
            .map_err(|e| ReadError::LogUnavailable(e.to_string()))
    }

    /// Whether the fold deletes the person's records from this log.
    pub fn purges(&self) -> bool {
        self.purges
    }
}

/// A new request to erase `profile` of `workspace_id`, with a fresh id.
pub fn erasure_request(workspace_id: &str, profile: Identifier, now: EventTime) -> ErasureRequest {
    let suffix: u64 = rand::thread_rng().gen();
    ErasureRequest {
        erasure_id: format!("er-{suffix:016x}"),
        workspace_id: workspace_id.to_owned(),
        profile,
        requested_at: now,
    }
}

/// What an erasure did, as the API and `idfold erase` print it: counts
/// only, nothing of the person.
pub fn outcome_json(workspace_id: &str, record: &ErasureRecord, log_purges: bool) -> Value {
    let log = if record.log_purged {
        "deleted from the embedded log"
    } else if log_purges {
        "pending deletion from the embedded log"
    } else {
        "kept in Kafka until the topics' retention removes them"
    };
    json!({
        "workspace_id": workspace_id,
        "erasure_id": record.erasure_id,
        "status": "applied",
        "requested_at": record.requested_at,
        "forgotten": {
            "events": record.events,
            "responses": record.responses,
            "emails": record.emails,
            "devices": record.devices,
        },
        "mau_months_kept": record.retained.keys().collect::<Vec<_>>(),
        "log": log,
    })
}
