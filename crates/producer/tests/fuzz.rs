//! Fuzzing the producer's decoders: NDJSON framing over arbitrary bytes
//! read in arbitrary chunks, and validation of arbitrary and mutated
//! inputs. No input panics; framing loses, splits or merges no line; every
//! input is counted once, as accepted or rejected with a stable code; and
//! every accepted record can be read back by the fold.

#[path = "../../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::io::BufReader;

use fuzz_support::{junk, mutated_from};
use idfold_events::{decode_log_payload, ReasonCode};
use idfold_producer::{validate, NdjsonReader, RawInput, MAX_LINE_BYTES};
use proptest::prelude::*;

/// What the framing must give: (line number, bytes) of each line that is
/// not blank, without its `\n` and one trailing `\r`.
fn expected_lines(input: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    // A final `\n` ends the last line; it does not start another.
    if parts.last().is_some_and(|last| last.is_empty()) {
        parts.pop();
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(index, line)| (index as u64 + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(number, line)| (number, line.to_vec()))
        .collect()
}

/// Every line `read_batch` gives, batch by batch.
fn framed(input: &[u8], chunk: usize, max: usize, max_bytes: usize) -> Vec<RawInput> {
    let mut source = BufReader::with_capacity(chunk, input);
    let mut reader = NdjsonReader::new();
    let mut lines = Vec::new();
    let mut batches = 0;
    while let Some(batch) = reader
        .read_batch(&mut source, max, max_bytes)
        .unwrap_or_else(|e| panic!("reading a slice cannot fail: {e}"))
    {
        assert!(batch.len() <= max, "a batch holds at most {max} lines");
        lines.extend(batch);
        batches += 1;
        assert!(batches <= input.len() + 1, "read_batch ends");
    }
    lines
}

/// Lines, blank ones, `\r\n` endings and JSON-ish bytes between them.
fn ndjson_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            junk(),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"  \t\n".to_vec()),
            Just(b"\r".to_vec()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(fuzz_support::config())]

    #[test]
    fn framing_gives_every_line_once_in_order_whatever_the_chunks(
        input in ndjson_like(),
        chunk in 1usize..64,
        max in 1usize..8,
        max_bytes in 1usize..512,
    ) {
        let lines = framed(&input, chunk, max, max_bytes);
        let got: Vec<(u64, Vec<u8>)> = lines
            .iter()
            .map(|l| (l.position.unwrap_or(0), l.bytes.clone()))
            .collect();
        prop_assert_eq!(got, expected_lines(&input));
        prop_assert!(lines.iter().all(|l| !l.truncated));
    }

    #[test]
    fn every_input_is_counted_once_and_every_accepted_record_reads_back(
        inputs in prop::collection::vec(
            prop_oneof![junk(), mutated_from(fuzz_support::sample_documents())],
            1..6,
        ),
    ) {
        let raw: Vec<RawInput> = inputs
            .iter()
            .map(|bytes| RawInput { bytes: bytes.clone(), ..RawInput::default() })
            .collect();
        let refs: Vec<&RawInput> = raw.iter().collect();
        let validated = match validate("fuzz", &refs) {
            Ok(validated) => validated,
            Err(error) => panic!("validation is not an operational error: {error}"),
        };
        prop_assert_eq!(
            validated.report.accepted + validated.report.rejected.len(),
            inputs.len()
        );
        prop_assert_eq!(validated.entries.len(), validated.report.accepted);
        for entry in &validated.entries {
            // What the fold will read: never "undecodable".
            if let Err(rejection) = decode_log_payload(&entry.payload) {
                panic!("an accepted record does not read back: {rejection:?}");
            }
        }
        for (letter, (index, rejection)) in validated.dead_letters.iter().zip(&validated.report.rejected) {
            prop_assert!(ReasonCode::parse(&letter.reason).is_some(), "{}", letter.reason);
            prop_assert!(!rejection.message.trim().is_empty());
            prop_assert_eq!(&letter.raw, &inputs[*index]);
        }
    }
}

#[test]
fn an_over_long_line_is_kept_in_part_and_the_next_line_is_whole() {
    let mut input = vec![b'x'; MAX_LINE_BYTES + 10_000];
    input.extend(b"\n{\"next\":1}\n");
    for chunk in [1, 4096, 1 << 20] {
        let lines = framed(&input, chunk, 10, 1 << 30);
        assert_eq!(lines.len(), 2, "chunk {chunk}");
        assert!(lines[0].truncated && lines[0].bytes.len() == MAX_LINE_BYTES);
        assert_eq!(lines[1].bytes, b"{\"next\":1}");
        assert_eq!(lines[1].position, Some(2));
    }
}

#[test]
fn an_event_that_grows_when_stored_is_rejected_at_the_edge_not_by_the_fold() {
    // `1e15` is stored as `1000000000000000.0`: 25 KiB sent, 95 KiB stored.
    let numbers = vec!["1e15"; 5_000].join(",");
    let text = format!(
        r#"{{"type":"track","message_id":"m","workspace_id":"w","timestamp":"2026-01-01T00:00:00Z","channel":"web","anonymous_id":"d","event":"e","properties":{{"n":[{numbers}]}}}}"#
    );
    assert!(text.len() < idfold_events::MAX_EVENT_BYTES);
    let input = RawInput {
        bytes: text.into_bytes(),
        ..RawInput::default()
    };
    let validated = validate("test", &[&input]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(validated.report.accepted, 0);
    let reasons: Vec<ReasonCode> = validated
        .report
        .rejected
        .iter()
        .map(|(_, r)| r.reason)
        .collect();
    assert_eq!(reasons, vec![ReasonCode::TooLarge]);
}
