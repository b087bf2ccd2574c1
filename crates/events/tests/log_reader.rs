//! The log reader on a generated workload, as the edge writes it: every
//! record reads back as the event the edge accepted, exactly as the
//! generic Avro decoder reads it, and no cut of a record is half read.

use idfold_events::{decode_avro, decode_log_payload, LogPayload};
use idfold_producer::{validate, RawInput};
use idfold_workload::{generate, WorkloadSpec};

#[test]
fn every_record_of_a_generated_workload_reads_back_as_the_edge_wrote_it() {
    let spec = WorkloadSpec {
        events: 5_000,
        ..WorkloadSpec::default()
    };
    let inputs: Vec<RawInput> = generate(&spec)
        .into_iter()
        .enumerate()
        .map(|(i, line)| RawInput {
            bytes: line.into_bytes(),
            // Half arrive without a receive time, as files do; half with
            // one, as Kafka records do (it is stamped on those without).
            received_at: (i % 2 == 0).then_some(1_769_904_000_000_000_000),
            ..RawInput::default()
        })
        .collect();
    let validated = validate("workload", &inputs.iter().collect::<Vec<_>>()).expect("validates");
    assert!(validated.dead_letters.is_empty(), "the workload is valid");
    assert_eq!(validated.entries.len(), spec.events);
    let mut kinds = std::collections::BTreeSet::new();
    for (i, entry) in validated.entries.iter().enumerate() {
        let generic = decode_avro(&entry.payload).unwrap_or_else(|r| panic!("record {i}: {r}"));
        kinds.insert(generic.kind());
        assert_eq!(
            decode_log_payload(&entry.payload),
            Ok(LogPayload::Event(generic)),
            "record {i}"
        );
        // A few cuts of each: never read as something else.
        for cut in [0, 10, entry.payload.len() / 2, entry.payload.len() - 1] {
            assert!(
                decode_log_payload(&entry.payload[..cut]).is_err(),
                "record {i} cut at {cut}"
            );
        }
    }
    assert_eq!(kinds.len(), 4, "every kind is in the workload: {kinds:?}");
}
