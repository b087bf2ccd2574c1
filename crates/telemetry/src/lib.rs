//! Every metric idfold emits, declared once with its labels, following
//! `<namespace>_<name>_<unit>_total`. Emitters record once per batch, never
//! per event. Labels are of bounded cardinality only: never workspace or
//! user ids.

pub mod names {
    /// Inputs seen at the edge. Labels: `source` (`file`, `stdin`, ...).
    pub const EVENTS_RECEIVED: &str = "idfold_events_received_total";
    /// Inputs appended to the log. Labels: `source`.
    pub const EVENTS_ACCEPTED: &str = "idfold_events_accepted_total";
    /// Inputs rejected to the dead-letter store. Labels: `source`, `reason`
    /// (one of the stable reason codes).
    pub const EVENTS_REJECTED: &str = "idfold_events_rejected_total";
    /// Events folded into state. No labels.
    pub const EVENTS_FOLDED: &str = "idfold_events_folded_total";
    /// Events dropped by the fold as re-deliveries of a folded message_id.
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
    /// The next log offset the fold will read. Labels: `partition`.
    pub const FOLD_POSITION: &str = "idfold_fold_position";
    /// Accepted events held in memory by resident workspaces.
    pub const FOLD_RESIDENT_EVENTS: &str = "idfold_fold_resident_events";
    /// Workspaces loaded from the store into memory.
    pub const FOLD_WORKSPACE_LOADS: &str = "idfold_fold_workspace_loads_total";
}

/// Registers the descriptions with whichever recorder is installed.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    use names::*;
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
    describe_gauge!(
        FOLD_POSITION,
        Unit::Count,
        "Next log offset to fold, by partition."
    );
    describe_gauge!(
        FOLD_RESIDENT_EVENTS,
        Unit::Count,
        "Events held in memory by resident workspaces."
    );
    describe_counter!(
        FOLD_WORKSPACE_LOADS,
        Unit::Count,
        "Workspaces loaded into memory."
    );
}
