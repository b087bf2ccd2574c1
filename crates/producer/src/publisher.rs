//! Validate, then append or dead-letter, then report.

use std::collections::BTreeMap;

use idfold_events::{
    decode_event, encode_avro, stamp_received_at, Event, EventTime, ReasonCode, Rejection,
    MAX_EVENT_BYTES,
};
use idfold_log::{DeadLetter, DeadLetterSink, EventSink, LogEntry};
use idfold_telemetry::names;

use crate::error::ProducerError;

/// One input as received.
#[derive(Debug, Clone, Default)]
pub struct RawInput {
    pub bytes: Vec<u8>,
    /// The source's partition, for sources that have them (topics).
    pub partition: Option<u32>,
    /// Line (files) or offset (logs) in the source, for the error report.
    pub position: Option<u64>,
    /// The input was longer than what was kept of it.
    pub truncated: bool,
    /// When the transport received it (a Kafka record's timestamp); stamped
    /// as `received_at` on an event that has none.
    pub received_at: Option<EventTime>,
}

/// Inputs validated and encoded, not yet written.
#[derive(Debug, Default)]
pub struct Validated {
    pub entries: Vec<LogEntry>,
    pub dead_letters: Vec<DeadLetter>,
    pub report: PublishReport,
    received: usize,
    /// Accepted inputs by type, for the metrics (`group` for Segment's
    /// group calls, which are counted and not stored).
    accepted_by_kind: BTreeMap<&'static str, u64>,
}

impl Validated {
    /// Appends another validated batch (of another source) to this one, so
    /// both are written with one durable write.
    pub fn extend(&mut self, other: Validated) {
        let offset = self.received;
        self.entries.extend(other.entries);
        self.dead_letters.extend(other.dead_letters);
        self.report.accepted += other.report.accepted;
        self.report.rejected.extend(
            other
                .report
                .rejected
                .into_iter()
                .map(|(index, why)| (index + offset, why)),
        );
        self.received += other.received;
        for (kind, n) in other.accepted_by_kind {
            *self.accepted_by_kind.entry(kind).or_default() += n;
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PublishReport {
    pub accepted: usize,
    /// (index in the batch, why), in input order.
    pub rejected: Vec<(usize, Rejection)>,
}

/// Publishes batches of inputs from one kind of source.
#[derive(Debug)]
pub struct Publisher<'a, S: EventSink + ?Sized, D: DeadLetterSink + ?Sized> {
    events: &'a S,
    dead_letters: &'a D,
    /// Metric label: a bounded set (`file`, `stdin`, `http`, `kafka`).
    source_kind: &'static str,
}

impl<'a, S: EventSink + ?Sized, D: DeadLetterSink + ?Sized> Publisher<'a, S, D> {
    pub fn new(events: &'a S, dead_letters: &'a D, source_kind: &'static str) -> Self {
        Publisher {
            events,
            dead_letters,
            source_kind,
        }
    }

    /// Validates every input; appends the accepted ones and stores the
    /// rejected ones, both durably, before returning.
    pub fn publish(
        &self,
        source_name: &str,
        inputs: &[RawInput],
    ) -> Result<PublishReport, ProducerError> {
        let inputs: Vec<&RawInput> = inputs.iter().collect();
        let validated = validate(source_name, &inputs)?;
        self.write(&validated)?;
        Ok(validated.report)
    }

    /// Writes a validated batch: rejections first, then the events, each
    /// durable when its sink returns. A failure writes nothing the caller
    /// will acknowledge: it may retry the whole batch (the fold drops the
    /// events it already has by message_id).
    pub fn write(&self, validated: &Validated) -> Result<(), ProducerError> {
        self.dead_letters.append(&validated.dead_letters)?;
        if !validated.entries.is_empty() {
            self.events.append(&validated.entries)?;
        }
        self.record_metrics(validated);
        Ok(())
    }

    fn record_metrics(&self, validated: &Validated) {
        let source = self.source_kind;
        let report = &validated.report;
        metrics::counter!(names::EVENTS_RECEIVED, "source" => source)
            .increment(validated.received as u64);
        for (kind, n) in &validated.accepted_by_kind {
            metrics::counter!(names::EVENTS_ACCEPTED, "source" => source, "type" => *kind)
                .increment(*n);
        }
        metrics::counter!(names::DEAD_LETTERS_WRITTEN, "source" => source)
            .increment(validated.dead_letters.len() as u64);
        let mut by_reason = std::collections::BTreeMap::<ReasonCode, u64>::new();
        for (_, r) in &report.rejected {
            *by_reason.entry(r.reason).or_default() += 1;
        }
        for (reason, n) in by_reason {
            metrics::counter!(names::EVENTS_REJECTED, "source" => source, "reason" => reason.as_str()).increment(n);
        }
    }
}

/// Validates and encodes inputs of one source; pure but for the clockless
/// stamping of `received_at` from the input's own receive time.
pub fn validate(source_name: &str, inputs: &[&RawInput]) -> Result<Validated, ProducerError> {
    let mut validated = Validated::with_capacity(inputs.len());
    for input in inputs {
        let outcome = if input.truncated {
            Err(Rejection::new(
                ReasonCode::TooLarge,
                None,
                format!("the event is over the {} KiB limit", MAX_EVENT_BYTES / 1024),
            ))
        } else {
            decode_event(&input.bytes)
        };
        validated.push(source_name, input, outcome)?;
    }
    Ok(validated)
}

impl Validated {
    pub fn with_capacity(inputs: usize) -> Validated {
        Validated {
            entries: Vec::with_capacity(inputs),
            ..Validated::default()
        }
    }

    /// Adds one input with what validating it gave: an event to append
    /// (stamped with the input's receive time when it has none), or a
    /// rejection to dead-letter with the input's bytes. Inputs are indexed
    /// in the order they are pushed.
    pub fn push(
        &mut self,
        source_name: &str,
        input: &RawInput,
        outcome: Result<Event, Rejection>,
    ) -> Result<(), ProducerError> {
        let index = self.received;
        self.received += 1;
        let outcome = outcome.and_then(|mut event| {
            if let Some(received) = input.received_at {
                stamp_received_at(&mut event, received)?;
            }
            let payload = encode_avro(&event);
            Ok((event, payload))
        });
        // The log's reader holds records to the event limit too: one that
        // grew past it when written out (numbers such as `1e15` come back
        // as `1000000000000000.0`) would be accepted here and refused by
        // the fold.
        let outcome = outcome.and_then(|(event, payload)| {
            if payload.len() > MAX_EVENT_BYTES {
                Err(Rejection::new(
                    ReasonCode::TooLarge,
                    None,
                    format!(
                        "the event is {} bytes as the log stores it (numbers written out in full); the limit is 32 KiB ({MAX_EVENT_BYTES} bytes)",
                        payload.len()
                    ),
                ))
            } else {
                Ok((event, payload))
            }
        });
        match outcome {
            Ok((event, payload)) => {
                *self
                    .accepted_by_kind
                    .entry(event.kind().as_str())
                    .or_default() += 1;
                if payload.is_empty() {
                    // A validated event always fits its schema; if one ever
                    // did not, nothing of the batch is written.
                    return Err(ProducerError::Encode {
                        message_id: event.message_id,
                    });
                }
                self.entries.push(LogEntry {
                    key: event.workspace_id,
                    payload,
                });
                self.report.accepted += 1;
            }
            Err(rejection) => {
                self.dead_letters.push(DeadLetter {
                    reason: rejection.reason.as_str().to_owned(),
                    field: rejection.field.clone(),
                    message: rejection.message.clone(),
                    source: source_name.to_owned(),
                    partition: input.partition,
                    position: input.position,
                    raw: input.bytes.clone(),
                    truncated: input.truncated,
                    workspace: None,
                });
                self.report.rejected.push((index, rejection));
            }
        }
        Ok(())
    }

    /// Counts a valid input that has nothing to store (Segment's `group`).
    pub fn acknowledge(&mut self) {
        self.received += 1;
        self.report.accepted += 1;
        *self.accepted_by_kind.entry("group").or_default() += 1;
    }

    /// Inputs pushed so far.
    pub fn received(&self) -> usize {
        self.received
    }
}
