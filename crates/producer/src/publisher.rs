//! Validate, then append or dead-letter, then report.

use idfold_events::{decode_event, encode_avro, ReasonCode, Rejection, MAX_EVENT_BYTES};
use idfold_log::{DeadLetter, DeadLetterStore, EventLog};
use idfold_telemetry::names;

use crate::error::ProducerError;

/// One input as received.
#[derive(Debug, Clone)]
pub struct RawInput {
    pub bytes: Vec<u8>,
    /// Line (files) or offset (logs) in the source, for the error report.
    pub position: Option<u64>,
    /// The input was longer than what was kept of it.
    pub truncated: bool,
}

#[derive(Debug, Default)]
pub struct PublishReport {
    pub accepted: usize,
    /// (index in the batch, why), in input order.
    pub rejected: Vec<(usize, Rejection)>,
}

/// Publishes batches of inputs from one kind of source.
#[derive(Debug)]
pub struct Publisher<'a, L: EventLog + ?Sized> {
    log: &'a L,
    dead_letters: &'a DeadLetterStore,
    /// Metric label: a bounded set (`file`, `stdin`, `http`, `kafka`).
    source_kind: &'static str,
}

impl<'a, L: EventLog + ?Sized> Publisher<'a, L> {
    pub fn new(log: &'a L, dead_letters: &'a DeadLetterStore, source_kind: &'static str) -> Self {
        Publisher {
            log,
            dead_letters,
            source_kind,
        }
    }

    /// Validates every input; appends the accepted ones (durably) and stores
    /// the rejected ones before returning.
    pub fn publish(
        &self,
        source_name: &str,
        inputs: &[RawInput],
    ) -> Result<PublishReport, ProducerError> {
        let mut report = PublishReport::default();
        let mut payloads = Vec::with_capacity(inputs.len());
        let mut dead = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            let outcome = if input.truncated {
                Err(Rejection::new(
                    ReasonCode::TooLarge,
                    None,
                    format!("the event is over the {} KiB limit", MAX_EVENT_BYTES / 1024),
                ))
            } else {
                decode_event(&input.bytes)
            };
            match outcome {
                Ok(event) => {
                    let payload = encode_avro(&event);
                    if payload.is_empty() {
                        // A validated event always fits its schema; if one
                        // ever did not, nothing of the batch is written.
                        return Err(ProducerError::Encode {
                            message_id: event.message_id,
                        });
                    }
                    payloads.push(payload);
                }
                Err(rejection) => {
                    dead.push(DeadLetter {
                        reason: rejection.reason.as_str().to_owned(),
                        field: rejection.field.clone(),
                        message: rejection.message.clone(),
                        source: source_name.to_owned(),
                        position: input.position,
                        raw: input.bytes.clone(),
                        truncated: input.truncated,
                    });
                    report.rejected.push((index, rejection));
                }
            }
        }
        // Dead letters first: the log append flushes the whole store, so one
        // flush makes both durable before we answer.
        self.dead_letters.append(&dead)?;
        if !payloads.is_empty() {
            self.log.append(&payloads)?;
        }
        report.accepted = payloads.len();
        self.record_metrics(inputs.len(), &report);
        Ok(report)
    }

    fn record_metrics(&self, received: usize, report: &PublishReport) {
        let source = self.source_kind;
        metrics::counter!(names::EVENTS_RECEIVED, "source" => source).increment(received as u64);
        metrics::counter!(names::EVENTS_ACCEPTED, "source" => source)
            .increment(report.accepted as u64);
        let mut by_reason = std::collections::BTreeMap::<ReasonCode, u64>::new();
        for (_, r) in &report.rejected {
            *by_reason.entry(r.reason).or_default() += 1;
        }
        for (reason, n) in by_reason {
            metrics::counter!(names::EVENTS_REJECTED, "source" => source, "reason" => reason.as_str()).increment(n);
        }
    }
}
