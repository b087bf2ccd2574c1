//! The fold's changes as compacted topics, for any Kafka client: MAU rows
//! keyed `<workspace>/<YYYY-MM>`, and identified profiles keyed
//! `<workspace>/<profile id>` with a tombstone where a profile no longer
//! exists (an erasure, or a link that moved its events). Values are the JSON
//! the read API serves. Anonymous profiles stay out.

use idfold_log::LogError;
use idfold_projector::{ChangeSink, WorkspaceChanges};
use rdkafka::producer::BaseRecord;

use crate::writer::KafkaWriter;

/// One record: key, and value (`None`: a tombstone).
type Change = (String, Option<Vec<u8>>);

/// The batch's changes as records of the two topics.
pub(crate) fn change_records(changes: &[(String, WorkspaceChanges)]) -> (Vec<Change>, Vec<Change>) {
    let mut months = Vec::new();
    let mut profiles = Vec::new();
    for (workspace, change) in changes {
        for row in &change.months {
            // A MAU row always serialises (strings and integers).
            if let Ok(value) = serde_json::to_vec(row) {
                months.push((format!("{workspace}/{}", row.month), Some(value)));
            }
        }
        for (id, json) in &change.profiles {
            if id.is_identified() {
                profiles.push((format!("{workspace}/{id}"), json.clone()));
            }
        }
    }
    (months, profiles)
}

impl ChangeSink for KafkaWriter {
    fn publish(&self, changes: &[(String, WorkspaceChanges)]) -> Result<(), LogError> {
        let (months, profiles) = change_records(changes);
        for (topic, records) in [(&self.mau_topic, months), (&self.profiles_topic, profiles)] {
            if records.is_empty() {
                continue;
            }
            self.write(
                topic,
                records.iter().map(|(key, value)| {
                    let record = BaseRecord::to(topic.as_str()).key(key.as_str());
                    match value {
                        Some(value) => record.payload(value.as_slice()),
                        None => record,
                    }
                }),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idfold_events::Identifier;
    use idfold_projector::MauRow;

    #[test]
    fn identified_profiles_and_mau_rows_are_keyed_by_workspace_and_anonymous_ones_stay_out() {
        let mut changes = WorkspaceChanges::default();
        changes.profiles = vec![
            (Identifier::user("u1"), Some(b"{}".to_vec())),
            (Identifier::email("a@b.co"), None),
            (Identifier::anonymous("d1"), Some(b"{}".to_vec())),
        ];
        changes.months = vec![MauRow {
            workspace_id: "acme".into(),
            month: "2026-01".into(),
            identified: 2,
            anonymous: 1,
            total: 3,
        }];
        let (months, profiles) = change_records(&[("acme".to_owned(), changes)]);
        assert_eq!(months.len(), 1);
        assert_eq!(months[0].0, "acme/2026-01");
        assert_eq!(
            profiles,
            vec![
                ("acme/user:u1".to_owned(), Some(b"{}".to_vec())),
                ("acme/email:a@b.co".to_owned(), None),
            ]
        );
    }
}
