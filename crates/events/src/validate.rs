//! Validation at the edge: turns untrusted bytes or JSON values into an
//! [`Event`], or a [`Rejection`] that says which field is wrong and why.
//!
//! Checks run in a fixed order and the first failure is reported: `type`,
//! `message_id`, `workspace_id`, `timestamp`, `sent_at`, `received_at`,
//! `channel`, `user_id`, `email`, `anonymous_id`, at least one identifier,
//! the type-specific fields, and the identified-user rules. JSON `null` for a
//! field means the field is absent; unknown extra fields are ignored.
//!
//! Nothing here panics on any input.

use serde_json::{Map, Value};

use crate::avro::{decode_avro, is_avro_single_object};
use crate::error::{ReasonCode, Rejection};
use crate::identifier::{normalize_identifier, InvalidIdentifier};
use crate::model::{
    Channel, Event, EventBody, EventKind, IdentifierKind, SurveyAction, MAX_EVENT_BYTES,
};
use crate::time::{
    format_nanos, format_wide_nanos, in_event_time_range, parse_event_time, parse_rfc3339,
    EventTime, TimeProblem, EVENT_TIME_RANGE,
};

/// How far past `received_at` a (skew-corrected) event time may lie before it
/// is capped to `received_at`.
const MAX_FUTURE_NANOS: i64 = 24 * 60 * 60 * 1_000_000_000;

const MAX_MESSAGE_ID_CHARS: usize = 200;
const MAX_WORKSPACE_ID_CHARS: usize = 64;
const MAX_NAME_CHARS: usize = 200;

const TIMESTAMP_HINT: &str =
    "must be an RFC 3339 timestamp with an offset, e.g. 2026-01-31T12:00:00Z";

/// Decodes an event in either codec: Avro single-object encoding when the
/// bytes start with [`crate::AVRO_MAGIC`], JSON otherwise.
pub fn decode_event(bytes: &[u8]) -> Result<Event, Rejection> {
    if is_avro_single_object(bytes) {
        decode_avro(bytes)
    } else {
        decode_json(bytes)
    }
}

/// Decodes and validates one JSON event.
pub fn decode_json(bytes: &[u8]) -> Result<Event, Rejection> {
    validate_value(&parse_json_event(bytes)?)
}

/// The first half of [`decode_json`]: size, UTF-8, JSON, and an object at
/// the top; for edges that fill in a field before validating (the HTTP
/// edge's workspace).
pub fn parse_json_event(bytes: &[u8]) -> Result<Value, Rejection> {
    check_size(bytes.len())?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            ReasonCode::InvalidJson,
            None,
            format!(
                "the event is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Rejection::new(
            ReasonCode::InvalidJson,
            None,
            format!("the event is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(Rejection::new(
            ReasonCode::InvalidJson,
            None,
            format!(
                "an event must be a JSON object, not {}",
                json_type_name(&value)
            ),
        ));
    }
    Ok(value)
}

/// Rejects inputs larger than [`MAX_EVENT_BYTES`].
pub(crate) fn check_size(len: usize) -> Result<(), Rejection> {
    if len > MAX_EVENT_BYTES {
        Err(Rejection::new(
            ReasonCode::TooLarge,
            None,
            format!("the event is {len} bytes; the limit is 32 KiB ({MAX_EVENT_BYTES} bytes)"),
        ))
    } else {
        Ok(())
    }
}

/// Validates a JSON value as an event; see the module docs for the rules.
pub fn validate_value(value: &Value) -> Result<Event, Rejection> {
    let Some(obj) = value.as_object() else {
        return Err(Rejection::new(
            ReasonCode::InvalidJson,
            None,
            format!(
                "an event must be a JSON object, not {}",
                json_type_name(value)
            ),
        ));
    };

    let kind = event_kind(obj)?;
    let message_id = required_name(obj, "message_id", MAX_MESSAGE_ID_CHARS)?;
    let workspace_id = workspace_id(obj)?;
    let (timestamp, timestamp_nanos) = required_time(obj, "timestamp")?;
    let sent_at = optional_time(obj, "sent_at")?;
    let received_at = optional_time(obj, "received_at")?;
    let channel = channel(obj)?;
    let user_id = identifier(obj, IdentifierKind::User)?;
    let email = identifier(obj, IdentifierKind::Email)?;
    let anonymous_id = identifier(obj, IdentifierKind::Anonymous)?;

    if user_id.is_none() && email.is_none() && anonymous_id.is_none() {
        return Err(no_identifier());
    }

    let body = body(kind, obj)?;

    let identified = user_id.is_some() || email.is_some();
    if !identified && matches!(kind, EventKind::Identify | EventKind::Traits) {
        return Err(Rejection::new(
            ReasonCode::IdentifiedUserRequired,
            None,
            format!(
                "a `{}` event needs `user_id` or `email`; `anonymous_id` alone is not enough",
                kind.as_str()
            ),
        ));
    }
    if !identified && channel == Channel::Mobile {
        return Err(Rejection::new(
            ReasonCode::IdentifiedUserRequired,
            None,
            "an event on `channel` mobile needs `user_id` or `email`; `anonymous_id` alone is not enough",
        ));
    }

    let event_time = event_time(
        timestamp_nanos,
        sent_at.as_ref().map(|(_, t)| *t),
        received_at.as_ref().map(|(_, t)| *t),
    )
    .map_err(|corrected| {
        skew_out_of_range(
            corrected,
            sent_at.as_ref().map(|(s, _)| s.as_str()),
            received_at.as_ref().map(|(s, _)| s.as_str()),
        )
    })?;

    Ok(Event {
        message_id,
        workspace_id,
        timestamp,
        sent_at: sent_at.map(|(s, _)| s),
        received_at: received_at.map(|(s, _)| s),
        channel,
        user_id,
        email,
        anonymous_id,
        body,
        event_time,
    })
}

pub(crate) fn no_identifier() -> Rejection {
    Rejection::new(
        ReasonCode::NoIdentifier,
        None,
        "an event needs at least one of `user_id`, `email` or `anonymous_id`",
    )
}

/// The event time: `timestamp` corrected for client clock skew, then capped,
/// or `Err` with the corrected time when that falls outside
/// [`EVENT_TIME_RANGE`] (a `sent_at` on another clock than `timestamp`).
///
/// When both `sent_at` (client clock) and `received_at` (server clock) are
/// known, their difference is the client's skew and is added to `timestamp`.
/// A result more than 24 hours after `received_at` is not believable and is
/// replaced by `received_at`. Computed exactly (in `i128`): never saturates.
pub fn event_time(
    timestamp: i64,
    sent_at: Option<i64>,
    received_at: Option<i64>,
) -> Result<EventTime, i128> {
    let mut t = i128::from(timestamp);
    if let (Some(sent), Some(received)) = (sent_at, received_at) {
        t += i128::from(received) - i128::from(sent);
    }
    if let Some(received) = received_at {
        if t > i128::from(received) + i128::from(MAX_FUTURE_NANOS) {
            t = i128::from(received);
        }
    }
    match EventTime::try_from(t) {
        Ok(time) if in_event_time_range(t) => Ok(time),
        _ => Err(t),
    }
}

/// The rejection of an event whose skew-corrected time left the range.
pub(crate) fn skew_out_of_range(
    corrected: i128,
    sent_at: Option<&str>,
    received_at: Option<&str>,
) -> Rejection {
    let corrected = format_wide_nanos(corrected);
    match (sent_at, received_at) {
        (Some(sent), Some(received)) => Rejection::invalid(
            "sent_at",
            format_args!(
                "{sent} is so far from `received_at` {received} that the event time corrected \
                 for clock skew (`timestamp` + `received_at` - `sent_at` = {corrected}) is \
                 outside {EVENT_TIME_RANGE}; send `sent_at` from the clock `timestamp` was read from"
            ),
        ),
        // Without a correction the time is `timestamp` (or `received_at`),
        // both checked on their own already.
        _ => Rejection::invalid(
            "timestamp",
            format_args!("gives the event time {corrected}, outside {EVENT_TIME_RANGE}"),
        ),
    }
}

/// Stamps `received_at` on an event that arrived without one, from its
/// transport's receive time (a Kafka record's timestamp, the server's
/// clock), and derives the event time again with it. An event that has one
/// keeps it: the stamp is a function of the record, so a re-delivery stamps
/// the same value. Refused, leaving the event as it was, when the receive
/// time or the corrected event time is outside [`EVENT_TIME_RANGE`].
pub fn stamp_received_at(event: &mut Event, received: EventTime) -> Result<(), Rejection> {
    if event.received_at.is_some() {
        return Ok(());
    }
    let (Some(timestamp), sent_at) = (
        parse_rfc3339(&event.timestamp),
        event.sent_at.as_deref().and_then(parse_rfc3339),
    ) else {
        return Ok(());
    };
    let stamp = format_nanos(received);
    if !in_event_time_range(i128::from(received)) {
        return Err(Rejection::invalid(
            "received_at",
            format_args!("{stamp} (the time it was received) is outside {EVENT_TIME_RANGE}"),
        ));
    }
    event.event_time = event_time(timestamp, sent_at, Some(received)).map_err(|corrected| {
        skew_out_of_range(corrected, event.sent_at.as_deref(), Some(&stamp))
    })?;
    event.received_at = Some(stamp);
    Ok(())
}

// ---------------------------------------------------------------------------
// Field helpers

/// The field's value, with JSON `null` meaning absent.
fn get<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// `a string`, `an object`...: for messages that say what was sent instead.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a value for messages (long values are cut).
fn show(value: &Value) -> String {
    const MAX: usize = 64;
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn required_string<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, Rejection> {
    match get(obj, name) {
        None => Err(Rejection::missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Rejection::invalid(
            name,
            format_args!("must be a string, not {}", json_type_name(other)),
        )),
    }
}

/// An optional string field (`null` meaning absent), as `optional_object`.
pub fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, Rejection> {
    match get(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Rejection::invalid(
            name,
            format_args!("must be a string, not {}", json_type_name(other)),
        )),
    }
}

fn check_length(name: &str, text: &str, max: usize) -> Result<(), Rejection> {
    let chars = text.chars().count();
    if chars == 0 {
        Err(Rejection::invalid(name, "must not be empty"))
    } else if chars > max {
        Err(Rejection::invalid(
            name,
            format_args!("must be at most {max} characters, not {chars}"),
        ))
    } else {
        Ok(())
    }
}

/// A required string of 1..=max characters.
fn required_name(obj: &Map<String, Value>, name: &str, max: usize) -> Result<String, Rejection> {
    let text = required_string(obj, name)?;
    check_length(name, text, max)?;
    Ok(text.to_owned())
}

/// An optional string of 1..=max characters.
fn optional_name(
    obj: &Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<String>, Rejection> {
    match optional_string(obj, name)? {
        None => Ok(None),
        Some(text) => {
            check_length(name, text, max)?;
            Ok(Some(text.to_owned()))
        }
    }
}

fn required_object(obj: &Map<String, Value>, name: &str) -> Result<Map<String, Value>, Rejection> {
    optional_object(obj, name)?
        .cloned()
        .ok_or_else(|| Rejection::missing(name))
}

/// An optional JSON object field (`null` meaning absent); for the edges
/// that read fields of their own formats (Segment's) the same way.
pub fn optional_object<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, Rejection> {
    match get(obj, name) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(Rejection::invalid(
            name,
            format_args!("must be a JSON object, not {}", json_type_name(other)),
        )),
    }
}

// ---------------------------------------------------------------------------
// The checks, in order

fn event_kind(obj: &Map<String, Value>) -> Result<EventKind, Rejection> {
    let allowed = EventKind::ALL.map(EventKind::as_str).join(", ");
    let unknown = |shown: String| {
        Rejection::new(
            ReasonCode::UnknownType,
            Some("type"),
            format!("`type` {shown} is not one of {allowed}"),
        )
    };
    match get(obj, "type") {
        None => Err(Rejection::missing("type")),
        Some(Value::String(s)) => EventKind::parse(s)
            .ok_or_else(|| unknown(format!("\"{}\"", show(&Value::String(s.clone()))))),
        Some(other) => Err(unknown(show(other))),
    }
}

fn workspace_id(obj: &Map<String, Value>) -> Result<String, Rejection> {
    let text = required_string(obj, "workspace_id")?;
    check_workspace_id(text)?;
    Ok(text.to_owned())
}

/// The workspace-id rule, for every place an id enters (events, CLI flags).
pub fn check_workspace_id(text: &str) -> Result<(), Rejection> {
    let name = "workspace_id";
    check_length(name, text, MAX_WORKSPACE_ID_CHARS)?;
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Rejection::invalid(
            name,
            "may only contain ASCII letters, digits, `_` and `-`",
        ));
    }
    Ok(())
}

pub(crate) fn parse_time(name: &str, text: &str) -> Result<EventTime, Rejection> {
    parse_event_time(text).map_err(|problem| match problem {
        TimeProblem::Malformed => Rejection::invalid(name, TIMESTAMP_HINT),
        TimeProblem::OutOfRange => Rejection::invalid(
            name,
            format_args!(
                "{} is outside the times idfold accepts: {EVENT_TIME_RANGE}",
                show(&Value::from(text))
            ),
        ),
    })
}

fn required_time(obj: &Map<String, Value>, name: &str) -> Result<(String, EventTime), Rejection> {
    let text = required_string(obj, name)?;
    Ok((text.to_owned(), parse_time(name, text)?))
}

fn optional_time(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Option<(String, EventTime)>, Rejection> {
    match optional_string(obj, name)? {
        None => Ok(None),
        Some(text) => Ok(Some((text.to_owned(), parse_time(name, text)?))),
    }
}

fn channel(obj: &Map<String, Value>) -> Result<Channel, Rejection> {
    match optional_string(obj, "channel")? {
        None => Ok(Channel::default()),
        Some(text) => Channel::parse(text).ok_or_else(|| {
            let allowed = Channel::ALL.map(Channel::as_str).join(", ");
            Rejection::invalid(
                "channel",
                format_args!("\"{}\" is not one of {allowed}", show(&Value::from(text))),
            )
        }),
    }
}

/// `user_id`, `email`, `anonymous_id`: kept in their normalised form (see
/// [`crate::normalize_identifier`]), so that every edge and every lookup
/// compares the same strings.
fn identifier(obj: &Map<String, Value>, kind: IdentifierKind) -> Result<Option<String>, Rejection> {
    normalized_identifier(kind, optional_string(obj, kind.field())?)
}

/// An identifier field's value in its normalised form, or why it has none.
pub(crate) fn normalized_identifier(
    kind: IdentifierKind,
    text: Option<&str>,
) -> Result<Option<String>, Rejection> {
    let name = kind.field();
    let Some(text) = text else {
        return Ok(None);
    };
    normalize_identifier(kind, text)
        .map(Some)
        .map_err(|why| match why {
            InvalidIdentifier::Placeholder(_) => {
                Rejection::invalid(name, format_args!("{why}; omit the field instead"))
            }
            why => Rejection::invalid(name, why),
        })
}

/// Whether an email would be accepted.
pub fn is_plausible_email(text: &str) -> bool {
    normalize_identifier(IdentifierKind::Email, text).is_ok()
}

fn body(kind: EventKind, obj: &Map<String, Value>) -> Result<EventBody, Rejection> {
    match kind {
        EventKind::Identify => Ok(EventBody::Identify {
            traits: optional_object(obj, "traits")?.cloned(),
        }),
        EventKind::Traits => Ok(EventBody::Traits {
            traits: required_object(obj, "traits")?,
            set_once: optional_object(obj, "set_once")?.cloned(),
            unset: unset(obj)?,
        }),
        EventKind::Track => Ok(EventBody::Track {
            event: required_name(obj, "event", MAX_NAME_CHARS)?,
            properties: optional_object(obj, "properties")?.cloned(),
        }),
        EventKind::Survey => Ok(EventBody::Survey {
            survey_id: required_name(obj, "survey_id", MAX_NAME_CHARS)?,
            action: survey_action(obj)?,
            response_id: optional_name(obj, "response_id", MAX_NAME_CHARS)?,
            answers: optional_object(obj, "answers")?.cloned(),
            context: optional_object(obj, "context")?.cloned(),
        }),
    }
}

fn unset(obj: &Map<String, Value>) -> Result<Option<Vec<String>>, Rejection> {
    let name = "unset";
    match get(obj, name) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(Rejection::invalid(
                    name,
                    format_args!(
                        "must be an array of strings, but item {i} is {}",
                        json_type_name(other)
                    ),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(Rejection::invalid(
            name,
            format_args!("must be an array of strings, not {}", json_type_name(other)),
        )),
    }
}

fn survey_action(obj: &Map<String, Value>) -> Result<SurveyAction, Rejection> {
    let name = "action";
    let text = required_string(obj, name)?;
    SurveyAction::parse(text).ok_or_else(|| {
        let allowed = SurveyAction::ALL.map(SurveyAction::as_str).join(", ");
        Rejection::invalid(
            name,
            format_args!("\"{}\" is not one of {allowed}", show(&Value::from(text))),
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::time::{EVENT_TIME_END, EVENT_TIME_MIN};
    use proptest::prelude::*;
    use serde_json::json;

    const HOUR: i64 = 3_600 * 1_000_000_000;

    fn base(kind: &str) -> Value {
        let mut v = json!({
            "type": kind,
            "message_id": "m-1",
            "workspace_id": "ws_1",
            "timestamp": "2026-01-31T12:00:00Z",
            "user_id": "u-1",
        });
        match kind {
            "traits" => v["traits"] = json!({"plan": "pro"}),
            "track" => v["event"] = json!("Signed Up"),
            "survey" => {
                v["survey_id"] = json!("s-1");
                v["action"] = json!("shown");
            }
            _ => {}
        }
        v
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        if let Some(m) = v.as_object_mut() {
            m.remove(key);
        }
        v
    }

    fn reject(v: &Value) -> Rejection {
        match validate_value(v) {
            Ok(e) => panic!("expected a rejection for {v}, got {e:?}"),
            Err(r) => r,
        }
    }

    fn accept(v: &Value) -> Event {
        match validate_value(v) {
            Ok(e) => e,
            Err(r) => panic!("expected {v} to be accepted, got {r}"),
        }
    }

    fn assert_reason(v: &Value, reason: ReasonCode, field: Option<&str>) -> Rejection {
        let r = reject(v);
        assert_eq!(r.reason, reason, "{v} -> {r}");
        assert_eq!(r.field.as_deref(), field, "{v} -> {r}");
        if let Some(f) = field {
            assert!(
                r.message.contains(&format!("`{f}`")),
                "message names the field: {r}"
            );
        }
        r
    }

    // --- codecs and sizes ---

    #[test]
    fn accepts_every_kind() {
        for kind in ["identify", "traits", "track", "survey"] {
            let e = accept(&base(kind));
            assert_eq!(e.kind().as_str(), kind);
            assert_eq!(e.channel, Channel::Api);
            let bytes = base(kind).to_string();
            assert_eq!(decode_json(bytes.as_bytes()), Ok(e.clone()));
            assert_eq!(decode_event(bytes.as_bytes()), Ok(e));
        }
    }

    #[test]
    fn too_large() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let v = with(base("track"), "properties", json!({ "pad": big }));
        let bytes = v.to_string();
        let r = decode_json(bytes.as_bytes()).expect_err("too large");
        assert_eq!(r.reason, ReasonCode::TooLarge);
        assert!(r.message.contains("32 KiB"), "{r}");
        assert!(r.message.contains(&bytes.len().to_string()), "{r}");
        let r = decode_event(bytes.as_bytes()).expect_err("too large");
        assert_eq!(r.reason, ReasonCode::TooLarge);

        // Exactly at the limit is fine size-wise.
        let exact = vec![b' '; MAX_EVENT_BYTES];
        assert_eq!(
            decode_json(&exact).map_err(|r| r.reason),
            Err(ReasonCode::InvalidJson)
        );
    }

    #[test]
    fn invalid_json() {
        for bytes in [
            &b"{"[..],
            b"",
            b"not json",
            b"{\"type\":}",
            b"\xff\xfe{}",
            b"{\"a\":\"\xc3\x28\"}",
        ] {
            let r = decode_json(bytes).expect_err("invalid");
            assert_eq!(r.reason, ReasonCode::InvalidJson, "{r}");
            assert_eq!(r.field, None);
        }
        for bytes in [&b"[]"[..], b"1", b"\"event\"", b"null", b"true"] {
            let r = decode_json(bytes).expect_err("not an object");
            assert_eq!(r.reason, ReasonCode::InvalidJson);
            assert!(r.message.contains("an event must be a JSON object"), "{r}");
        }
        let r = validate_value(&json!([1])).expect_err("not an object");
        assert_eq!(r.reason, ReasonCode::InvalidJson);
    }

    #[test]
    fn deep_nesting_is_rejected_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let r = decode_json(deep.as_bytes()).expect_err("too deep");
        assert_eq!(r.reason, ReasonCode::InvalidJson);
    }

    // --- type ---

    #[test]
    fn type_rules() {
        assert_reason(
            &without(base("track"), "type"),
            ReasonCode::MissingField,
            Some("type"),
        );
        assert_reason(
            &with(base("track"), "type", Value::Null),
            ReasonCode::MissingField,
            Some("type"),
        );
        let r = assert_reason(
            &with(base("track"), "type", json!("page")),
            ReasonCode::UnknownType,
            Some("type"),
        );
        assert!(r.message.contains("page"), "{r}");
        for allowed in ["identify", "traits", "track", "survey"] {
            assert!(r.message.contains(allowed), "{r}");
        }
        assert_reason(
            &with(base("track"), "type", json!("Track")),
            ReasonCode::UnknownType,
            Some("type"),
        );
        assert_reason(
            &with(base("track"), "type", json!(7)),
            ReasonCode::UnknownType,
            Some("type"),
        );
    }

    // --- message_id, workspace_id ---

    #[test]
    fn message_id_rules() {
        assert_reason(
            &without(base("track"), "message_id"),
            ReasonCode::MissingField,
            Some("message_id"),
        );
        assert_reason(
            &with(base("track"), "message_id", json!("")),
            ReasonCode::InvalidField,
            Some("message_id"),
        );
        assert_reason(
            &with(base("track"), "message_id", json!(12)),
            ReasonCode::InvalidField,
            Some("message_id"),
        );
        assert_reason(
            &with(base("track"), "message_id", json!("x".repeat(201))),
            ReasonCode::InvalidField,
            Some("message_id"),
        );
        // 200 characters, many more bytes: counted in characters.
        let e = accept(&with(base("track"), "message_id", json!("é".repeat(200))));
        assert_eq!(e.message_id.chars().count(), 200);
    }

    #[test]
    fn workspace_id_rules() {
        assert_reason(
            &without(base("track"), "workspace_id"),
            ReasonCode::MissingField,
            Some("workspace_id"),
        );
        for bad in [
            json!(""),
            json!("a b"),
            json!("ws.1"),
            json!("é"),
            json!("x".repeat(65)),
            json!(1),
        ] {
            assert_reason(
                &with(base("track"), "workspace_id", bad),
                ReasonCode::InvalidField,
                Some("workspace_id"),
            );
        }
        accept(&with(
            base("track"),
            "workspace_id",
            json!("A-z_09".repeat(10)),
        ));
        accept(&with(base("track"), "workspace_id", json!("x".repeat(64))));
    }

    // --- timestamps ---

    #[test]
    fn timestamp_rules() {
        assert_reason(
            &without(base("track"), "timestamp"),
            ReasonCode::MissingField,
            Some("timestamp"),
        );
        for bad in [
            json!("2026-01-31T12:00:00"),
            json!("yesterday"),
            json!(""),
            json!(1_700_000_000),
        ] {
            let r = reject(&with(base("track"), "timestamp", bad));
            assert_eq!(r.reason, ReasonCode::InvalidField);
            assert_eq!(r.field.as_deref(), Some("timestamp"));
        }
        let r = reject(&with(base("track"), "timestamp", json!("2026-01-31")));
        assert_eq!(
            r.message,
            "`timestamp` must be an RFC 3339 timestamp with an offset, e.g. 2026-01-31T12:00:00Z"
        );
        let e = accept(&with(
            base("track"),
            "timestamp",
            json!("2026-01-31T13:00:00+01:00"),
        ));
        assert_eq!(e.timestamp, "2026-01-31T13:00:00+01:00", "kept as sent");
        assert_eq!(Some(e.event_time), parse_rfc3339("2026-01-31T12:00:00Z"));
    }

    #[test]
    fn sent_at_and_received_at_rules() {
        for name in ["sent_at", "received_at"] {
            assert_reason(
                &with(base("track"), name, json!("soon")),
                ReasonCode::InvalidField,
                Some(name),
            );
            assert_reason(
                &with(base("track"), name, json!(5)),
                ReasonCode::InvalidField,
                Some(name),
            );
            let e = accept(&with(base("track"), name, Value::Null));
            assert_eq!((e.sent_at, e.received_at), (None, None));
        }
    }

    #[test]
    fn checks_run_in_order() {
        // Everything wrong: type is reported first, and so on down the list.
        let mut v = json!({
            "type": "nope", "message_id": "", "workspace_id": "!", "timestamp": "x",
            "sent_at": "x", "received_at": "x", "channel": "fax", "user_id": "null",
            "email": "bad", "anonymous_id": "guest",
        });
        let order = [
            ("type", ReasonCode::UnknownType, json!("track")),
            ("message_id", ReasonCode::InvalidField, json!("m")),
            ("workspace_id", ReasonCode::InvalidField, json!("w")),
            (
                "timestamp",
                ReasonCode::InvalidField,
                json!("2026-01-31T12:00:00Z"),
            ),
            ("sent_at", ReasonCode::InvalidField, Value::Null),
            ("received_at", ReasonCode::InvalidField, Value::Null),
            ("channel", ReasonCode::InvalidField, json!("mobile")),
            ("user_id", ReasonCode::InvalidField, Value::Null),
            ("email", ReasonCode::InvalidField, Value::Null),
            ("anonymous_id", ReasonCode::InvalidField, Value::Null),
        ];
        for (field, reason, fix) in order {
            let r = reject(&v);
            assert_eq!((r.reason, r.field.as_deref()), (reason, Some(field)), "{r}");
            v[field] = fix;
        }
        assert_eq!(reject(&v).reason, ReasonCode::NoIdentifier);
        v["anonymous_id"] = json!("d-1");
        // Type-specific fields come before the identified-user rule.
        let r = reject(&v);
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (ReasonCode::MissingField, Some("event"))
        );
        v["event"] = json!("Opened");
        assert_eq!(reject(&v).reason, ReasonCode::IdentifiedUserRequired);
        v["channel"] = json!("web");
        accept(&v);
    }

    // --- channel ---

    #[test]
    fn channel_rules() {
        for c in Channel::ALL {
            assert_eq!(
                accept(&with(base("track"), "channel", json!(c.as_str()))).channel,
                c
            );
        }
        assert_eq!(
            accept(&with(base("track"), "channel", Value::Null)).channel,
            Channel::Api
        );
        let r = assert_reason(
            &with(base("track"), "channel", json!("sms")),
            ReasonCode::InvalidField,
            Some("channel"),
        );
        assert!(
            r.message.contains("sms") && r.message.contains("mobile"),
            "{r}"
        );
        assert_reason(
            &with(base("track"), "channel", json!("Web")),
            ReasonCode::InvalidField,
            Some("channel"),
        );
        assert_reason(
            &with(base("track"), "channel", json!(["web"])),
            ReasonCode::InvalidField,
            Some("channel"),
        );
    }

    // --- identifiers ---

    #[test]
    fn every_placeholder_is_rejected_for_both_identifiers() {
        for name in ["user_id", "anonymous_id"] {
            for p in crate::PLACEHOLDER_IDENTIFIERS {
                let fullwidth: String = p
                    .chars()
                    .map(|c| match c {
                        '!'..='~' => char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c),
                        other => other,
                    })
                    .collect();
                let variants = [
                    p.to_owned(),
                    p.to_ascii_uppercase(),
                    format!("  {p} "),
                    fullwidth,
                    p.chars()
                        .enumerate()
                        .map(|(i, c)| {
                            if i % 2 == 0 {
                                c.to_ascii_uppercase()
                            } else {
                                c
                            }
                        })
                        .collect(),
                ];
                for text in variants {
                    let v = with(base("track"), name, json!(text));
                    let r = assert_reason(&v, ReasonCode::InvalidField, Some(name));
                    assert!(r.message.contains("placeholder"), "{r}");
                }
            }
        }
    }

    #[test]
    fn identifier_rules() {
        for name in ["user_id", "anonymous_id"] {
            for bad in [
                json!(""),
                json!("   "),
                json!("\t\n"),
                json!("\u{200B}"),
                json!("null\u{200B}"),
                json!("ｎｕｌｌ"),
                json!("nil"),
                json!("u\u{0000}1"),
                json!(42),
                json!(true),
                json!({"id": 1}),
                json!("x".repeat(257)),
            ] {
                assert_reason(
                    &with(base("track"), name, bad),
                    ReasonCode::InvalidField,
                    Some(name),
                );
            }
            // Near-misses of placeholders are real identifiers; what reads
            // the same is stored the same.
            for (sent, stored) in [
                (" u-1 ", "u-1"),
                ("nullable", "nullable"),
                ("00", "00"),
                ("guest-42", "guest-42"),
                ("ｕ１", "u1"),
                ("e\u{0301}", "\u{00E9}"),
                ("U1", "U1"),
                (&"x".repeat(256), &"x".repeat(256)),
                (&"ü".repeat(256), &"ü".repeat(256)),
            ] {
                let e = accept(&with(base("track"), name, json!(sent)));
                let got = if name == "user_id" {
                    e.user_id
                } else {
                    e.anonymous_id
                };
                assert_eq!(got.as_deref(), Some(stored), "{sent:?}");
            }
        }
        let r = reject(&with(base("track"), "user_id", json!("null\u{200B}")));
        assert_eq!(
            r.message,
            "`user_id` contains the invisible character U+200B; an identifier is visible text only"
        );
    }

    #[test]
    fn email_rules() {
        let e = accept(&with(
            without(base("track"), "user_id"),
            "email",
            json!("  Ada.L@Example.COM "),
        ));
        assert_eq!(e.email.as_deref(), Some("ada.l@example.com"));
        for same in ["Ｕ１@example.com", "u1@example.com", "U1@Example.COM"] {
            let e = accept(&with(base("track"), "email", json!(same)));
            assert_eq!(e.email.as_deref(), Some("u1@example.com"), "{same}");
        }
        assert_eq!(
            crate::Identifier::strongest(
                e.user_id.as_deref(),
                e.email.as_deref(),
                e.anonymous_id.as_deref()
            )
            .to_string(),
            "email:ada.l@example.com"
        );
        let long_ok = format!("{}@example.com", "a".repeat(254 - 12));
        accept(&with(base("track"), "email", json!(long_ok)));
        let too_long = format!("{}@example.com", "a".repeat(254 - 11));
        let bad = [
            json!(""),
            json!("   "),
            json!("ada"),
            json!("ada@"),
            json!("@example.com"),
            json!("ada@@example.com"),
            json!("a@b@example.com"),
            json!("ada@example"),
            json!("ada@.example.com"),
            json!("ada@example.com."),
            json!("ada@example..com"),
            json!("ada lovelace@example.com"),
            json!("ada@exa\u{0007}mple.com"),
            json!("ada@exa\u{00a0}mple.com"),
            json!("u1\u{200B}@example.com"),
            json!(too_long),
            json!(7),
            json!(["ada@example.com"]),
        ];
        for b in bad {
            assert_reason(
                &with(base("track"), "email", b),
                ReasonCode::InvalidField,
                Some("email"),
            );
        }
    }

    #[test]
    fn no_identifier() {
        let v = without(base("track"), "user_id");
        let r = assert_reason(&v, ReasonCode::NoIdentifier, None);
        assert!(
            r.message.contains("user_id") && r.message.contains("anonymous_id"),
            "{r}"
        );
        let v = with(
            with(without(base("track"), "user_id"), "email", Value::Null),
            "anonymous_id",
            Value::Null,
        );
        assert_reason(&v, ReasonCode::NoIdentifier, None);
        accept(&with(
            without(base("track"), "user_id"),
            "anonymous_id",
            json!("d-1"),
        ));
    }

    // --- type-specific fields ---

    #[test]
    fn identify_rules() {
        let e = accept(&base("identify"));
        assert_eq!(e.body, EventBody::Identify { traits: None });
        let e = accept(&with(base("identify"), "traits", json!({"name": "Ada"})));
        assert!(matches!(e.body, EventBody::Identify { traits: Some(t) } if t["name"] == "Ada"));
        for bad in [json!("x"), json!([1]), json!(1)] {
            assert_reason(
                &with(base("identify"), "traits", bad),
                ReasonCode::InvalidField,
                Some("traits"),
            );
        }
    }

    #[test]
    fn traits_rules() {
        assert_reason(
            &without(base("traits"), "traits"),
            ReasonCode::MissingField,
            Some("traits"),
        );
        assert_reason(
            &with(base("traits"), "traits", Value::Null),
            ReasonCode::MissingField,
            Some("traits"),
        );
        assert_reason(
            &with(base("traits"), "traits", json!("plan=pro")),
            ReasonCode::InvalidField,
            Some("traits"),
        );
        assert_reason(
            &with(base("traits"), "set_once", json!([])),
            ReasonCode::InvalidField,
            Some("set_once"),
        );
        assert_reason(
            &with(base("traits"), "unset", json!("plan")),
            ReasonCode::InvalidField,
            Some("unset"),
        );
        assert_reason(
            &with(base("traits"), "unset", json!(["plan", 1])),
            ReasonCode::InvalidField,
            Some("unset"),
        );
        let v = with(
            with(base("traits"), "set_once", json!({"first": 1})),
            "unset",
            json!(["old"]),
        );
        let e = accept(&v);
        match e.body {
            EventBody::Traits {
                traits,
                set_once,
                unset,
            } => {
                assert_eq!(traits["plan"], "pro");
                assert_eq!(set_once.map(|m| m["first"].clone()), Some(json!(1)));
                assert_eq!(unset, Some(vec!["old".to_owned()]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn track_rules() {
        assert_reason(
            &without(base("track"), "event"),
            ReasonCode::MissingField,
            Some("event"),
        );
        assert_reason(
            &with(base("track"), "event", json!("")),
            ReasonCode::InvalidField,
            Some("event"),
        );
        assert_reason(
            &with(base("track"), "event", json!("e".repeat(201))),
            ReasonCode::InvalidField,
            Some("event"),
        );
        assert_reason(
            &with(base("track"), "event", json!(3)),
            ReasonCode::InvalidField,
            Some("event"),
        );
        assert_reason(
            &with(base("track"), "properties", json!([])),
            ReasonCode::InvalidField,
            Some("properties"),
        );
        let e = accept(&with(
            base("track"),
            "properties",
            json!({"k": [1, 2.5, null]}),
        ));
        assert!(
            matches!(e.body, EventBody::Track { ref event, properties: Some(_) } if event == "Signed Up")
        );
    }

    #[test]
    fn survey_rules() {
        assert_reason(
            &without(base("survey"), "survey_id"),
            ReasonCode::MissingField,
            Some("survey_id"),
        );
        assert_reason(
            &with(base("survey"), "survey_id", json!("")),
            ReasonCode::InvalidField,
            Some("survey_id"),
        );
        assert_reason(
            &with(base("survey"), "survey_id", json!("s".repeat(201))),
            ReasonCode::InvalidField,
            Some("survey_id"),
        );
        assert_reason(
            &without(base("survey"), "action"),
            ReasonCode::MissingField,
            Some("action"),
        );
        let r = assert_reason(
            &with(base("survey"), "action", json!("clicked")),
            ReasonCode::InvalidField,
            Some("action"),
        );
        assert!(
            r.message.contains("clicked") && r.message.contains("responded"),
            "{r}"
        );
        assert_reason(
            &with(base("survey"), "action", json!(1)),
            ReasonCode::InvalidField,
            Some("action"),
        );
        assert_reason(
            &with(base("survey"), "response_id", json!("")),
            ReasonCode::InvalidField,
            Some("response_id"),
        );
        assert_reason(
            &with(base("survey"), "response_id", json!("r".repeat(201))),
            ReasonCode::InvalidField,
            Some("response_id"),
        );
        assert_reason(
            &with(base("survey"), "answers", json!("yes")),
            ReasonCode::InvalidField,
            Some("answers"),
        );
        assert_reason(
            &with(base("survey"), "context", json!(1)),
            ReasonCode::InvalidField,
            Some("context"),
        );
        for a in SurveyAction::ALL {
            let e = accept(&with(base("survey"), "action", json!(a.as_str())));
            assert!(matches!(e.body, EventBody::Survey { action, .. } if action == a));
        }
        let responded = with(base("survey"), "action", json!("responded"));
        assert_eq!(accept(&responded).response_id(), Some("m-1"));
        let e = accept(&with(
            with(responded, "response_id", json!("r-9")),
            "answers",
            json!({"q1": 5}),
        ));
        assert_eq!(e.response_id(), Some("r-9"));
    }

    // --- identified-user rules ---

    #[test]
    fn identified_user_required() {
        for kind in ["identify", "traits"] {
            let anon = with(without(base(kind), "user_id"), "anonymous_id", json!("d-1"));
            let r = assert_reason(&anon, ReasonCode::IdentifiedUserRequired, None);
            assert!(r.message.contains(kind), "{r}");
            accept(&with(anon.clone(), "email", json!("a@b.co")));
            accept(&with(anon, "user_id", json!("u")));
        }
        for kind in ["track", "survey"] {
            let anon = with(without(base(kind), "user_id"), "anonymous_id", json!("d-1"));
            accept(&anon);
            let mobile = with(anon, "channel", json!("mobile"));
            let r = assert_reason(&mobile, ReasonCode::IdentifiedUserRequired, None);
            assert!(r.message.contains("mobile"), "{r}");
            accept(&with(mobile.clone(), "email", json!("a@b.co")));
            accept(&with(mobile, "user_id", json!("u")));
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_null_means_absent() {
        let v = with(
            with(base("track"), "context", json!({"ip": "1.2.3.4"})),
            "extra",
            json!([1]),
        );
        let e = accept(&v);
        assert_eq!(e, accept(&base("track")));
        let v = with(
            with(base("track"), "properties", Value::Null),
            "email",
            Value::Null,
        );
        assert_eq!(accept(&v), accept(&base("track")));
    }

    #[test]
    fn every_reason_code_is_reachable_from_bytes() {
        let avro_unknown = [0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        let cases: Vec<(Vec<u8>, ReasonCode)> = vec![
            (b"{".to_vec(), ReasonCode::InvalidJson),
            (
                without(base("track"), "event").to_string().into_bytes(),
                ReasonCode::MissingField,
            ),
            (
                with(base("track"), "event", json!(1))
                    .to_string()
                    .into_bytes(),
                ReasonCode::InvalidField,
            ),
            (
                with(base("track"), "type", json!("page"))
                    .to_string()
                    .into_bytes(),
                ReasonCode::UnknownType,
            ),
            (
                without(base("track"), "user_id").to_string().into_bytes(),
                ReasonCode::NoIdentifier,
            ),
            (
                with(
                    without(base("identify"), "user_id"),
                    "anonymous_id",
                    json!("d"),
                )
                .to_string()
                .into_bytes(),
                ReasonCode::IdentifiedUserRequired,
            ),
            (vec![b' '; MAX_EVENT_BYTES + 1], ReasonCode::TooLarge),
            (avro_unknown.to_vec(), ReasonCode::UnknownSchema),
        ];
        let mut seen: Vec<ReasonCode> = Vec::new();
        for (bytes, reason) in cases {
            assert_eq!(decode_event(&bytes).map_err(|r| r.reason), Err(reason));
            seen.push(reason);
        }
        seen.sort();
        // `wrong_workspace` needs a write key to compare with: the HTTP edge
        // gives it, and its tests show it.
        let decodable: Vec<ReasonCode> = ReasonCode::ALL
            .into_iter()
            .filter(|r| *r != ReasonCode::WrongWorkspace)
            .collect();
        assert_eq!(seen, decodable);
    }

    // --- event time ---

    #[test]
    fn event_time_without_server_times_is_the_timestamp() {
        assert_eq!(event_time(1_000, None, None), Ok(1_000));
        assert_eq!(
            event_time(1_000, Some(5_000), None),
            Ok(1_000),
            "sent_at alone changes nothing"
        );
    }

    #[test]
    fn event_time_corrects_client_clock_skew() {
        let t = 100 * HOUR;
        // Client clock 2h behind: sent at (client) t+1h, received at (server) t+3h.
        assert_eq!(
            event_time(t, Some(t + HOUR), Some(t + 3 * HOUR)),
            Ok(t + 2 * HOUR)
        );
        // Client clock 2h ahead.
        assert_eq!(
            event_time(t, Some(t + 3 * HOUR), Some(t + HOUR)),
            Ok(t - 2 * HOUR)
        );
        // No skew.
        assert_eq!(event_time(t, Some(t), Some(t)), Ok(t));
    }

    #[test]
    fn a_missing_received_at_is_stamped_and_corrects_skew() -> Result<(), Rejection> {
        let line = br#"{"type":"track","message_id":"m","workspace_id":"w","timestamp":"2026-01-01T10:00:00Z","sent_at":"2026-01-01T11:00:00Z","user_id":"u","event":"e"}"#;
        let mut event = decode_json(line)?;
        let received = parse_rfc3339("2026-01-01T13:00:00Z").unwrap_or_default();
        stamp_received_at(&mut event, received)?;
        assert_eq!(event.received_at.as_deref(), Some("2026-01-01T13:00:00Z"));
        // The client was 2h behind the server.
        assert_eq!(
            Some(event.event_time),
            parse_rfc3339("2026-01-01T12:00:00Z")
        );
        // One that has a received_at keeps it.
        let before = event.clone();
        stamp_received_at(&mut event, received + HOUR)?;
        assert_eq!(event, before);
        Ok(())
    }

    #[test]
    fn a_stamp_that_puts_the_event_time_out_of_range_is_refused() -> Result<(), Rejection> {
        let line = br#"{"type":"track","message_id":"m","workspace_id":"w","timestamp":"2026-01-01T10:00:00Z","sent_at":"2199-01-01T00:00:00Z","user_id":"u","event":"e"}"#;
        let mut event = decode_json(line)?;
        let before = event.clone();
        let received = parse_rfc3339("2026-01-01T13:00:00Z").unwrap_or_default();
        let r = stamp_received_at(&mut event, received).expect_err("out of range");
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (ReasonCode::InvalidField, Some("sent_at"))
        );
        assert!(r.message.contains(EVENT_TIME_RANGE), "{r}");
        assert_eq!(event, before, "left as it was");
        // A receive time out of range is refused too.
        let mut event = decode_json(line)?;
        let r = stamp_received_at(&mut event, -1).expect_err("before 1970");
        assert_eq!(r.field.as_deref(), Some("received_at"));
        assert!(r.message.contains(EVENT_TIME_RANGE), "{r}");
        Ok(())
    }

    #[test]
    fn event_time_is_capped_at_received_at_plus_24h() {
        let r = 1_000 * HOUR;
        assert_eq!(
            event_time(r + 24 * HOUR, None, Some(r)),
            Ok(r + 24 * HOUR),
            "exactly 24h is kept"
        );
        assert_eq!(
            event_time(r + 24 * HOUR + 1, None, Some(r)),
            Ok(r),
            "beyond 24h becomes received_at"
        );
        assert_eq!(event_time(r + 48 * HOUR, Some(r), Some(r)), Ok(r));
        // The cap applies after skew correction.
        assert_eq!(
            event_time(r + 20 * HOUR, Some(r - 10 * HOUR), Some(r)),
            Ok(r)
        );
        // The past is not capped.
        assert_eq!(
            event_time(r - 500 * HOUR, None, Some(r)),
            Ok(r - 500 * HOUR)
        );
    }

    #[test]
    fn a_corrected_time_outside_the_range_is_an_error_not_a_saturation() {
        let now = 56 * 365 * 24 * HOUR; // 2025
        let far = EVENT_TIME_END - HOUR;
        // Client clock far ahead of the server's, timestamp from a sane clock.
        let corrected = i128::from(now) + i128::from(now) - i128::from(far);
        assert_eq!(event_time(now, Some(far), Some(now)), Err(corrected));
        assert_eq!(event_time(i64::MAX, Some(0), Some(0)), Ok(0), "capped");
        assert!(event_time(i64::MIN, Some(i64::MAX), Some(i64::MIN)).is_err());
        assert!(event_time(-1, None, None).is_err());
        assert_eq!(
            event_time(EVENT_TIME_END - 1, None, None),
            Ok(EVENT_TIME_END - 1)
        );
        assert!(event_time(EVENT_TIME_END, None, None).is_err());
    }

    #[test]
    fn times_outside_the_range_say_the_range() {
        for name in ["timestamp", "sent_at", "received_at"] {
            for outside in [
                "2200-01-01T00:00:00Z",
                "2262-04-12T00:00:00Z",
                "9999-12-31T23:59:59Z",
                "1677-01-01T00:00:00Z",
                "1969-12-31T23:59:59Z",
                "0001-01-01T00:00:00Z",
            ] {
                let r = assert_reason(
                    &with(base("track"), name, json!(outside)),
                    ReasonCode::InvalidField,
                    Some(name),
                );
                assert_eq!(
                    r.message,
                    format!(
                        "`{name}` {outside} is outside the times idfold accepts: {EVENT_TIME_RANGE}"
                    )
                );
                assert!(!r.message.contains("RFC 3339"), "{r}");
            }
        }
        // Both ends.
        accept(&with(
            base("track"),
            "timestamp",
            json!("1970-01-01T00:00:00Z"),
        ));
        accept(&with(
            base("track"),
            "timestamp",
            json!("2199-12-31T23:59:59Z"),
        ));
    }

    #[test]
    fn sent_at_far_after_received_at_is_rejected_not_saturated() {
        let v = with(
            with(base("track"), "sent_at", json!("2199-12-31T00:00:00Z")),
            "received_at",
            json!("2026-01-31T12:00:00Z"),
        );
        let r = assert_reason(&v, ReasonCode::InvalidField, Some("sent_at"));
        assert!(r.message.contains(EVENT_TIME_RANGE), "{r}");
        assert!(r.message.contains("1852-"), "names the corrected time: {r}");
        // Far before it: the corrected time is capped at received_at + 24 h.
        let v = with(
            with(base("track"), "sent_at", json!("1970-01-01T00:00:00Z")),
            "received_at",
            json!("2026-01-31T12:00:00Z"),
        );
        assert_eq!(
            Some(accept(&v).event_time),
            parse_rfc3339("2026-01-31T12:00:00Z")
        );
    }

    #[test]
    fn event_time_is_derived_in_validation() {
        let v = with(
            with(base("track"), "sent_at", json!("2026-01-31T13:00:00Z")),
            "received_at",
            json!("2026-01-31T15:00:00Z"),
        );
        let e = accept(&v);
        assert_eq!(Some(e.event_time), parse_rfc3339("2026-01-31T14:00:00Z"));
        let v = with(
            with(base("track"), "timestamp", json!("2026-03-01T00:00:00Z")),
            "received_at",
            json!("2026-01-31T15:00:00Z"),
        );
        let e = accept(&v);
        assert_eq!(Some(e.event_time), parse_rfc3339("2026-01-31T15:00:00Z"));
        assert_eq!(e.timestamp, "2026-03-01T00:00:00Z", "the sent text is kept");
    }

    // --- never panic ---

    pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "identify",
                "traits",
                "track",
                "survey",
                "web",
                "mobile",
                "shown",
                "responded",
                "",
                " ",
                "null",
                "Guest",
                "[object Object]",
                "a@b.co",
                " A@B.CO ",
                "@.",
                "a@b..c",
                "2026-01-31T12:00:00Z",
                "2026-01-31T12:00:00+14:00",
                "9999-12-31T23:59:59Z",
                "0001-01-01T00:00:00Z",
                "1677-01-01T00:00:00Z",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Event objects near the rules: valid ones, and ones a field breaks.
    pub(crate) fn arb_event_object() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "type",
            "message_id",
            "workspace_id",
            "timestamp",
            "sent_at",
            "received_at",
            "channel",
            "user_id",
            "email",
            "anonymous_id",
            "traits",
            "set_once",
            "unset",
            "event",
            "properties",
            "survey_id",
            "action",
            "response_id",
            "answers",
            "context",
            "other",
        ]);
        let base_kind = prop::sample::select(vec!["identify", "traits", "track", "survey"]);
        (base_kind, prop::collection::vec((keys, arb_json()), 0..8)).prop_map(|(kind, fields)| {
            let mut v = base(kind);
            for (k, val) in fields {
                v[k] = val;
            }
            v
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_event(&bytes);
            let _ = decode_json(&bytes);
        }

        #[test]
        fn arbitrary_values_never_panic(v in arb_json()) {
            let _ = validate_value(&v);
            let _ = decode_json(v.to_string().as_bytes());
        }

        #[test]
        fn arbitrary_event_objects_never_panic_and_accepted_ones_are_canonical(v in arb_event_object()) {
            if let Ok(e) = validate_value(&v) {
                // The canonical JSON form validates back to the same event.
                prop_assert_eq!(validate_value(&e.to_json()), Ok(e.clone()));
                prop_assert_eq!(decode_json(e.to_json().to_string().as_bytes()), Ok(e));
            }
        }

        #[test]
        fn event_times_are_in_range_or_refused(t in any::<i64>(), s in any::<Option<i64>>(), r in any::<Option<i64>>()) {
            if let Ok(out) = event_time(t, s, r) {
                prop_assert!((EVENT_TIME_MIN..EVENT_TIME_END).contains(&out));
                if let Some(r) = r {
                    prop_assert!(out <= r.saturating_add(MAX_FUTURE_NANOS));
                }
            }
        }

        #[test]
        fn accepted_events_have_times_in_range(
            t in EVENT_TIME_MIN..EVENT_TIME_END,
            s in proptest::option::of(EVENT_TIME_MIN..EVENT_TIME_END),
            r in proptest::option::of(EVENT_TIME_MIN..EVENT_TIME_END),
        ) {
            let mut v = with(base("track"), "timestamp", json!(format_nanos(t)));
            if let Some(s) = s {
                v = with(v, "sent_at", json!(format_nanos(s)));
            }
            if let Some(r) = r {
                v = with(v, "received_at", json!(format_nanos(r)));
            }
            match validate_value(&v) {
                Ok(e) => prop_assert!((EVENT_TIME_MIN..EVENT_TIME_END).contains(&e.event_time)),
                Err(r) => {
                    prop_assert_eq!(r.field.as_deref(), Some("sent_at"));
                    prop_assert!(r.message.contains(EVENT_TIME_RANGE));
                }
            }
        }
    }
}
