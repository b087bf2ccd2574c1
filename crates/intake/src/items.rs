//! Request bodies into validated batches: the native form (a JSON array or
//! NDJSON of canonical events) and Segment's (one message, or a batch with
//! a shared `sentAt` and `context`). Each item is validated on its own:
//! valid ones are accepted, invalid ones dead-lettered and reported by index.

use idfold_events::{parse_json_event, validate_value, Event, EventTime, ReasonCode, Rejection};
use idfold_producer::{ProducerError, RawInput, Validated};
use idfold_segment::{translate, Envelope, SegmentCall, Translated};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::body::MAX_EVENT_BYTES;
use crate::error::IntakeError;
use crate::scrub::scrub_secrets;
use idfold_access::WriteKeys;

/// Who sent the items and when they arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival<'a> {
    pub workspace: &'a str,
    pub received_at: EventTime,
    /// Dead letters' source: the endpoint.
    pub source: &'static str,
    /// To check a `writeKey` inside an item (analytics.js puts one in each).
    pub keys: &'a WriteKeys,
}

impl Arrival<'_> {
    /// The input as dead letters keep it: never with a write key in it.
    fn input(&self, index: usize, bytes: &[u8]) -> RawInput {
        let (bytes, truncated) = scrub_secrets(bytes, self.keys);
        RawInput {
            bytes,
            partition: None,
            position: Some(index as u64),
            truncated,
            received_at: Some(self.received_at),
        }
    }

    /// A `writeKey` inside an item must be one of this workspace's keys.
    fn check_item_key(&self, message: &Value) -> Result<(), Rejection> {
        match message.get("writeKey") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(key)) if self.keys.lookup(key) == Some(self.workspace) => Ok(()),
            Some(_) => Err(Rejection::new(
                ReasonCode::WrongWorkspace,
                Some("writeKey"),
                "`writeKey` is not a key of the workspace this request writes to",
            )),
        }
    }
}

fn invalid_body(what: &str, error: &serde_json::Error) -> IntakeError {
    // serde quotes the value of a field of the wrong type, which could be
    // a secret: only the place is said then.
    let detail = match error.classify() {
        serde_json::error::Category::Data => format!(
            "a value has the wrong type at line {} column {}",
            error.line(),
            error.column()
        ),
        _ => error.to_string(),
    };
    IntakeError::Rejected(Rejection::new(
        ReasonCode::InvalidJson,
        None,
        format!("the body is not {what}: {detail}"),
    ))
}

fn internal(error: ProducerError) -> IntakeError {
    IntakeError::LogRefused(error.to_string())
}

/// `POST /v1/events`: a JSON array of events, or NDJSON.
pub(crate) fn native(body: &[u8], arrival: &Arrival<'_>) -> Result<Validated, IntakeError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let items: Vec<(usize, &[u8])> = if first == Some(&b'[') {
        serde_json::from_slice::<Vec<&RawValue>>(body)
            .map_err(|e| invalid_body("a JSON array of events", &e))?
            .into_iter()
            .map(|raw| raw.get().as_bytes())
            .enumerate()
            .collect()
    } else {
        // Indexed by line (0-based), blank lines skipped but counted, so a
        // reported index finds its line.
        body.split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .collect()
    };
    let mut validated = Validated::with_capacity(items.len());
    for &(index, bytes) in &items {
        let outcome = native_event(bytes, arrival.workspace);
        validated
            .push(arrival.source, &arrival.input(index, bytes), outcome)
            .map_err(internal)?;
    }
    // The report counts items; the client counts lines (or array items).
    for (reported, _) in &mut validated.report.rejected {
        if let Some(&(index, _)) = items.get(*reported) {
            *reported = index;
        }
    }
    Ok(validated)
}

/// A canonical event; its workspace is the key's, filled in when absent.
fn native_event(bytes: &[u8], workspace: &str) -> Result<Event, Rejection> {
    let mut value = parse_json_event(bytes)?;
    if let Some(event) = value.as_object_mut() {
        // The server's clock says when it received an event, never the
        // client (as Segment does): stamped from the arrival afterwards.
        event.remove("received_at");
        match event.get("workspace_id").filter(|v| !v.is_null()) {
            None => {
                event.insert("workspace_id".into(), Value::from(workspace));
            }
            Some(Value::String(named)) if named == workspace => {}
            Some(_) => {
                return Err(Rejection::new(
                    ReasonCode::WrongWorkspace,
                    Some("workspace_id"),
                    "`workspace_id` names another workspace than the write key's",
                ))
            }
        }
    }
    validate_value(&value)
}

/// A Segment batch body; other top-level fields (`integrations`) are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct SegmentBatch<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(rename = "sentAt")]
    sent_at: Option<Value>,
    context: Option<Value>,
    #[serde(rename = "writeKey")]
    pub write_key: Option<String>,
}

impl<'a> SegmentBatch<'a> {
    pub fn parse(body: &'a [u8]) -> Result<SegmentBatch<'a>, IntakeError> {
        serde_json::from_slice(body).map_err(|e| invalid_body("a Segment batch object", &e))
    }

    pub fn validate(&self, arrival: &Arrival<'_>) -> Result<Validated, IntakeError> {
        let items = self
            .batch
            .as_ref()
            .ok_or_else(|| IntakeError::Rejected(Rejection::missing("batch")))?;
        let context = match &self.context {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => Some(c),
            Some(_) => {
                return Err(IntakeError::Rejected(Rejection::invalid(
                    "context",
                    "must be a JSON object",
                )))
            }
        };
        let batch_envelope = Envelope {
            workspace_id: arrival.workspace,
            received_at: arrival.received_at,
            batch_sent_at: self.sent_at.as_ref(),
            batch_context: context,
            position: 0,
        };
        let mut validated = Validated::with_capacity(items.len());
        for (index, raw) in items.iter().enumerate() {
            let bytes = raw.get().as_bytes();
            let outcome = if bytes.len() > MAX_EVENT_BYTES {
                Err(Rejection::new(
                    ReasonCode::TooLarge,
                    None,
                    format!(
                        "the message is {} bytes; the limit is 32 KiB ({MAX_EVENT_BYTES} bytes)",
                        bytes.len()
                    ),
                ))
            } else {
                idfold_segment::parse_message(raw.get())
                    .map_err(|e| Rejection::new(ReasonCode::InvalidJson, None, e.to_string()))
                    .and_then(|message| {
                        arrival.check_item_key(&message)?;
                        let envelope = Envelope {
                            position: index,
                            ..batch_envelope
                        };
                        translate(None, &message, &envelope)
                    })
            };
            push_translated(&mut validated, arrival, index, bytes, outcome)?;
        }
        Ok(validated)
    }
}

/// A single Segment call's body, with its `writeKey` if it carries one.
pub(crate) fn segment_message(body: &[u8]) -> Result<(Value, Option<String>), IntakeError> {
    // Ids given as big integers keep their digits.
    let message =
        idfold_segment::parse_message_slice(body).map_err(|e| invalid_body("a JSON object", &e))?;
    let write_key = message
        .get("writeKey")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((message, write_key))
}

/// `POST /v1/{call}`: one message, validated as a batch of one.
pub(crate) fn segment_single(
    call: SegmentCall,
    message: &Value,
    body: &[u8],
    arrival: &Arrival<'_>,
) -> Result<Validated, IntakeError> {
    let envelope = Envelope {
        workspace_id: arrival.workspace,
        received_at: arrival.received_at,
        batch_sent_at: None,
        batch_context: None::<&Map<String, Value>>,
        position: 0,
    };
    let mut validated = Validated::with_capacity(1);
    let outcome = translate(Some(call), message, &envelope);
    push_translated(&mut validated, arrival, 0, body, outcome)?;
    Ok(validated)
}

fn push_translated(
    validated: &mut Validated,
    arrival: &Arrival<'_>,
    index: usize,
    bytes: &[u8],
    outcome: Result<Translated, Rejection>,
) -> Result<(), IntakeError> {
    match outcome {
        Ok(Translated::Acknowledged(_)) => {
            validated.acknowledge();
            Ok(())
        }
        Ok(Translated::Event(event)) => validated
            .push(arrival.source, &arrival.input(index, bytes), Ok(*event))
            .map_err(internal),
        Err(rejection) => validated
            .push(arrival.source, &arrival.input(index, bytes), Err(rejection))
            .map_err(internal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_KEYS: std::sync::LazyLock<WriteKeys> = std::sync::LazyLock::new(WriteKeys::default);

    fn arrival() -> Arrival<'static> {
        Arrival {
            workspace: "acme",
            received_at: 1_770_000_000_000_000_000,
            source: "http:/test",
            keys: &NO_KEYS,
        }
    }

    fn event(id: &str, extra: &str) -> String {
        format!(
            r#"{{"type":"track","message_id":"{id}","timestamp":"2026-01-01T00:00:00Z","user_id":"u","event":"E"{extra}}}"#
        )
    }

    fn reasons(v: &Validated) -> Vec<(usize, &'static str)> {
        v.report
            .rejected
            .iter()
            .map(|(i, r)| (*i, r.reason.as_str()))
            .collect()
    }

    #[test]
    fn native_arrays_and_ndjson_report_bad_items_by_index() {
        let array = format!(
            "[{}, {}, {}]",
            event("a", ""),
            event("b", r#","workspace_id":"other""#),
            r#"{"type":"track"}"#
        );
        let v = native(array.as_bytes(), &arrival()).unwrap_or_default();
        assert_eq!(v.report.accepted, 1);
        assert_eq!(
            reasons(&v),
            vec![(1, "wrong_workspace"), (2, "missing_field")]
        );
        assert_eq!(v.entries.first().map(|e| e.key.as_str()), Some("acme"));
        assert_eq!(v.dead_letters.len(), 2);

        let ndjson = format!(
            "{}\r\n\n{}\nnot json\n",
            event("a", ""),
            event("b", r#","workspace_id":"acme""#)
        );
        let v = native(ndjson.as_bytes(), &arrival()).unwrap_or_default();
        assert_eq!(v.report.accepted, 2);
        // Line 3 (0-based), the blank line counted.
        assert_eq!(reasons(&v), vec![(3, "invalid_json")]);
    }

    #[test]
    fn dead_letters_never_keep_a_write_key() {
        let body =
            br#"{"batch": [{"type": "track", "writeKey": "wk_secret_0123456789", "event": "E"}]}"#;
        let batch = SegmentBatch::parse(body);
        let Ok(batch) = batch else {
            panic!("{batch:?}")
        };
        let v = batch.validate(&arrival()).unwrap_or_default();
        assert_eq!(reasons(&v), vec![(0, "wrong_workspace")]);
        let kept = String::from_utf8_lossy(&v.dead_letters[0].raw).into_owned();
        assert!(!kept.contains("wk_secret"), "{kept}");
        assert!(kept.contains("\"event\":\"E\""), "{kept}");
    }

    #[test]
    fn a_native_received_at_is_the_servers() {
        let body = event(
            "a",
            r#","timestamp":"2200-01-01T00:00:00Z","received_at":"2200-01-01T00:00:00Z""#,
        )
        .replace(r#""timestamp":"2026-01-01T00:00:00Z","#, "");
        let v = native(body.as_bytes(), &arrival()).unwrap_or_default();
        let stored: Vec<idfold_events::Event> = v
            .entries
            .iter()
            .filter_map(|e| idfold_events::decode_event(&e.payload).ok())
            .collect();
        // Accepted or rejected by the time rules, never with the client's
        // receive time.
        for event in &stored {
            assert_eq!(
                event.received_at.as_deref(),
                Some(idfold_events::format_nanos(arrival().received_at).as_str())
            );
        }
        assert_eq!(stored.len() + v.report.rejected.len(), 1);
    }

    #[test]
    fn identical_items_without_message_id_are_two_events_and_a_retry_the_same() {
        let item = r#"{"type":"track","userId":"u","event":"E"}"#;
        let body = format!(r#"{{"batch":[{item},{item}]}}"#);
        let ids = || {
            let batch = SegmentBatch::parse(body.as_bytes());
            let Ok(batch) = batch else {
                panic!("{batch:?}")
            };
            let v = batch.validate(&arrival()).unwrap_or_default();
            v.entries
                .iter()
                .filter_map(|e| idfold_events::decode_event(&e.payload).ok())
                .map(|e| e.message_id)
                .collect::<Vec<_>>()
        };
        let first = ids();
        assert_eq!(first.len(), 2);
        assert_ne!(first[0], first[1]);
        assert_eq!(first, ids(), "a retried batch gets the same ids");
    }

    #[test]
    fn a_refused_body_s_message_never_quotes_its_values() {
        let body = br#"{"batch": "wk_acme_0123456789abcdef"}"#;
        let refused = SegmentBatch::parse(body).err().map(|e| e.to_string());
        let message = refused.unwrap_or_default();
        assert!(message.contains("line 1"), "{message}");
        assert!(!message.contains("wk_acme"), "{message}");
    }

    #[test]
    fn a_broken_array_is_refused_whole() {
        let refused = native(b"[{\"type\": ", &arrival());
        assert_eq!(refused.err().map(|e| e.code()), Some("invalid_json"));
    }

    #[test]
    fn segment_batches_validate_each_item_and_count_groups() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let body = format!(
            r#"{{"batch": [
                {{"type":"track","userId":"u","event":"E","messageId":"1"}},
                {{"type":"group","userId":"u","groupId":"g"}},
                {{"type":"track","event":"E"}},
                {{"type":"track","userId":"u","event":"E","properties":{{"pad":"{big}"}}}}
            ], "sentAt": "2026-01-01T00:00:00Z", "writeKey": "k"}}"#
        );
        let batch = SegmentBatch::parse(body.as_bytes());
        let Ok(batch) = batch else {
            panic!("{batch:?}")
        };
        assert_eq!(batch.write_key.as_deref(), Some("k"));
        let v = batch.validate(&arrival()).unwrap_or_default();
        assert_eq!(v.report.accepted, 2);
        assert_eq!(v.entries.len(), 1);
        assert_eq!(reasons(&v), vec![(2, "no_identifier"), (3, "too_large")]);
        let missing = SegmentBatch::parse(b"{}").and_then(|b| b.validate(&arrival()));
        assert_eq!(
            missing.err().and_then(|e| e.field().map(str::to_owned)),
            Some("batch".into())
        );
    }
}
