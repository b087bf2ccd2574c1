//! What an erasure forgot and what it keeps. The record is stored under its
//! id beside the projection (a rebuild keeps it) and applied whenever the
//! workspace is loaded: its events are dropped wherever they come from (a
//! replay, a rebuild, a re-delivery), and its MAU contributions stay counted
//! as fixed numbers, so months already counted do not change. It holds no
//! personal data: opaque message ids and counts.

use std::collections::BTreeMap;

use idfold_events::{parse_month, Month};
use serde::{Deserialize, Serialize};

use crate::mau::MauRow;

/// What the forgotten person still adds to one month's MAU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedMau {
    pub identified: i64,
    pub anonymous: i64,
}

impl RetainedMau {
    pub fn add(&mut self, other: RetainedMau) {
        self.identified += other.identified;
        self.anonymous += other.anonymous;
    }

    pub fn is_zero(&self) -> bool {
        self.identified == 0 && self.anonymous == 0
    }

    /// A month's row with these counts added to what its events make.
    pub(crate) fn added_to(self, mut row: MauRow) -> MauRow {
        let add = |n: u64, r: i64| {
            let sum = i64::try_from(n).unwrap_or(i64::MAX).saturating_add(r);
            u64::try_from(sum).unwrap_or(0)
        };
        row.identified = add(row.identified, self.identified);
        row.anonymous = add(row.anonymous, self.anonymous);
        row.total = row.identified + row.anonymous;
        row
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub erasure_id: String,
    /// When it was requested (RFC 3339, server clock).
    pub requested_at: String,
    /// Events forgotten, and of them the survey responses.
    pub events: u64,
    pub responses: u64,
    /// Emails and devices that resolved to the person when it was applied.
    pub emails: u64,
    pub devices: u64,
    /// The forgotten events' ids: one seen again is dropped.
    pub message_ids: Vec<String>,
    /// Month (`YYYY-MM`) -> what the person still counts for in it.
    pub retained: BTreeMap<String, RetainedMau>,
    /// Whether the events (and the request) were deleted from the embedded
    /// log; Kafka keeps them until its retention removes them.
    pub log_purged: bool,
}

impl ErasureRecord {
    pub fn retained_months(&self) -> impl Iterator<Item = (Month, RetainedMau)> + '_ {
        self.retained
            .iter()
            .filter_map(|(m, r)| parse_month(m).map(|m| (m, *r)))
    }
}
