//! The compact form of an accepted event that the fold keeps: only what
//! profiles, stitching and MAU read (track properties are not kept).

use idfold_events::{Event, EventBody, EventKind, EventOrder, EventTime, Identifier, SurveyAction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TraitChanges {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub set: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub set_once: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurveyStep {
    pub survey_id: String,
    pub action: SurveyAction,
    /// For `responded`: the response this step belongs to (defaulted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub answers: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldRecord {
    #[serde(rename = "m")]
    pub message_id: String,
    #[serde(rename = "t")]
    pub time: EventTime,
    #[serde(rename = "k")]
    pub kind: EventKind,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    #[serde(rename = "tr", default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<TraitChanges>,
    #[serde(rename = "ev", default, skip_serializing_if = "Option::is_none")]
    pub track_event: Option<String>,
    #[serde(rename = "sv", default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveyStep>,
}

impl FoldRecord {
    /// Takes the event apart (no copies: the fold is the event's last reader).
    pub fn from_event(event: Event) -> FoldRecord {
        let kind = event.kind();
        let response_id = event.response_id().map(str::to_owned);
        let (traits, track_event, survey) = match event.body {
            EventBody::Identify { traits } => (
                Some(TraitChanges {
                    set: traits.unwrap_or_default(),
                    ..TraitChanges::default()
                }),
                None,
                None,
            ),
            EventBody::Traits {
                traits,
                set_once,
                unset,
            } => (
                Some(TraitChanges {
                    set: traits,
                    set_once: set_once.unwrap_or_default(),
                    unset: unset.unwrap_or_default(),
                }),
                None,
                None,
            ),
            EventBody::Track { event, .. } => (None, Some(event), None),
            EventBody::Survey {
                survey_id,
                action,
                answers,
                context,
                ..
            } => (
                None,
                None,
                Some(SurveyStep {
                    survey_id,
                    action,
                    response_id,
                    answers: answers.unwrap_or_default(),
                    context: context.unwrap_or_default(),
                }),
            ),
        };
        FoldRecord {
            message_id: event.message_id,
            time: event.event_time,
            kind,
            user_id: event.user_id,
            email: event.email,
            anonymous_id: event.anonymous_id,
            traits,
            track_event,
            survey,
        }
    }

    /// A bare event of user `u` (for tests).
    #[cfg(test)]
    pub fn from_parts(message_id: &str, time: EventTime) -> FoldRecord {
        FoldRecord {
            message_id: message_id.to_owned(),
            time,
            kind: EventKind::Track,
            user_id: Some("u".to_owned()),
            email: None,
            anonymous_id: None,
            traits: None,
            track_event: None,
            survey: None,
        }
    }

    pub fn order(&self) -> EventOrder {
        EventOrder {
            time: self.time,
            message_id: self.message_id.clone(),
        }
    }

    /// The strongest identifier: user, else email, else device.
    pub fn subject(&self) -> Identifier {
        Identifier::strongest(
            self.user_id.as_deref(),
            self.email.as_deref(),
            self.anonymous_id.as_deref(),
        )
    }

    /// Every identifier the record carries.
    pub fn identifiers(&self) -> impl Iterator<Item = Identifier> + '_ {
        let user = self.user_id.iter().map(|u| Identifier::user(u.clone()));
        let email = self.email.iter().map(|e| Identifier::email(e.clone()));
        let device = self
            .anonymous_id
            .iter()
            .map(|a| Identifier::anonymous(a.clone()));
        user.chain(email).chain(device)
    }

    pub fn is_survey(&self) -> bool {
        self.kind == EventKind::Survey
    }
}
