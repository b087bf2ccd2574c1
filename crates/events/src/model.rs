//! The canonical event: what survived validation, with its event time derived.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::EventTime;

/// The largest event accepted, in bytes of its encoded input (Segment's limit).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Identify,
    Traits,
    Track,
    Survey,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Identify,
        EventKind::Traits,
        EventKind::Track,
        EventKind::Survey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Identify => "identify",
            EventKind::Traits => "traits",
            EventKind::Track => "track",
            EventKind::Survey => "survey",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Channel {
    Web,
    Mobile,
    Email,
    Link,
    #[default]
    Api,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Web,
        Channel::Mobile,
        Channel::Email,
        Channel::Link,
        Channel::Api,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Mobile => "mobile",
            Channel::Email => "email",
            Channel::Link => "link",
            Channel::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SurveyAction {
    Shown,
    Dismissed,
    Responded,
}

impl SurveyAction {
    pub const ALL: [SurveyAction; 3] = [
        SurveyAction::Shown,
        SurveyAction::Dismissed,
        SurveyAction::Responded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SurveyAction::Shown => "shown",
            SurveyAction::Dismissed => "dismissed",
            SurveyAction::Responded => "responded",
        }
    }

    pub fn parse(text: &str) -> Option<SurveyAction> {
        SurveyAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// The order every rule uses to say which of two events came later: event
/// time first, message_id breaking ties. It is total over distinct events.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventOrder {
    pub time: EventTime,
    pub message_id: String,
}

/// What an identifier names. The order (user < email < anonymous) is the
/// order of strength: an event's subject is its strongest identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    User,
    Email,
    Anonymous,
}

impl IdentifierKind {
    pub const ALL: [IdentifierKind; 3] = [
        IdentifierKind::User,
        IdentifierKind::Email,
        IdentifierKind::Anonymous,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            IdentifierKind::User => "user",
            IdentifierKind::Email => "email",
            IdentifierKind::Anonymous => "anonymous",
        }
    }

    /// The kind a profile id's prefix (`user`, `email`, `anonymous`) names.
    pub fn from_prefix(prefix: &str) -> Option<IdentifierKind> {
        IdentifierKind::ALL
            .into_iter()
            .find(|k| k.prefix() == prefix)
    }

    /// What a value of this kind is called in a sentence, with its article.
    pub fn value_name(self) -> &'static str {
        match self {
            IdentifierKind::User => "a user id",
            IdentifierKind::Email => "an email address",
            IdentifierKind::Anonymous => "an anonymous id",
        }
    }

    /// The event field that carries this kind of identifier.
    pub fn field(self) -> &'static str {
        match self {
            IdentifierKind::User => "user_id",
            IdentifierKind::Email => "email",
            IdentifierKind::Anonymous => "anonymous_id",
        }
    }
}

/// `user:U`, `email:E` or `anonymous:D`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier {
    pub kind: IdentifierKind,
    pub value: String,
}

impl Identifier {
    pub fn user(value: impl Into<String>) -> Self {
        Identifier {
            kind: IdentifierKind::User,
            value: value.into(),
        }
    }
    pub fn email(value: impl Into<String>) -> Self {
        Identifier {
            kind: IdentifierKind::Email,
            value: value.into(),
        }
    }
    pub fn anonymous(value: impl Into<String>) -> Self {
        Identifier {
            kind: IdentifierKind::Anonymous,
            value: value.into(),
        }
    }

    /// Users and emails are identified people; devices are anonymous.
    pub fn is_identified(&self) -> bool {
        self.kind != IdentifierKind::Anonymous
    }

    /// The strongest of the identifiers an event carries: user, else email,
    /// else device (an event has at least one).
    pub fn strongest(
        user_id: Option<&str>,
        email: Option<&str>,
        anonymous_id: Option<&str>,
    ) -> Identifier {
        match (user_id, email) {
            (Some(u), _) => Identifier::user(u),
            (None, Some(e)) => Identifier::email(e),
            (None, None) => Identifier::anonymous(anonymous_id.unwrap_or_default()),
        }
    }

    /// Parses the `kind:value` form that profiles use as their id, as
    /// stored (already normalised); input from people goes through
    /// [`crate::parse_profile_id`] instead.
    pub fn parse(text: &str) -> Option<Identifier> {
        let (prefix, value) = text.split_once(':')?;
        let kind = IdentifierKind::from_prefix(prefix)?;
        (!value.is_empty()).then(|| Identifier {
            kind,
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.prefix(), self.value)
    }
}

/// The type-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    Identify {
        traits: Option<Map<String, Value>>,
    },
    Traits {
        traits: Map<String, Value>,
        set_once: Option<Map<String, Value>>,
        unset: Option<Vec<String>>,
    },
    Track {
        event: String,
        properties: Option<Map<String, Value>>,
    },
    Survey {
        survey_id: String,
        action: SurveyAction,
        /// As sent; see [`Event::response_id`] for the defaulted value.
        response_id: Option<String>,
        answers: Option<Map<String, Value>>,
        context: Option<Map<String, Value>>,
    },
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::Identify { .. } => EventKind::Identify,
            EventBody::Traits { .. } => EventKind::Traits,
            EventBody::Track { .. } => EventKind::Track,
            EventBody::Survey { .. } => EventKind::Survey,
        }
    }
}

/// A validated event. Timestamps keep the text that was sent (so the log
/// round-trips it exactly); `event_time` is derived from them.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub message_id: String,
    pub workspace_id: String,
    pub timestamp: String,
    pub sent_at: Option<String>,
    pub received_at: Option<String>,
    pub channel: Channel,
    pub user_id: Option<String>,
    /// Trimmed and lower-cased.
    pub email: Option<String>,
    pub anonymous_id: Option<String>,
    pub body: EventBody,
    /// `timestamp` corrected for client clock skew and capped at
    /// `received_at + 24h`; see `validate::event_time`.
    pub event_time: EventTime,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    /// The response a `responded` step belongs to: `response_id`, or the message_id.
    pub fn response_id(&self) -> Option<&str> {
        match &self.body {
            EventBody::Survey {
                action: SurveyAction::Responded,
                response_id,
                ..
            } => Some(response_id.as_deref().unwrap_or(&self.message_id)),
            _ => None,
        }
    }

    /// The canonical JSON form (object keys sorted; absent optionals omitted).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        put("type", Value::from(self.kind().as_str()));
        put("message_id", Value::from(self.message_id.clone()));
        put("workspace_id", Value::from(self.workspace_id.clone()));
        put("timestamp", Value::from(self.timestamp.clone()));
        put("channel", Value::from(self.channel.as_str()));
        let optional = [
            ("sent_at", &self.sent_at),
            ("received_at", &self.received_at),
            ("user_id", &self.user_id),
            ("email", &self.email),
            ("anonymous_id", &self.anonymous_id),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                put(k, Value::from(v.clone()));
            }
        }
        let object = |o: &Option<Map<String, Value>>| o.clone().map(Value::Object);
        match &self.body {
            EventBody::Identify { traits } => {
                if let Some(t) = object(traits) {
                    put("traits", t);
                }
            }
            EventBody::Traits {
                traits,
                set_once,
                unset,
            } => {
                put("traits", Value::Object(traits.clone()));
                if let Some(s) = object(set_once) {
                    put("set_once", s);
                }
                if let Some(u) = unset {
                    put("unset", Value::from(u.clone()));
                }
            }
            EventBody::Track { event, properties } => {
                put("event", Value::from(event.clone()));
                if let Some(p) = object(properties) {
                    put("properties", p);
                }
            }
            EventBody::Survey {
                survey_id,
                action,
                response_id,
                answers,
                context,
            } => {
                put("survey_id", Value::from(survey_id.clone()));
                put("action", Value::from(action.as_str()));
                if let Some(r) = response_id {
                    put("response_id", Value::from(r.clone()));
                }
                if let Some(a) = object(answers) {
                    put("answers", a);
                }
                if let Some(c) = object(context) {
                    put("context", c);
                }
            }
        }
        Value::Object(m)
    }
}
