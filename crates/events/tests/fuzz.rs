//! Fuzzing the event decoders: canonical JSON validation and Avro
//! single-object decoding, with arbitrary bytes and with valid events
//! mutated (a field replaced, deleted, duplicated, its type swapped, nested
//! deep, raw tokens spliced in, truncated). No input panics; every
//! rejection carries a stable reason code and a message naming the fault;
//! whatever is accepted survives the log's codec unchanged.

#[path = "../../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::{junk, mutated, mutations};
use idfold_events::{
    decode_avro, decode_event, decode_json, decode_log_payload, encode_avro, encode_erasure,
    validate_value, ErasureRequest, Event, Identifier, LogPayload, ReasonCode, Rejection,
};
use proptest::prelude::*;

/// Events the sample holds, as the log stores them (Avro).
fn encoded_events() -> Vec<Vec<u8>> {
    fuzz_support::SAMPLE
        .lines()
        .filter_map(|line| decode_json(line.as_bytes()).ok())
        .map(|event| encode_avro(&event))
        .collect()
}

fn assert_coded(rejection: &Rejection) {
    assert!(ReasonCode::parse(rejection.reason.as_str()).is_some());
    assert!(
        !rejection.message.trim().is_empty(),
        "a rejection says why: {rejection:?}"
    );
    if let Some(field) = &rejection.field {
        assert!(
            !field.is_empty(),
            "a named field is not blank: {rejection:?}"
        );
    }
}

/// An accepted event comes back from the log's codec as it went in (one
/// that grows past the event limit when written out is the producer's to
/// refuse: see its fuzz tests).
fn assert_survives_the_log(event: &Event) {
    let bytes = encode_avro(event);
    if bytes.len() > idfold_events::MAX_EVENT_BYTES {
        return;
    }
    match decode_avro(&bytes) {
        Ok(back) => {
            assert_eq!(&back, event, "Avro round trip");
            assert_eq!(
                decode_log_payload(&bytes),
                Ok(LogPayload::Event(back)),
                "the log reader"
            );
        }
        Err(rejection) => panic!("an accepted event does not decode from Avro: {rejection:?}"),
    }
}

/// The log reader reads a record as the generic decoder does: what that
/// decodes, the same; what it refuses as a broken datum, refused the same
/// way. It may let through only what breaks a rule the edge enforces.
fn assert_read_as_generic(bytes: &[u8]) {
    let read = decode_log_payload(bytes);
    if let Err(rejection) = &read {
        assert_coded(rejection);
    }
    // Erasure requests have their own tests: the generic event decoder
    // does not know their schema.
    if bytes.get(..10) == erasure_sample().get(..10) {
        return;
    }
    let generic = decode_avro(bytes);
    match (&read, &generic) {
        (_, Ok(event)) => assert_eq!(read, Ok(LogPayload::Event(event.clone()))),
        (Err(read), Err(generic)) if read.field.as_deref() == Some("avro") => {
            assert_eq!(read, generic)
        }
        (Ok(_), Err(generic)) => assert_ne!(generic.field.as_deref(), Some("avro"), "{generic}"),
        (Err(_), Err(_)) => {}
    }
}

fn check(bytes: &[u8]) {
    match decode_event(bytes) {
        Ok(event) => assert_survives_the_log(&event),
        Err(rejection) => assert_coded(&rejection),
    }
}

fn erasure_sample() -> Vec<u8> {
    encode_erasure(&ErasureRequest {
        erasure_id: "er-0123456789abcdef".into(),
        workspace_id: "acme".into(),
        profile: Identifier::user("alice"),
        requested_at: 1_772_359_205_000_000_000,
    })
}

/// Records of the canonical log: events, and erasure requests.
fn log_records() -> Vec<Vec<u8>> {
    let mut records = encoded_events();
    for profile in [
        Identifier::user("alice"),
        Identifier::email("a@b.co"),
        Identifier::anonymous("device-1"),
    ] {
        records.push(encode_erasure(&ErasureRequest {
            erasure_id: "er-0123456789abcdef".into(),
            workspace_id: "acme".into(),
            profile,
            requested_at: 1_772_359_205_000_000_000,
        }));
    }
    records
}

proptest! {
    #![proptest_config(fuzz_support::config())]

    #[test]
    fn mutated_log_records_decode_or_are_rejected_with_a_code(
        record in prop::sample::select(log_records()),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        keep in any::<usize>(),
    ) {
        let mut bytes = record;
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] ^= byte;
        }
        if keep % 3 == 0 {
            bytes.truncate(keep % (bytes.len() + 1));
        }
        assert_read_as_generic(&bytes);
        match decode_log_payload(&bytes) {
            Ok(LogPayload::Event(event)) => {
                // The log is read without the edge's rules (it was
                // validated when written): what reads re-encodes to a
                // record that reads the same.
                let again = decode_log_payload(&encode_avro(&event));
                assert_eq!(again, Ok(LogPayload::Event(event)));
            }
            Ok(LogPayload::Erasure(request)) => {
                // What decodes re-encodes to a record that decodes the same.
                let again = decode_log_payload(&encode_erasure(&request));
                assert_eq!(again, Ok(LogPayload::Erasure(request)));
            }
            Err(rejection) => assert_coded(&rejection),
        }
    }

    #[test]
    fn arbitrary_bytes_are_rejected_with_a_code_never_a_panic(bytes in junk()) {
        check(&bytes);
        assert_read_as_generic(&bytes);
    }

    #[test]
    fn mutated_events_are_accepted_whole_or_rejected_with_a_code(
        document in prop::sample::select(fuzz_support::sample_documents()),
        changes in mutations(),
    ) {
        check(&mutated(&document, &changes));
    }

    #[test]
    fn any_json_value_validates_or_is_rejected_with_a_code(value in fuzz_support::any_value()) {
        match validate_value(&value) {
            Ok(event) => assert_survives_the_log(&event),
            Err(rejection) => assert_coded(&rejection),
        }
    }

    #[test]
    fn mutated_avro_records_decode_or_are_rejected_with_a_code(
        record in prop::sample::select(encoded_events()),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        insert in prop::option::of((any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))),
        keep in any::<usize>(),
    ) {
        let mut bytes = record;
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] ^= byte;
        }
        if let Some((at, extra)) = insert {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, extra);
        }
        // Truncated about half the time.
        if keep % 2 == 0 {
            bytes.truncate(keep % (bytes.len() + 1));
        }
        match decode_avro(&bytes) {
            Ok(event) => assert_survives_the_log(&event),
            Err(rejection) => assert_coded(&rejection),
        }
        assert_read_as_generic(&bytes);
    }

    #[test]
    fn avro_headers_with_any_body_are_rejected_with_a_code(
        record in prop::sample::select(log_records()),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        // The magic and a known fingerprint, then anything: lengths and
        // counts that claim more than there is must not allocate or panic.
        let mut bytes = record[..10.min(record.len())].to_vec();
        bytes.extend(body);
        match decode_avro(&bytes) {
            Ok(event) => assert_survives_the_log(&event),
            Err(rejection) => assert_coded(&rejection),
        }
        assert_read_as_generic(&bytes);
    }
}

#[test]
fn deep_nesting_is_a_rejection_not_a_stack_overflow() {
    for depth in [64, 128, 129, 1_000, 10_000] {
        let mut text = r#"{"type":"track","message_id":"m","workspace_id":"w","timestamp":"2026-01-01T00:00:00Z","channel":"web","anonymous_id":"d","event":"e","properties":{"p":"#
            .to_owned();
        text.push_str(&"[".repeat(depth));
        text.push_str(&"]".repeat(depth));
        text.push_str("}}");
        check(text.as_bytes());
    }
}
