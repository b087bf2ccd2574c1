//! One Segment message to one canonical event.
//!
//! The mapping (also in the README):
//! - `userId` → `user_id`, `anonymousId` → `anonymous_id`, `messageId` →
//!   `message_id` (generated when absent), `timestamp` (else
//!   `originalTimestamp`, else the receive time), `sentAt` (the item's, else
//!   the batch's), `receivedAt` stamped by the server.
//! - the email identifier is `traits.email` (identify), else
//!   `context.traits.email`.
//! - `context.channel`: `browser` → web, `mobile` → mobile, anything else → api.
//! - identify → identify; track → track, except `Survey Shown`, `Survey
//!   Dismissed` and `Survey Responded` with `properties.survey_id`, which are
//!   survey events; page and screen → track named after the page or screen;
//!   alias → identify linking `previousId` (as a device) to `userId`: two
//!   users are never merged; group → acknowledged, not stored.
//! - `integrations` and the rest of `context` are accepted and not kept.

use idfold_events::{
    format_nanos, is_plausible_email, json_type_name, optional_object, optional_string,
    validate_value, Event, EventTime, ReasonCode, Rejection, SurveyAction,
};
use serde_json::{Map, Value};

use crate::call::SegmentCall;
use crate::message_id::generated_message_id;

/// What a message arrives with besides itself.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The workspace the write key is for.
    pub workspace_id: &'a str,
    /// When the server received the request.
    pub received_at: EventTime,
    /// A batch's top-level `sentAt`, for items without their own.
    pub batch_sent_at: Option<&'a Value>,
    /// A batch's top-level `context`, under each item's own.
    pub batch_context: Option<&'a Map<String, Value>>,
    /// The message's place in its batch (0 for a single call): part of a
    /// generated messageId, so two identical items are two events.
    pub position: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Translated {
    /// A canonical event, validated.
    Event(Box<Event>),
    /// A valid message idfold has no event for (group): counted, not stored.
    Acknowledged(SegmentCall),
}

/// Translates one message. `call` is the endpoint's (`/v1/track`), or
/// `None` for a batch item, whose `type` then says.
pub fn translate(
    call: Option<SegmentCall>,
    message: &Value,
    envelope: &Envelope<'_>,
) -> Result<Translated, Rejection> {
    let Some(message) = message.as_object() else {
        return Err(Rejection::new(
            ReasonCode::InvalidJson,
            None,
            "a Segment message must be a JSON object",
        ));
    };
    let call = match call {
        Some(call) => call,
        None => call_of(message)?,
    };
    check_workspace(message, envelope.workspace_id)?;
    let context = merged_context(envelope.batch_context, message)?;
    let user_id = id_field(message, "userId")?;
    let anonymous_id = id_field(message, "anonymousId")?;

    if call == SegmentCall::Group {
        id_field(message, "groupId")?.ok_or_else(|| Rejection::missing("groupId"))?;
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(no_identifier());
        }
        return Ok(Translated::Acknowledged(call));
    }

    let received_at = format_nanos(envelope.received_at);
    let (timestamp, untimed) = match optional_string(message, "timestamp")? {
        Some(t) => (t.to_owned(), false),
        None => match optional_string(message, "originalTimestamp")? {
            Some(t) => (t.to_owned(), false),
            None => (received_at.clone(), true),
        },
    };
    let sent_at = match optional_string(message, "sentAt")? {
        Some(s) => Some(Value::from(s)),
        None => envelope
            .batch_sent_at
            .filter(|v| !v.is_null())
            .cloned()
            .map(|v| match v {
                Value::String(_) => Ok(v),
                other => Err(Rejection::invalid(
                    "sentAt",
                    format_args!("must be a string, not {}", json_type_name(&other)),
                )),
            })
            .transpose()?,
    };
    let message_id = match id_field(message, "messageId")? {
        Some(id) => id,
        None => generated_message_id(
            envelope.workspace_id,
            call.as_str(),
            message,
            envelope.position,
            untimed.then_some(received_at.as_str()),
        ),
    };

    let traits = optional_object(message, "traits")?;
    let context_traits = match context.get("traits").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Object(t)) => Some(t),
        Some(other) => {
            return Err(Rejection::invalid(
                "context.traits",
                format_args!("must be a JSON object, not {}", json_type_name(other)),
            ))
        }
    };
    let (email, email_field) = match (
        call == SegmentCall::Identify,
        traits.and_then(|t| t.get("email")).filter(|v| !v.is_null()),
        // SDKs attach the user's cached traits to every call: a cached
        // email that is not plausible is not the call's to fail on, so it
        // is left out (as Segment does), not rejected.
        context_traits
            .and_then(|t| t.get("email"))
            .filter(|v| v.as_str().is_some_and(is_plausible_email)),
    ) {
        (true, Some(email), _) => (Some(email.clone()), "traits.email"),
        (_, _, Some(email)) => (Some(email.clone()), "context.traits.email"),
        _ if call == SegmentCall::Identify => (None, "traits.email"),
        _ => (None, "context.traits.email"),
    };

    let mut event = Map::new();
    event.insert("message_id".into(), Value::from(message_id));
    event.insert("workspace_id".into(), Value::from(envelope.workspace_id));
    event.insert("timestamp".into(), Value::from(timestamp));
    if let Some(sent_at) = sent_at {
        event.insert("sent_at".into(), sent_at);
    }
    event.insert("received_at".into(), Value::from(received_at));
    event.insert("channel".into(), Value::from(channel(&context)));
    if let Some(email) = email {
        event.insert("email".into(), email);
    }

    let mut names = FieldNames::new(email_field);
    match call {
        SegmentCall::Identify => {
            event.insert("type".into(), Value::from("identify"));
            put_ids(&mut event, user_id, anonymous_id);
            if let Some(traits) = traits {
                event.insert("traits".into(), Value::Object(traits.clone()));
            }
        }
        SegmentCall::Alias => {
            let previous =
                id_field(message, "previousId")?.ok_or_else(|| Rejection::missing("previousId"))?;
            let user = user_id.ok_or_else(|| Rejection::missing("userId"))?;
            event.insert("type".into(), Value::from("identify"));
            put_ids(&mut event, Some(user), Some(previous));
            names.anonymous_id = "previousId";
        }
        SegmentCall::Track | SegmentCall::Page | SegmentCall::Screen => {
            put_ids(&mut event, user_id, anonymous_id);
            let properties = optional_object(message, "properties")?;
            let name = match call {
                SegmentCall::Track => match message.get("event").filter(|v| !v.is_null()) {
                    None => return Err(Rejection::missing("event")),
                    Some(name) => name.clone(),
                },
                _ => {
                    names.event = "name";
                    match optional_string(message, "name")? {
                        Some(name) => Value::from(name),
                        None if call == SegmentCall::Page => Value::from("Page Viewed"),
                        None => Value::from("Screen Viewed"),
                    }
                }
            };
            match survey_action(call, &name, properties) {
                Some((action, properties)) => {
                    event.insert("type".into(), Value::from("survey"));
                    event.insert("action".into(), Value::from(action.as_str()));
                    for key in ["survey_id", "response_id", "answers"] {
                        if let Some(v) = properties.get(key) {
                            event.insert(key.into(), v.clone());
                        }
                    }
                }
                None => {
                    event.insert("type".into(), Value::from("track"));
                    event.insert("event".into(), name);
                    if let Some(properties) = properties {
                        event.insert("properties".into(), Value::Object(properties.clone()));
                    }
                }
            }
        }
        // Answered before the timestamp is even read.
        SegmentCall::Group => return Ok(Translated::Acknowledged(call)),
    }
    validate_value(&Value::Object(event))
        .map(|e| Translated::Event(Box::new(e)))
        .map_err(|r| names.rename(r))
}

fn call_of(message: &Map<String, Value>) -> Result<SegmentCall, Rejection> {
    let allowed = SegmentCall::ALL.map(SegmentCall::as_str).join(", ");
    match message.get("type").filter(|v| !v.is_null()) {
        None => Err(Rejection::missing("type")),
        Some(Value::String(s)) => SegmentCall::parse(s).ok_or_else(|| {
            Rejection::new(
                ReasonCode::UnknownType,
                Some("type"),
                format!("`type` \"{}\" is not one of {allowed}", short(s)),
            )
        }),
        Some(other) => Err(Rejection::new(
            ReasonCode::UnknownType,
            Some("type"),
            format!(
                "`type` must be one of {allowed}, not {}",
                json_type_name(other)
            ),
        )),
    }
}

/// The write key decides the workspace; a message may repeat it, not change it.
fn check_workspace(message: &Map<String, Value>, workspace_id: &str) -> Result<(), Rejection> {
    for field in ["workspaceId", "workspace_id"] {
        match message.get(field).filter(|v| !v.is_null()) {
            None => {}
            Some(Value::String(named)) if named == workspace_id => {}
            Some(_) => {
                return Err(Rejection::new(
                    ReasonCode::WrongWorkspace,
                    Some(field),
                    format!("`{field}` names another workspace than the write key's"),
                ))
            }
        }
    }
    Ok(())
}

/// The batch's context with the item's own keys over it.
fn merged_context(
    batch: Option<&Map<String, Value>>,
    message: &Map<String, Value>,
) -> Result<Map<String, Value>, Rejection> {
    let mut context = batch.cloned().unwrap_or_default();
    if let Some(own) = optional_object(message, "context")? {
        for (k, v) in own {
            context.insert(k.clone(), v.clone());
        }
    }
    Ok(context)
}

fn channel(context: &Map<String, Value>) -> &'static str {
    match context.get("channel").and_then(Value::as_str) {
        Some("browser") => "web",
        Some("mobile") => "mobile",
        _ => "api",
    }
}

fn put_ids(event: &mut Map<String, Value>, user_id: Option<String>, anonymous_id: Option<String>) {
    if let Some(u) = user_id {
        event.insert("user_id".into(), Value::from(u));
    }
    if let Some(a) = anonymous_id {
        event.insert("anonymous_id".into(), Value::from(a));
    }
}

/// `Survey Shown|Dismissed|Responded` with a `survey_id` is a survey event.
fn survey_action<'p>(
    call: SegmentCall,
    name: &Value,
    properties: Option<&'p Map<String, Value>>,
) -> Option<(SurveyAction, &'p Map<String, Value>)> {
    if call != SegmentCall::Track {
        return None;
    }
    let properties = properties?;
    properties.get("survey_id").filter(|v| !v.is_null())?;
    let name = name.as_str()?.trim();
    let action = SurveyAction::ALL
        .into_iter()
        .find(|a| name.eq_ignore_ascii_case(&format!("Survey {}", a.as_str())))?;
    Some((action, properties))
}

/// An id Segment allows as a string or an integer (SDKs stringify
/// numbers): an integer is its exact decimal digits. Beyond 64 bits
/// [`crate::parse_message`] has kept them as a string already; a float
/// here (`1.5`, `1e3`, or a big integer parsed without it) is refused, as
/// its digits could equal another id's.
fn id_field(message: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
    match message.get(name).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(Value::Number(n)) => Err(Rejection::invalid(
            name,
            format_args!("must be a string or an integer, not the number {n}"),
        )),
        Some(other) => Err(Rejection::invalid(
            name,
            format_args!(
                "must be a string or a number, not {}",
                json_type_name(other)
            ),
        )),
    }
}

fn no_identifier() -> Rejection {
    Rejection::new(
        ReasonCode::NoIdentifier,
        None,
        "a message needs `userId` or `anonymousId`",
    )
}

fn short(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() > MAX {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// The Segment field each canonical field came from, so a rejection by the
/// core rules names what the sender wrote.
struct FieldNames {
    email: &'static str,
    anonymous_id: &'static str,
    event: &'static str,
}

impl FieldNames {
    fn new(email: &'static str) -> Self {
        FieldNames {
            email,
            anonymous_id: "anonymousId",
            event: "event",
        }
    }

    fn segment_name<'a>(&self, canonical: &'a str) -> Option<&'a str>
    where
        'static: 'a,
    {
        Some(match canonical {
            "message_id" => "messageId",
            "user_id" => "userId",
            "anonymous_id" => self.anonymous_id,
            "sent_at" => "sentAt",
            "received_at" => "receivedAt",
            "workspace_id" => "workspaceId",
            "email" => self.email,
            "event" => self.event,
            "channel" => "context.channel",
            "survey_id" => "properties.survey_id",
            "response_id" => "properties.response_id",
            "answers" => "properties.answers",
            _ => return None,
        })
    }

    fn rename(&self, mut rejection: Rejection) -> Rejection {
        const CANONICAL: [&str; 12] = [
            "message_id",
            "user_id",
            "anonymous_id",
            "sent_at",
            "received_at",
            "workspace_id",
            "email",
            "event",
            "channel",
            "survey_id",
            "response_id",
            "answers",
        ];
        if let Some(field) = rejection.field.as_deref() {
            if let Some(renamed) = self.segment_name(field) {
                rejection.field = Some(renamed.to_owned());
            }
        }
        for canonical in CANONICAL {
            if let Some(segment) = self.segment_name(canonical) {
                rejection.message = rejection
                    .message
                    .replace(&format!("`{canonical}`"), &format!("`{segment}`"));
            }
        }
        rejection
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idfold_events::{parse_rfc3339, Channel, EventBody};
    use proptest::prelude::*;
    use serde_json::json;

    const RECEIVED: &str = "2026-03-01T10:00:05Z";

    fn received() -> EventTime {
        parse_rfc3339(RECEIVED).unwrap_or_default()
    }

    fn envelope() -> Envelope<'static> {
        Envelope {
            workspace_id: "acme",
            received_at: received(),
            batch_sent_at: None,
            batch_context: None,
            position: 0,
        }
    }

    fn event(call: Option<SegmentCall>, message: Value) -> Event {
        match translate(call, &message, &envelope()) {
            Ok(Translated::Event(e)) => *e,
            other => panic!("expected an event from {message}, got {other:?}"),
        }
    }

    fn rejection(call: Option<SegmentCall>, message: Value) -> Rejection {
        match translate(call, &message, &envelope()) {
            Err(r) => r,
            other => panic!("expected a rejection of {message}, got {other:?}"),
        }
    }

    #[test]
    fn identify_maps_ids_traits_email_and_times() {
        let e = event(
            Some(SegmentCall::Identify),
            json!({"userId": "u1", "anonymousId": "d1", "messageId": "m1",
                   "traits": {"email": " Ann@Example.com ", "plan": "pro"},
                   "timestamp": "2026-03-01T09:00:00Z", "sentAt": "2026-03-01T10:00:00Z",
                   "integrations": {"All": true}, "context": {"channel": "browser"}}),
        );
        assert_eq!(e.message_id, "m1");
        assert_eq!(e.workspace_id, "acme");
        assert_eq!(e.user_id.as_deref(), Some("u1"));
        assert_eq!(e.anonymous_id.as_deref(), Some("d1"));
        assert_eq!(e.email.as_deref(), Some("ann@example.com"));
        assert_eq!(e.channel, Channel::Web);
        assert_eq!(e.received_at.as_deref(), Some(RECEIVED));
        // Skew: sent 5 s before it was received, so the event time moves 5 s.
        assert_eq!(
            e.event_time,
            parse_rfc3339("2026-03-01T09:00:05Z").unwrap_or_default()
        );
        match e.body {
            EventBody::Identify { traits: Some(t) } => assert_eq!(t["plan"], "pro"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn track_takes_the_email_from_context_traits_and_numbers_as_ids() {
        let e = event(
            Some(SegmentCall::Track),
            json!({"userId": 42, "event": "Signed Up", "properties": {"plan": "pro"},
                   "context": {"traits": {"email": "a@b.co"}}, "messageId": "m"}),
        );
        assert_eq!(e.user_id.as_deref(), Some("42"));
        assert_eq!(e.email.as_deref(), Some("a@b.co"));
        assert!(matches!(e.body, EventBody::Track { ref event, .. } if event == "Signed Up"));
    }

    #[test]
    fn integer_ids_are_their_exact_digits() {
        let text = |id: &str| {
            format!(
                r#"{{"type": "track", "userId": {id}, "anonymousId": {id}, "event": "E", "messageId": {id}}}"#
            )
        };
        let mut users = Vec::new();
        for id in [
            "12345678901234567890123",
            "12345678901234567890124",
            "18446744073709551616",
            "18446744073709551617",
            "-9223372036854775809",
            "9007199254740993",
            "42",
        ] {
            let message = crate::parse_message(&text(id)).unwrap_or_default();
            let e = event(None, message);
            assert_eq!(e.user_id.as_deref(), Some(id));
            assert_eq!(e.anonymous_id.as_deref(), Some(id));
            assert_eq!(e.message_id, id);
            users.push(e.user_id);
        }
        users.dedup();
        assert_eq!(users.len(), 7, "never merged");
    }

    #[test]
    fn a_non_integer_number_as_an_id_is_an_invalid_field() {
        for field in [
            "userId",
            "anonymousId",
            "previousId",
            "messageId",
            "groupId",
        ] {
            for number in ["1.5", "1e3", "1.0", "-0.5", "12345678901234567890123.0"] {
                let text = format!(
                    r#"{{"type": "alias", "userId": "u", "previousId": "p", "groupId": "g", "{field}": {number}}}"#
                );
                let message = crate::parse_message(&text).unwrap_or_default();
                let call = if field == "groupId" {
                    SegmentCall::Group
                } else {
                    SegmentCall::Alias
                };
                let r = rejection(Some(call), message);
                assert_eq!(
                    (r.reason, r.field.as_deref()),
                    (ReasonCode::InvalidField, Some(field)),
                    "{text}"
                );
                assert!(r.message.contains(&format!("`{field}`")), "{r}");
            }
        }
        // Also when the caller parsed without `parse_message`: the float a
        // big integer became is refused, never taken as an id.
        let message: Value =
            serde_json::from_str(r#"{"userId": 12345678901234567890123, "event": "E"}"#)
                .unwrap_or_default();
        let r = rejection(Some(SegmentCall::Track), message);
        assert_eq!(r.field.as_deref(), Some("userId"));
    }

    #[test]
    fn segment_ids_are_normalised_like_native_ones() {
        let e = event(
            Some(SegmentCall::Identify),
            json!({"userId": " ｕ１ ", "anonymousId": "e\u{0301}", "messageId": "m",
                   "traits": {"email": "Ｕ１@Example.COM"}}),
        );
        assert_eq!(e.user_id.as_deref(), Some("u1"));
        assert_eq!(e.anonymous_id.as_deref(), Some("\u{00E9}"));
        assert_eq!(e.email.as_deref(), Some("u1@example.com"));
        for (field, bad) in [
            ("userId", "ｎｕｌｌ"),
            ("userId", "null\u{200B}"),
            ("userId", "\u{200B}"),
            ("userId", "nil"),
            ("anonymousId", "NIL"),
        ] {
            let r = rejection(
                Some(SegmentCall::Track),
                json!({"userId": "u", "event": "E", field: bad}),
            );
            assert_eq!(
                (r.reason, r.field.as_deref()),
                (ReasonCode::InvalidField, Some(field)),
                "{bad:?}"
            );
        }
        let r = rejection(
            Some(SegmentCall::Identify),
            json!({"userId": "u", "traits": {"email": "u1\u{200B}@example.com"}}),
        );
        assert_eq!(r.field.as_deref(), Some("traits.email"));
    }

    #[test]
    fn page_and_screen_are_tracks_named_after_them() {
        let page = event(
            Some(SegmentCall::Page),
            json!({"anonymousId": "d", "name": "Pricing", "messageId": "m"}),
        );
        assert!(matches!(page.body, EventBody::Track { ref event, .. } if event == "Pricing"));
        let unnamed = event(
            None,
            json!({"type": "screen", "userId": "u", "messageId": "m"}),
        );
        assert!(
            matches!(unnamed.body, EventBody::Track { ref event, .. } if event == "Screen Viewed")
        );
    }

    #[test]
    fn alias_links_the_previous_id_as_a_device_of_the_user() {
        let e = event(
            None,
            json!({"type": "alias", "previousId": "old", "userId": "u1", "messageId": "m"}),
        );
        assert!(matches!(e.body, EventBody::Identify { traits: None }));
        assert_eq!(e.user_id.as_deref(), Some("u1"));
        assert_eq!(e.anonymous_id.as_deref(), Some("old"));
        let r = rejection(None, json!({"type": "alias", "userId": "u1"}));
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (ReasonCode::MissingField, Some("previousId"))
        );
    }

    #[test]
    fn group_is_acknowledged_not_stored() {
        let out = translate(
            None,
            &json!({"type": "group", "groupId": "g", "userId": "u"}),
            &envelope(),
        );
        assert_eq!(out, Ok(Translated::Acknowledged(SegmentCall::Group)));
        let r = rejection(None, json!({"type": "group", "userId": "u"}));
        assert_eq!(r.field.as_deref(), Some("groupId"));
    }

    #[test]
    fn survey_tracks_become_survey_events() {
        let e = event(
            Some(SegmentCall::Track),
            json!({"anonymousId": "d", "event": "Survey Responded", "messageId": "m",
                   "properties": {"survey_id": "nps", "answers": {"score": 9}}}),
        );
        match e.body {
            EventBody::Survey {
                survey_id,
                action: SurveyAction::Responded,
                answers: Some(a),
                ..
            } => {
                assert_eq!(survey_id, "nps");
                assert_eq!(a["score"], 9);
            }
            other => panic!("{other:?}"),
        }
        // Without a survey_id it is an ordinary track.
        let plain = event(
            Some(SegmentCall::Track),
            json!({"anonymousId": "d", "event": "Survey Shown", "messageId": "m"}),
        );
        assert!(matches!(plain.body, EventBody::Track { .. }));
    }

    #[test]
    fn batch_sent_at_and_context_apply_to_items() {
        let context = json!({"channel": "mobile", "traits": {"email": "x@y.io"}});
        let sent = json!("2026-03-01T10:00:00Z");
        let env = Envelope {
            batch_sent_at: Some(&sent),
            batch_context: context.as_object(),
            ..envelope()
        };
        let out = translate(
            None,
            &json!({"type": "track", "event": "E", "userId": "u", "messageId": "m",
                    "timestamp": "2026-03-01T09:00:00Z"}),
            &env,
        );
        let Ok(Translated::Event(e)) = out else {
            panic!("{out:?}")
        };
        assert_eq!(e.sent_at.as_deref(), Some("2026-03-01T10:00:00Z"));
        assert_eq!(e.channel, Channel::Mobile);
        assert_eq!(e.email.as_deref(), Some("x@y.io"));
    }

    #[test]
    fn missing_message_id_and_timestamp_are_filled() {
        let e = event(
            Some(SegmentCall::Track),
            json!({"userId": "u", "event": "E"}),
        );
        assert!(e.message_id.starts_with("gen-"));
        assert_eq!(e.timestamp, RECEIVED);
    }

    #[test]
    fn rejections_name_the_segment_field() {
        let r = rejection(Some(SegmentCall::Track), json!({"event": "E"}));
        assert_eq!(r.reason, ReasonCode::NoIdentifier);
        assert!(r.message.contains("`userId`"), "{r}");
        let r = rejection(
            Some(SegmentCall::Track),
            json!({"userId": "null", "event": "E"}),
        );
        assert_eq!(r.field.as_deref(), Some("userId"));
        assert!(r.message.contains("`userId`"), "{r}");
        let r = rejection(
            Some(SegmentCall::Identify),
            json!({"userId": "u", "traits": {"email": "nope"}}),
        );
        assert_eq!(r.field.as_deref(), Some("traits.email"));
        let r = rejection(
            Some(SegmentCall::Track),
            json!({"userId": "u", "event": "E", "timestamp": "yesterday"}),
        );
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (ReasonCode::InvalidField, Some("timestamp"))
        );
        let r = rejection(Some(SegmentCall::Page), json!({"userId": "u", "name": ""}));
        assert_eq!(r.field.as_deref(), Some("name"));
        let r = rejection(
            Some(SegmentCall::Identify),
            json!({"anonymousId": "d", "traits": {"plan": "x"}}),
        );
        assert_eq!(r.reason, ReasonCode::IdentifiedUserRequired);
        let r = rejection(None, json!({"type": "purchase", "userId": "u"}));
        assert_eq!(r.reason, ReasonCode::UnknownType);
        let r = rejection(None, json!({"userId": "u"}));
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (ReasonCode::MissingField, Some("type"))
        );
    }

    #[test]
    fn a_cached_email_that_is_not_plausible_is_left_out_not_rejected() {
        let e = event(
            Some(SegmentCall::Track),
            json!({"userId": "u", "event": "E", "messageId": "m",
                   "context": {"traits": {"email": "not an email"}}}),
        );
        assert_eq!(e.email, None);
        assert_eq!(e.user_id.as_deref(), Some("u"));
        // The identify call's own traits.email is still checked.
        let r = rejection(
            Some(SegmentCall::Identify),
            json!({"userId": "u", "traits": {"email": "not an email"}}),
        );
        assert_eq!(r.field.as_deref(), Some("traits.email"));
    }

    #[test]
    fn a_message_naming_another_workspace_is_refused() {
        let r = rejection(
            Some(SegmentCall::Track),
            json!({"userId": "u", "event": "E", "workspaceId": "other"}),
        );
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (ReasonCode::WrongWorkspace, Some("workspaceId"))
        );
        event(
            Some(SegmentCall::Track),
            json!({"userId": "u", "event": "E", "workspaceId": "acme"}),
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z@. 0-9:-]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("userId".to_owned()),
                        Just("anonymousId".to_owned()),
                        Just("previousId".to_owned()),
                        Just("traits".to_owned()),
                        Just("email".to_owned()),
                        Just("context".to_owned()),
                        Just("event".to_owned()),
                        Just("name".to_owned()),
                        Just("timestamp".to_owned()),
                        Just("sentAt".to_owned()),
                        Just("properties".to_owned()),
                        Just("survey_id".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON at all: a result, never a panic; an accepted message is
        /// in the key's workspace, stamped with the receive time.
        #[test]
        fn any_message_gets_an_answer(message in json_value(), which in 0usize..7) {
            let call = SegmentCall::ALL.get(which).copied();
            if let Ok(Translated::Event(e)) = translate(call, &message, &envelope()) {
                prop_assert_eq!(e.workspace_id.as_str(), "acme");
                prop_assert_eq!(e.received_at.as_deref(), Some(RECEIVED));
            }
        }

        /// Translation is a function: the same message and envelope give the
        /// same event (a retried request folds as a duplicate).
        #[test]
        fn translation_is_deterministic(message in json_value(), which in 0usize..7) {
            let call = SegmentCall::ALL.get(which).copied();
            prop_assert_eq!(
                translate(call, &message, &envelope()),
                translate(call, &message, &envelope())
            );
        }
    }
}
