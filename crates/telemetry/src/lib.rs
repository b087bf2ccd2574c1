//! Every metric idfold emits, declared once with its labels, following
//! `<namespace>_<name>_<unit>_total`. Emitters record once per batch, never
//! per event. Labels are of bounded cardinality only: never workspace or
//! user ids. `exporter` serves them in Prometheus' text format.

mod exporter;

pub use exporter::{install_exporter, ExporterError, PrometheusHandle};

pub mod names {
    /// Inputs seen at the edge. Labels: `source` (`file`, `stdin`, ...).
    /// Always accepted + rejected = received: an HTTP request refused as a
    /// whole (a body that is not JSON or not a batch, too large, bad gzip,
    /// timed out) counts as one input received and rejected.
    pub const EVENTS_RECEIVED: &str = "idfold_events_received_total";
    /// Inputs accepted: appended to the log. Labels: `source`, `type`
    /// (identify, traits, track, survey; `group` for Segment's group calls,
    /// which are validated and counted, not stored).
    pub const EVENTS_ACCEPTED: &str = "idfold_events_accepted_total";
    /// Inputs rejected to the dead-letter store. Labels: `source`, `reason`
    /// (one of the stable reason codes; for HTTP requests refused as a
    /// whole also `invalid_gzip`, `invalid_body`, `body_timeout`,
    /// `unsupported_encoding`: those without a valid key are counted and
    /// not dead-lettered; a request refused for its credentials, 401, is
    /// no input and counted only in `idfold_http_requests_total`).
    pub const EVENTS_REJECTED: &str = "idfold_events_rejected_total";
    /// Rejected inputs written to the dead-letter store or topic. Labels:
    /// `source` (`log` for records the fold could not decode).
    pub const DEAD_LETTERS_WRITTEN: &str = "idfold_dead_letters_written_total";
    /// Events folded into state. Labels: `type`.
    pub const EVENTS_FOLDED: &str = "idfold_events_folded_total";
    /// Events dropped by the fold as re-deliveries of a folded message_id.
    /// Labels: `type`.
    pub const EVENTS_DUPLICATE: &str = "idfold_events_duplicate_total";
    /// Events dropped by the fold because their person was erased (a replay
    /// or re-delivery of a forgotten event).
    pub const EVENTS_FORGOTTEN: &str = "idfold_events_forgotten_total";
    /// Erasure requests the fold applied.
    pub const ERASURES_APPLIED: &str = "idfold_erasures_applied_total";
    /// Log records the fold could not decode (sent to the dead-letter store).
    pub const LOG_RECORDS_UNDECODABLE: &str = "idfold_log_records_undecodable_total";
    /// Records in one fold batch (histogram).
    pub const FOLD_BATCH_EVENTS: &str = "idfold_fold_batch_events";
    /// Time to fold and commit one batch (histogram).
    pub const FOLD_BATCH_DURATION: &str = "idfold_fold_batch_duration_seconds";
    /// The next offset a consumer will read. Labels: `topic` (`embedded`
    /// for the embedded log), `partition`.
    pub const CONSUMER_POSITION: &str = "idfold_consumer_position";
    /// Records in the log after that position. Labels: `topic`, `partition`.
    pub const CONSUMER_LAG: &str = "idfold_consumer_lag_records";
    /// Size of the data directory's database on disk.
    pub const STORE_SIZE: &str = "idfold_store_size_bytes";
    /// How far a running `rebuild` is through the log (0 to 1).
    pub const REBUILD_PROGRESS: &str = "idfold_rebuild_progress_ratio";
    /// HTTP requests answered. Labels: `route` (the route's template, or
    /// `unmatched`), `method`, `status`.
    pub const HTTP_REQUESTS: &str = "idfold_http_requests_total";
    /// Time to answer an HTTP request (histogram). Labels: `route`.
    pub const HTTP_REQUEST_DURATION: &str = "idfold_http_request_duration_seconds";
    /// Requests waiting for the log writer (`--write-queue` bounds it).
    pub const HTTP_WRITE_QUEUE: &str = "idfold_http_write_queue_requests";
    /// HTTP connections open (`limits.max_connections` bounds it).
    pub const HTTP_CONNECTIONS_OPEN: &str = "idfold_http_connections_open";
    /// HTTP connections the server closed on its own. Labels: `reason`
    /// (`header_timeout`, `idle_timeout`, `over_limit`).
    pub const HTTP_CONNECTIONS_CLOSED: &str = "idfold_http_connections_closed_total";
    /// Messages in the Kafka producer's queue, not yet acknowledged.
    pub const KAFKA_PRODUCER_QUEUE: &str = "idfold_kafka_producer_queue_messages";
    /// Kafka deliveries that failed (the write is answered 503 and retried
    /// by the client).
    pub const KAFKA_DELIVERY_ERRORS: &str = "idfold_kafka_delivery_errors_total";
    /// Always 1. Labels: `version`.
    pub const BUILD_INFO: &str = "idfold_build_info";
    /// Bytes the fold's caches hold (nodes and targets, encoded sizes);
    /// kept within half of `fold.memory_budget`.
    pub const FOLD_RESIDENT_BYTES: &str = "idfold_fold_resident_bytes";
    /// Workspace states created (a workspace's first batch, or after its
    /// state was dropped).
    pub const FOLD_WORKSPACE_LOADS: &str = "idfold_fold_workspace_loads_total";
    /// Kafka faults waited out (a leader election, a broker away, a topic
    /// not yet known, a client rebuilt). Labels: `stage` (`fold`, `raw`,
    /// `writer`, `instances`).
    pub const KAFKA_TRANSIENT_ERRORS: &str = "idfold_kafka_transient_errors_total";
    /// Kafka clients built again after librdkafka gave one up (a fenced
    /// static member, a fatal idempotence error). Labels: `stage`.
    pub const KAFKA_CLIENT_REBUILDS: &str = "idfold_kafka_client_rebuilds_total";
    /// 1 once the fold reached the end a partition had when it was
    /// assigned (or, on the embedded log, the end of the log), 0 while it
    /// catches up or when the partition is not held. Labels: `topic`
    /// (`embedded` for the embedded log), `partition`.
    pub const FOLD_PARTITION_CAUGHT_UP: &str = "idfold_fold_partition_caught_up";
    /// Waits for free space on the data directory's filesystem (one per
    /// retry). Labels: `stage` (`fold`, `open`).
    pub const DISK_FULL_WAITS: &str = "idfold_disk_full_waits_total";
}

/// Registers the descriptions with whichever recorder is installed.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    use names::*;
    describe_counter!(
        DISK_FULL_WAITS,
        Unit::Count,
        "Retries while the data directory's filesystem was full, by stage."
    );
    describe_counter!(
        EVENTS_RECEIVED,
        Unit::Count,
        "Inputs seen at the edge, by source."
    );
    describe_counter!(
        EVENTS_ACCEPTED,
        Unit::Count,
        "Inputs appended to the log, by source."
    );
    describe_counter!(
        EVENTS_REJECTED,
        Unit::Count,
        "Inputs rejected, by source and reason code."
    );
    describe_counter!(
        EVENTS_FOLDED,
        Unit::Count,
        "Events folded into profiles and MAU."
    );
    describe_counter!(
        EVENTS_DUPLICATE,
        Unit::Count,
        "Re-deliveries of a folded message_id, dropped."
    );
    describe_counter!(
        EVENTS_FORGOTTEN,
        Unit::Count,
        "Events of erased people seen again, dropped."
    );
    describe_counter!(ERASURES_APPLIED, Unit::Count, "Erasure requests applied.");
    describe_counter!(
        LOG_RECORDS_UNDECODABLE,
        Unit::Count,
        "Log records that did not decode."
    );
    describe_histogram!(FOLD_BATCH_EVENTS, Unit::Count, "Records per fold batch.");
    describe_histogram!(
        FOLD_BATCH_DURATION,
        Unit::Seconds,
        "Time to fold and commit a batch."
    );
    describe_counter!(
        DEAD_LETTERS_WRITTEN,
        Unit::Count,
        "Rejected inputs written to the dead-letter store, by source."
    );
    describe_gauge!(
        CONSUMER_POSITION,
        Unit::Count,
        "Next offset to read, by topic and partition."
    );
    describe_gauge!(
        CONSUMER_LAG,
        Unit::Count,
        "Records after the consumer's position, by topic and partition."
    );
    describe_gauge!(STORE_SIZE, Unit::Bytes, "Data directory size on disk.");
    describe_gauge!(
        REBUILD_PROGRESS,
        Unit::Count,
        "Fraction of the log a running rebuild has refolded."
    );
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by route, method and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route."
    );
    describe_gauge!(HTTP_CONNECTIONS_OPEN, Unit::Count, "HTTP connections open.");
    describe_counter!(
        HTTP_CONNECTIONS_CLOSED,
        Unit::Count,
        "HTTP connections closed by the server: header or idle timeout, over the limit."
    );
    describe_gauge!(
        HTTP_WRITE_QUEUE,
        Unit::Count,
        "Requests waiting for the log writer."
    );
    describe_gauge!(
        KAFKA_PRODUCER_QUEUE,
        Unit::Count,
        "Messages queued in the Kafka producer, not yet acknowledged."
    );
    describe_counter!(
        KAFKA_DELIVERY_ERRORS,
        Unit::Count,
        "Failed Kafka deliveries."
    );
    describe_gauge!(BUILD_INFO, Unit::Count, "Always 1; the version is a label.");
    describe_gauge!(
        FOLD_RESIDENT_BYTES,
        Unit::Bytes,
        "Bytes the fold's caches hold (identifiers' nodes and targets)."
    );
    describe_counter!(
        FOLD_WORKSPACE_LOADS,
        Unit::Count,
        "Workspaces loaded into memory."
    );
    describe_counter!(
        KAFKA_TRANSIENT_ERRORS,
        Unit::Count,
        "Kafka faults waited out, by stage."
    );
    describe_counter!(
        KAFKA_CLIENT_REBUILDS,
        Unit::Count,
        "Kafka clients built again after a fatal error, by stage."
    );
    describe_gauge!(
        FOLD_PARTITION_CAUGHT_UP,
        Unit::Count,
        "1 once the fold caught up with a partition, by topic and partition."
    );
}
