//! The profile JSON contract as one owned type. The projector renders every
//! profile through it; segments, the read API, the dashboard, the CLI and
//! the compacted profile topic parse it back, so no reader depends on
//! string keys. Fields are declared in alphabetical order so the JSON's keys
//! come out sorted, as every other object's (`idfold export` is compared
//! byte for byte).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One profile: a user's, or a device's or email's that no user claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileView {
    /// The devices that resolve to this profile now, sorted.
    pub anonymous_ids: Vec<String>,
    /// The emails that resolve to this profile now, sorted.
    pub emails: Vec<String>,
    pub event_counts: EventCounts,
    /// RFC 3339, UTC; `null` only for a profile with no events.
    pub first_seen: Option<String>,
    /// `user:U`, `email:E` or `anonymous:D`.
    pub id: String,
    pub kind: ProfileKind,
    pub last_seen: Option<String>,
    /// Ordered by (last step's time, response_id, survey_id).
    pub responses: Vec<ResponseView>,
    /// By survey_id.
    pub surveys: BTreeMap<String, SurveyStats>,
    /// By track event name.
    pub track: BTreeMap<String, TrackStats>,
    /// The current value of each trait; a trait set to `null` is kept as
    /// `null` (present, but not "existing" to a segment).
    pub traits: BTreeMap<String, Value>,
    /// The user's id for a user's profile, `null` otherwise.
    pub user_id: Option<String>,
    pub workspace_id: String,
}

/// Whether a profile is a user's (`identified`) or a device's or email's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    Identified,
    Anonymous,
}

/// Events folded into the profile, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    pub identify: u64,
    pub survey: u64,
    pub track: u64,
    pub traits: u64,
}

/// One survey's steps on this profile. A `last_*` is absent while that
/// step never happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyStats {
    pub dismissed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dismissed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_responded: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_shown: Option<String>,
    /// Distinct responses (by response_id).
    pub responded: u64,
    pub shown: u64,
}

/// One track event name on this profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackStats {
    pub count: u64,
    /// `YYYY-MM-DD` -> events that UTC day.
    pub days: BTreeMap<String, u64>,
    pub first: String,
    pub last: String,
}

/// One survey response, its steps merged per answer and context key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseView {
    pub answers: BTreeMap<String, Value>,
    pub context: BTreeMap<String, Value>,
    pub response_id: String,
    pub survey_id: String,
    /// The response's last step, RFC 3339.
    pub timestamp: String,
}

impl ProfileView {
    pub fn is_identified(&self) -> bool {
        self.kind == ProfileKind::Identified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = include_str!("../../../tests/fixtures/fold_v1/export.ndjson");

    /// The v1 fold's export: every profile line, without the `record` key
    /// the export adds, is what the store held; it parses and writes back to
    /// the same bytes.
    #[test]
    fn every_exported_profile_round_trips_byte_for_byte() {
        let mut profiles = 0;
        for line in EXPORT.lines() {
            let Some(stored) = line
                .contains(r#""record":"profile","#)
                .then(|| line.replacen(r#""record":"profile","#, "", 1))
            else {
                continue;
            };
            let view: ProfileView = serde_json::from_str(&stored).expect(&stored);
            assert_eq!(serde_json::to_string(&view).ok(), Some(stored));
            profiles += 1;
        }
        assert!(profiles > 100, "the fixture holds profiles: {profiles}");
    }

    #[test]
    fn kind_and_skipped_fields_read_as_written() {
        let text = r#"{"dismissed":0,"last_shown":"2026-01-03T00:18:40Z","responded":0,"shown":1}"#;
        let stats: SurveyStats = serde_json::from_str(text).expect("survey stats");
        assert_eq!(stats.last_dismissed, None);
        assert_eq!(stats.last_shown.as_deref(), Some("2026-01-03T00:18:40Z"));
        assert_eq!(serde_json::to_string(&stats).ok().as_deref(), Some(text));
        assert_eq!(
            serde_json::from_str::<ProfileKind>(r#""anonymous""#).ok(),
            Some(ProfileKind::Anonymous)
        );
        assert!(serde_json::from_str::<ProfileKind>(r#""robot""#).is_err());
    }
}
