//! Fuzzing Segment's calls and batches: arbitrary JSON and valid messages
//! mutated (a field replaced, deleted, duplicated, its type swapped, nested
//! deep, raw tokens spliced in, truncated), through every call and as batch
//! items under a batch's `sentAt` and `context`. No input panics; every
//! rejection carries a stable reason code and a message; an accepted event
//! survives the log's codec unchanged.

#[path = "../../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::{any_value, mutated, mutations};
use idfold_events::{decode_avro, encode_avro, ReasonCode, Rejection};
use idfold_segment::{translate, Envelope, SegmentCall, Translated};
use proptest::prelude::*;
use serde_json::{json, Value};

/// 2026-03-01T10:00:05Z, as the server's clock.
const RECEIVED: i64 = 1_772_359_205_000_000_000;

fn messages() -> Vec<Value> {
    vec![
        json!({"type": "identify", "userId": "u1", "anonymousId": "d1", "messageId": "m1",
               "traits": {"email": " Ann@Example.com ", "plan": "pro"},
               "timestamp": "2026-03-01T09:00:00Z", "sentAt": "2026-03-01T10:00:00Z",
               "integrations": {"All": true}, "context": {"channel": "browser"}}),
        json!({"type": "track", "userId": 42, "event": "Signed Up", "properties": {"plan": "pro"},
               "context": {"traits": {"email": "a@b.co"}}, "messageId": "m2"}),
        json!({"type": "page", "anonymousId": "d", "name": "Pricing", "messageId": "m3",
               "properties": {"path": "/pricing"}, "originalTimestamp": "2026-03-01T09:59:00Z"}),
        json!({"type": "screen", "userId": "u", "messageId": "m4", "name": "Home"}),
        json!({"type": "group", "groupId": "g", "userId": "u", "traits": {"name": "Acme"}}),
        json!({"type": "alias", "previousId": "old", "userId": "u1", "messageId": "m5"}),
    ]
}

fn batches() -> Vec<Value> {
    vec![json!({
        "batch": messages(),
        "sentAt": "2026-03-01T10:00:00Z",
        "context": {"library": {"name": "analytics-node"}, "traits": {"email": "b@c.co"}},
        "writeKey": "wk_test_0123456789"
    })]
}

fn assert_coded(rejection: &Rejection) {
    assert!(ReasonCode::parse(rejection.reason.as_str()).is_some());
    assert!(
        !rejection.message.trim().is_empty(),
        "a rejection says why: {rejection:?}"
    );
}

fn check(call: Option<SegmentCall>, message: &Value, envelope: &Envelope<'_>) {
    match translate(call, message, envelope) {
        Ok(Translated::Event(event)) => {
            assert_eq!(event.workspace_id, envelope.workspace_id);
            let stored = encode_avro(&event);
            // Past the event limit once written out: the producer refuses
            // it (see its fuzz tests).
            if stored.len() > idfold_events::MAX_EVENT_BYTES {
                return;
            }
            match decode_avro(&stored) {
                Ok(back) => assert_eq!(back, *event, "Avro round trip"),
                Err(rejection) => panic!("an accepted event does not decode: {rejection:?}"),
            }
        }
        Ok(Translated::Acknowledged(_)) => {}
        Err(rejection) => assert_coded(&rejection),
    }
}

fn single(received_at: i64) -> Envelope<'static> {
    Envelope {
        workspace_id: "acme",
        received_at,
        batch_sent_at: None,
        batch_context: None,
        position: 0,
    }
}

/// Every endpoint's call, and a batch item's (`None`: its `type` says).
fn calls() -> impl Strategy<Value = Option<SegmentCall>> {
    prop::option::of(prop::sample::select(SegmentCall::ALL.to_vec()))
}

/// What the HTTP edge does with a batch body: each item under the batch's
/// `sentAt` and `context`.
fn check_batch(bytes: &[u8]) {
    let Ok(Value::Object(batch)) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    if let Some(Value::Array(items)) = batch.get("batch") {
        for (position, item) in items.iter().enumerate() {
            let envelope = Envelope {
                workspace_id: "acme",
                received_at: RECEIVED,
                batch_sent_at: batch.get("sentAt"),
                batch_context: batch.get("context").and_then(Value::as_object),
                position,
            };
            check(None, item, &envelope);
        }
    }
}

proptest! {
    #![proptest_config(fuzz_support::config())]

    #[test]
    fn any_json_through_any_call_is_translated_or_rejected_with_a_code(
        call in calls(),
        message in any_value(),
    ) {
        check(call, &message, &single(RECEIVED));
    }

    #[test]
    fn mutated_messages_are_translated_or_rejected_with_a_code(
        call in calls(),
        message in prop::sample::select(messages()),
        changes in mutations(),
        received_at in prop_oneof![Just(RECEIVED), any::<i64>()],
    ) {
        // Text-level changes may leave no JSON at all: that is the HTTP
        // edge's to refuse (see intake's route fuzz).
        if let Ok(message) = serde_json::from_slice::<Value>(&mutated(&message, &changes)) {
            check(call, &message, &single(received_at));
        }
    }

    #[test]
    fn mutated_batches_translate_item_by_item_or_reject_with_a_code(
        batch in prop::sample::select(batches()),
        changes in mutations(),
    ) {
        check_batch(&mutated(&batch, &changes));
    }
}
