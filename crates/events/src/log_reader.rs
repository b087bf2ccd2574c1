//! Reading the canonical log fast.
//!
//! Every record in the log was validated at the edge before it was written,
//! so reading one back does not pay for validation again. This reader knows
//! the fixed schemas (`schemas/*.v1.avsc`) and reads the Avro binary datum
//! straight into an [`Event`] or an [`ErasureRequest`]: no generic value
//! tree, no JSON object rebuilt and validated field by field.
//!
//! What it still checks is what keeps a damaged record from being read as
//! another one: the fingerprint names a known schema, the datum is
//! complete and consumed exactly, lengths and counts are in range, strings
//! are UTF-8, enum and union indexes are in range, the JSON text fields
//! hold JSON objects, the required names are not empty, the workspace id
//! keeps to the character set the store's keys rely on, the times parse
//! (the event time is derived from them) and the event has an identifier.
//! Identifiers go through [`crate::normalize_identifier`] as the fold has
//! always read them: for what this version wrote it is a scan of printable
//! ASCII and gives the same string, and a log written before the rule
//! still folds (and erases) the people it names the same way.
//! What fails is refused with the reason codes [`crate::decode_avro`] gives
//! for the same fault, so an undecodable record goes to the dead letters
//! as before. The rules only the edge enforces (lengths of names, which
//! kinds and channels need an identified user) are not checked again.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::avro::{
    avro_rejection, event_schemas, json_object_text, split_single_object, unknown_schema,
};
use crate::erasure::{
    erasure_fingerprint, erasure_from_fields, ErasureFields, LogPayload, ERASURE_SCHEMA_FILE,
};
use crate::error::Rejection;
use crate::model::{Channel, Event, EventBody, EventKind, IdentifierKind, SurveyAction};
use crate::validate::{
    check_workspace_id, event_time, no_identifier, normalized_identifier, parse_time,
    skew_out_of_range,
};

/// Decodes a canonical log record: an event, or an erasure request.
pub fn decode_log_payload(bytes: &[u8]) -> Result<LogPayload, Rejection> {
    let (fingerprint, body) = split_single_object(bytes)?;
    match schema_of(&fingerprint) {
        Some(Schema::Event(kind, file)) => read_event(kind, body)
            .map_err(|fault| mismatch(file, fault))?
            .into_event()
            .map(LogPayload::Event),
        Some(Schema::Erasure) => read_erasure(body)
            .map_err(|fault| mismatch(ERASURE_SCHEMA_FILE, fault))
            .and_then(erasure_from_fields)
            .map(LogPayload::Erasure),
        None => Err(unknown_schema(&fingerprint)),
    }
}

#[derive(Debug, Clone, Copy)]
enum Schema {
    Event(EventKind, &'static str),
    Erasure,
}

/// The schema a fingerprint names, from a table built once.
fn schema_of(fingerprint: &[u8; 8]) -> Option<Schema> {
    static TABLE: OnceLock<Vec<([u8; 8], Schema)>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let events = event_schemas().map(|(kind, file, fp)| (fp, Schema::Event(kind, file)));
            let erasure = erasure_fingerprint().map(|fp| (fp, Schema::Erasure));
            events.chain(erasure).collect()
        })
        .iter()
        .find(|(fp, _)| fp == fingerprint)
        .map(|&(_, schema)| schema)
}

/// Why a datum does not match its schema, as `decode_avro` words it.
fn mismatch(file: &str, fault: Fault) -> Rejection {
    avro_rejection(format!("Avro body does not match schema {file}: {fault}"))
}

/// What is wrong with a datum: rare, so a sentence is built on the spot.
type Fault = String;

/// A read position in a datum. Every read checks what is left, so no
/// length or count can make it allocate or index past the end.
pub(crate) struct Datum<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Datum<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Datum<'a> {
        Datum { bytes, pos: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, Fault> {
        let b = self
            .bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| "the datum is truncated".to_owned())?;
        self.pos += 1;
        Ok(b)
    }

    /// A zig-zag varint `long` (at most 10 bytes).
    pub(crate) fn long(&mut self) -> Result<i64, Fault> {
        let mut raw: u64 = 0;
        for i in 0..10u32 {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                let unsigned = raw >> 1;
                let value = if raw & 1 == 0 { unsigned } else { !unsigned };
                return Ok(value as i64);
            }
        }
        Err("a variable-length integer is longer than 10 bytes".to_owned())
    }

    /// A non-negative length no larger than what is left.
    pub(crate) fn length(&mut self, what: &str) -> Result<usize, Fault> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative {what} length {len}"))?;
        if len > self.remaining() {
            return Err(format!(
                "{what} length {len} is more than the {} bytes left",
                self.remaining()
            ));
        }
        Ok(len)
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], Fault> {
        let end = self.pos.checked_add(len).ok_or("length overflow")?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| "the datum is truncated".to_owned())?;
        self.pos = end;
        Ok(slice)
    }

    fn string(&mut self) -> Result<&'a str, Fault> {
        let len = self.length("string")?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| "a string is not valid UTF-8".to_owned())
    }

    /// An enum's symbol, by its index in `symbols`.
    fn symbol<T: Copy>(&mut self, symbols: &[T]) -> Result<T, Fault> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| symbols.get(i))
            .copied()
            .ok_or_else(|| format!("enum index {index} is out of range"))
    }

    /// Whether a `["null", T]` union holds a `T`.
    fn present(&mut self) -> Result<bool, Fault> {
        match self.long()? {
            0 => Ok(false),
            1 => Ok(true),
            index => Err(format!("union branch {index} is out of range")),
        }
    }

    fn optional_string(&mut self) -> Result<Option<&'a str>, Fault> {
        if self.present()? {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The item count of an array's next block, None at its end (a count
    /// of 0). A negative count is followed by the block's size in bytes,
    /// which is read past. Every item of our arrays takes at least one
    /// byte, so a count beyond what is left is refused before any
    /// allocation.
    pub(crate) fn block_count(&mut self) -> Result<Option<usize>, Fault> {
        let count = self.long()?;
        if count == 0 {
            return Ok(None);
        }
        if count < 0 {
            let _size = self.long()?;
        }
        let count = count
            .checked_abs()
            .and_then(|c| usize::try_from(c).ok())
            .ok_or_else(|| format!("bad array block count {count}"))?;
        if count > self.remaining() {
            return Err(format!(
                "array block of {count} items is longer than the {} bytes left",
                self.remaining()
            ));
        }
        Ok(Some(count))
    }

    /// An array of strings, in blocks: a count, then that many items, until
    /// a count of 0. A negative count is followed by the block's size in
    /// bytes (which lets a reader skip it); the items follow all the same.
    fn strings(&mut self) -> Result<Vec<&'a str>, Fault> {
        let mut items = Vec::new();
        loop {
            let Some(count) = self.block_count()? else {
                return Ok(items);
            };
            items.reserve(count);
            for _ in 0..count {
                items.push(self.string()?);
            }
        }
    }

    fn finish(&self) -> Result<(), Fault> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(format!("{left} trailing bytes after the datum")),
        }
    }
}

/// Reads one field, naming it in the fault as `decode_avro` does.
fn field<'a, T>(
    datum: &mut Datum<'a>,
    name: &str,
    read: impl FnOnce(&mut Datum<'a>) -> Result<T, Fault>,
) -> Result<T, Fault> {
    read(datum).map_err(|why| format!("field `{name}`: {why}"))
}

/// An event's fields as its datum holds them, borrowed from the record.
struct RawEvent<'a> {
    message_id: &'a str,
    workspace_id: &'a str,
    timestamp: &'a str,
    sent_at: Option<&'a str>,
    received_at: Option<&'a str>,
    channel: Channel,
    user_id: Option<&'a str>,
    email: Option<&'a str>,
    anonymous_id: Option<&'a str>,
    body: RawBody<'a>,
}

enum RawBody<'a> {
    Identify {
        traits: Option<&'a str>,
    },
    Traits {
        traits: &'a str,
        set_once: Option<&'a str>,
        unset: Option<Vec<&'a str>>,
    },
    Track {
        event: &'a str,
        properties: Option<&'a str>,
    },
    Survey {
        survey_id: &'a str,
        action: SurveyAction,
        response_id: Option<&'a str>,
        answers: Option<&'a str>,
        context: Option<&'a str>,
    },
}

/// The field names of each event schema, in the order the reader reads
/// them (a test holds them to the schema files).
#[cfg(test)]
pub(crate) fn event_field_names(kind: EventKind) -> Vec<&'static str> {
    let mut names = vec![
        "message_id",
        "workspace_id",
        "timestamp",
        "sent_at",
        "received_at",
        "channel",
        "user_id",
        "email",
        "anonymous_id",
    ];
    names.extend_from_slice(match kind {
        EventKind::Identify => &["traits"][..],
        EventKind::Traits => &["traits", "set_once", "unset"],
        EventKind::Track => &["event", "properties"],
        EventKind::Survey => &["survey_id", "action", "response_id", "answers", "context"],
    });
    names
}

/// Reads an event datum of `kind`'s schema, whole and exactly.
fn read_event(kind: EventKind, bytes: &[u8]) -> Result<RawEvent<'_>, Fault> {
    let d = &mut Datum { bytes, pos: 0 };
    let message_id = field(d, "message_id", Datum::string)?;
    let workspace_id = field(d, "workspace_id", Datum::string)?;
    let timestamp = field(d, "timestamp", Datum::string)?;
    let sent_at = field(d, "sent_at", Datum::optional_string)?;
    let received_at = field(d, "received_at", Datum::optional_string)?;
    // The schemas' symbols are in the order of `Channel::ALL` and
    // `SurveyAction::ALL` (tested).
    let channel = field(d, "channel", |d| d.symbol(&Channel::ALL))?;
    let user_id = field(d, "user_id", Datum::optional_string)?;
    let email = field(d, "email", Datum::optional_string)?;
    let anonymous_id = field(d, "anonymous_id", Datum::optional_string)?;
    let body = match kind {
        EventKind::Identify => RawBody::Identify {
            traits: field(d, "traits", Datum::optional_string)?,
        },
        EventKind::Traits => RawBody::Traits {
            traits: field(d, "traits", Datum::string)?,
            set_once: field(d, "set_once", Datum::optional_string)?,
            unset: field(d, "unset", |d| {
                if d.present()? {
                    d.strings().map(Some)
                } else {
                    Ok(None)
                }
            })?,
        },
        EventKind::Track => RawBody::Track {
            event: field(d, "event", Datum::string)?,
            properties: field(d, "properties", Datum::optional_string)?,
        },
        EventKind::Survey => RawBody::Survey {
            survey_id: field(d, "survey_id", Datum::string)?,
            action: field(d, "action", |d| d.symbol(&SurveyAction::ALL))?,
            response_id: field(d, "response_id", Datum::optional_string)?,
            answers: field(d, "answers", Datum::optional_string)?,
            context: field(d, "context", Datum::optional_string)?,
        },
    };
    d.finish()?;
    Ok(RawEvent {
        message_id,
        workspace_id,
        timestamp,
        sent_at,
        received_at,
        channel,
        user_id,
        email,
        anonymous_id,
        body,
    })
}

/// Reads an erasure datum, whole and exactly.
fn read_erasure(bytes: &[u8]) -> Result<ErasureFields<'_>, Fault> {
    let d = &mut Datum { bytes, pos: 0 };
    let fields = ErasureFields {
        erasure_id: field(d, "erasure_id", Datum::string)?,
        workspace_id: field(d, "workspace_id", Datum::string)?,
        profile_id: field(d, "profile_id", Datum::string)?,
        requested_at: field(d, "requested_at", Datum::string)?,
    };
    d.finish()?;
    Ok(fields)
}

fn optional_json_object(
    name: &str,
    text: Option<&str>,
) -> Result<Option<Map<String, Value>>, Rejection> {
    text.map(|t| json_object_text(name, t)).transpose()
}

/// A required name: present means not empty.
fn name(field: &str, text: &str) -> Result<String, Rejection> {
    if text.is_empty() {
        Err(Rejection::invalid(field, "must not be empty"))
    } else {
        Ok(text.to_owned())
    }
}

impl RawEvent<'_> {
    /// The event, checks in the order `decode_avro` makes them so that a
    /// record with several faults is refused for the same one: the JSON
    /// text fields first, then the fields in validation order.
    fn into_event(self) -> Result<Event, Rejection> {
        let body = match self.body {
            RawBody::Identify { traits } => EventBody::Identify {
                traits: optional_json_object("traits", traits)?,
            },
            RawBody::Traits {
                traits,
                set_once,
                unset,
            } => EventBody::Traits {
                traits: json_object_text("traits", traits)?,
                set_once: optional_json_object("set_once", set_once)?,
                unset: unset.map(|names| names.into_iter().map(str::to_owned).collect()),
            },
            RawBody::Track { event, properties } => {
                let properties = optional_json_object("properties", properties)?;
                EventBody::Track {
                    event: event.to_owned(),
                    properties,
                }
            }
            RawBody::Survey {
                survey_id,
                action,
                response_id,
                answers,
                context,
            } => {
                let answers = optional_json_object("answers", answers)?;
                let context = optional_json_object("context", context)?;
                EventBody::Survey {
                    survey_id: survey_id.to_owned(),
                    action,
                    response_id: response_id.map(str::to_owned),
                    answers,
                    context,
                }
            }
        };

        let message_id = name("message_id", self.message_id)?;
        // The store builds its keys from it (a NUL would end the prefix
        // early): its character set is checked again, 64 bytes at most.
        check_workspace_id(self.workspace_id)?;
        let workspace_id = self.workspace_id.to_owned();
        let timestamp_nanos = parse_time("timestamp", self.timestamp)?;
        let sent_nanos = self.sent_at.map(|t| parse_time("sent_at", t)).transpose()?;
        let received_nanos = self
            .received_at
            .map(|t| parse_time("received_at", t))
            .transpose()?;
        let user_id = normalized_identifier(IdentifierKind::User, self.user_id)?;
        let email = normalized_identifier(IdentifierKind::Email, self.email)?;
        let anonymous_id = normalized_identifier(IdentifierKind::Anonymous, self.anonymous_id)?;
        if user_id.is_none() && email.is_none() && anonymous_id.is_none() {
            return Err(no_identifier());
        }
        match &body {
            EventBody::Track { event, .. } if event.is_empty() => {
                return Err(Rejection::invalid("event", "must not be empty"));
            }
            EventBody::Survey { survey_id, .. } if survey_id.is_empty() => {
                return Err(Rejection::invalid("survey_id", "must not be empty"));
            }
            EventBody::Survey {
                response_id: Some(r),
                ..
            } if r.is_empty() => {
                return Err(Rejection::invalid("response_id", "must not be empty"));
            }
            _ => {}
        }
        let event_time = event_time(timestamp_nanos, sent_nanos, received_nanos)
            .map_err(|corrected| skew_out_of_range(corrected, self.sent_at, self.received_at))?;

        Ok(Event {
            message_id,
            workspace_id,
            timestamp: self.timestamp.to_owned(),
            sent_at: self.sent_at.map(str::to_owned),
            received_at: self.received_at.map(str::to_owned),
            channel: self.channel,
            user_id,
            email,
            anonymous_id,
            body,
            event_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use apache_avro::Schema as AvroSchema;
    use proptest::prelude::*;
    use serde_json::json;

    use crate::avro::tests::full;
    use crate::avro::{decode_avro, encode_avro, AVRO_MAGIC};
    use crate::erasure::{encode_erasure, ErasureRequest};
    use crate::error::ReasonCode;
    use crate::model::Identifier;
    use crate::validate::tests::{arb_event_object, arb_json};
    use crate::validate::{decode_json, validate_value};

    const KINDS: [&str; 4] = ["identify", "traits", "track", "survey"];

    fn event(v: &Value) -> Event {
        decode_json(v.to_string().as_bytes()).unwrap_or_else(|r| panic!("{v}: {r}"))
    }

    /// The reader's answer for a record, beside the generic decoder's.
    fn both(bytes: &[u8]) -> (Result<LogPayload, Rejection>, Result<LogPayload, Rejection>) {
        (
            decode_log_payload(bytes),
            decode_avro(bytes).map(LogPayload::Event),
        )
    }

    fn schema_fields(source: &str) -> Vec<(String, AvroSchema)> {
        match AvroSchema::parse_str(source) {
            Ok(AvroSchema::Record(r)) => r.fields.into_iter().map(|f| (f.name, f.schema)).collect(),
            other => panic!("not a record schema: {other:?}"),
        }
    }

    fn symbols(fields: &[(String, AvroSchema)], name: &str) -> Vec<String> {
        match fields.iter().find(|(n, _)| n == name) {
            Some((_, AvroSchema::Enum(e))) => e.symbols.clone(),
            other => panic!("`{name}` is not an enum: {other:?}"),
        }
    }

    #[test]
    fn the_schema_files_hold_the_fields_in_the_order_the_reader_reads_them() {
        let sources = [
            (
                EventKind::Identify,
                include_str!("../../../schemas/identify.v1.avsc"),
            ),
            (
                EventKind::Traits,
                include_str!("../../../schemas/traits.v1.avsc"),
            ),
            (
                EventKind::Track,
                include_str!("../../../schemas/track.v1.avsc"),
            ),
            (
                EventKind::Survey,
                include_str!("../../../schemas/survey.v1.avsc"),
            ),
        ];
        for (kind, source) in sources {
            let fields = schema_fields(source);
            let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, event_field_names(kind), "{kind:?}");
            assert_eq!(
                symbols(&fields, "channel"),
                Channel::ALL.map(|c| c.as_str().to_owned())
            );
            if kind == EventKind::Survey {
                assert_eq!(
                    symbols(&fields, "action"),
                    SurveyAction::ALL.map(|a| a.as_str().to_owned())
                );
            }
        }
        let erasure = schema_fields(include_str!("../../../schemas/erasure.v1.avsc"));
        let names: Vec<&str> = erasure.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["erasure_id", "workspace_id", "profile_id", "requested_at"]
        );
        assert!(erasure.iter().all(|(_, s)| *s == AvroSchema::String));
    }

    #[test]
    fn reads_every_kind_as_the_generic_decoder_does() {
        for kind in KINDS {
            let mut minimal = json!({
                "type": kind, "message_id": "m", "workspace_id": "w",
                "timestamp": "2026-01-31T12:00:00Z", "user_id": "u",
            });
            match kind {
                "traits" => minimal["traits"] = json!({}),
                "track" => minimal["event"] = json!("e"),
                "survey" => {
                    minimal["survey_id"] = json!("s");
                    minimal["action"] = json!("dismissed");
                }
                _ => {}
            }
            for v in [full(kind), minimal] {
                let e = event(&v);
                let (read, generic) = both(&encode_avro(&e));
                assert_eq!(read, Ok(LogPayload::Event(e)), "{v}");
                assert_eq!(read, generic);
            }
        }
    }

    #[test]
    fn unset_is_read_in_blocks_with_negative_counts() {
        let mut v = full("traits");
        v["unset"] = json!(["a", "b", "c"]);
        let e = event(&v);
        let bytes = encode_avro(&e);
        // The encoder writes one block: count 3 (zig-zag 6), the items, 0.
        let block: Vec<u8> = [&[6u8][..], &[2, b'a', 2, b'b', 2, b'c'], &[0]].concat();
        let at = bytes
            .windows(block.len())
            .rposition(|w| w == block)
            .expect("the unset block");
        // Two blocks: -2 (zig-zag 3) items in 4 bytes (zig-zag 8), then
        // 1 item, then the end.
        let blocks: Vec<u8> = [&[3u8, 8][..], &[2, b'a', 2, b'b'], &[2, 2, b'c'], &[0]].concat();
        let mut split = bytes.clone();
        split.splice(at..at + block.len(), blocks);
        let (read, generic) = both(&split);
        assert_eq!(read, Ok(LogPayload::Event(e)));
        assert_eq!(read, generic);
    }

    #[test]
    fn unknown_and_broken_headers_are_refused_as_the_generic_decoder_does() {
        let bytes = encode_avro(&event(&full("track")));
        let mut unknown = bytes.clone();
        unknown[5] ^= 0x55;
        for record in [
            &[][..],
            &[0xC3, 0x01, 1],
            &bytes[..10],
            &unknown,
            &[b'{'; 12],
            &vec![0xC3; crate::MAX_EVENT_BYTES + 1],
        ] {
            let (read, generic) = both(record);
            assert!(read.is_err());
            assert_eq!(read, generic);
        }
        let r = decode_log_payload(&unknown).expect_err("unknown");
        assert_eq!(r.reason, ReasonCode::UnknownSchema);
        assert!(r.message.contains("erasure") || r.message.contains("track.v1.avsc"));
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused_as_a_mismatch() {
        for kind in KINDS {
            let bytes = encode_avro(&event(&full(kind)));
            for cut in 0..bytes.len() {
                let (read, generic) = both(&bytes[..cut]);
                let read = read.expect_err("a truncated record");
                assert_eq!(read.field.as_deref(), Some("avro"), "{kind} cut at {cut}");
                assert_eq!(Err(read), generic, "{kind} cut at {cut}");
            }
            let mut longer = bytes;
            longer.push(0);
            let (read, generic) = both(&longer);
            assert!(read.as_ref().is_err_and(|r| r.message.contains("trailing")));
            assert_eq!(read, generic);
        }
    }

    /// A track record of workspace `w` whose datum is given field by field.
    fn track_record(
        message_id: &str,
        timestamp: &str,
        user_id: Option<&str>,
        properties: Option<&str>,
    ) -> Vec<u8> {
        track_record_in("w", message_id, timestamp, user_id, properties)
    }

    fn track_record_in(
        workspace_id: &str,
        message_id: &str,
        timestamp: &str,
        user_id: Option<&str>,
        properties: Option<&str>,
    ) -> Vec<u8> {
        let fp = event_schemas()
            .find(|(k, _, _)| *k == EventKind::Track)
            .map(|(_, _, fp)| fp)
            .expect("track schema");
        let mut out = [&AVRO_MAGIC[..], &fp[..]].concat();
        let string = |out: &mut Vec<u8>, s: &str| {
            // Short strings only: the length is one zig-zag byte.
            out.push(u8::try_from(s.len() * 2).expect("short"));
            out.extend_from_slice(s.as_bytes());
        };
        let optional = |out: &mut Vec<u8>, s: Option<&str>| match s {
            None => out.push(0),
            Some(s) => {
                out.push(2);
                string(out, s);
            }
        };
        string(&mut out, message_id);
        string(&mut out, workspace_id);
        string(&mut out, timestamp);
        optional(&mut out, None);
        optional(&mut out, None);
        out.push(8); // channel api
        optional(&mut out, user_id);
        optional(&mut out, None);
        optional(&mut out, None);
        string(&mut out, "e");
        optional(&mut out, properties);
        out
    }

    #[test]
    fn what_a_record_cannot_mean_is_refused_with_the_generic_decoders_reason() {
        let ok = track_record("m", "2026-01-31T12:00:00Z", Some("u"), Some("{}"));
        assert!(matches!(decode_log_payload(&ok), Ok(LogPayload::Event(_))));
        let cases = [
            (
                track_record("", "2026-01-31T12:00:00Z", Some("u"), None),
                "message_id",
            ),
            (track_record("m", "yesterday", Some("u"), None), "timestamp"),
            (
                track_record_in("a\0b", "m", "2026-01-31T12:00:00Z", Some("u"), None),
                "workspace_id",
            ),
            (
                track_record_in("", "m", "2026-01-31T12:00:00Z", Some("u"), None),
                "workspace_id",
            ),
            (
                track_record("m", "2026-01-31T12:00:00Z", None, None),
                "none",
            ),
            (
                track_record("m", "2026-01-31T12:00:00Z", Some("u"), Some("[1]")),
                "properties",
            ),
            (
                track_record("m", "2026-01-31T12:00:00Z", Some("u"), Some("{")),
                "properties",
            ),
            // Two faults: the JSON text is reported first, as before.
            (
                track_record("", "2026-01-31T12:00:00Z", Some("u"), Some("1")),
                "properties",
            ),
        ];
        for (record, field) in cases {
            let (read, generic) = both(&record);
            let read = read.expect_err(field);
            assert_eq!(read.field.as_deref().unwrap_or("none"), field, "{read}");
            assert_eq!(Err(read), generic);
        }
        // Bad UTF-8 in the message id, and an enum index past the symbols.
        let mut bad_utf8 = ok.clone();
        bad_utf8[11] = 0xFF;
        let mut bad_enum = ok.clone();
        let channel_at = 10 + 2 + 2 + 21 + 1 + 1;
        assert_eq!(bad_enum[channel_at], 8, "the channel byte");
        bad_enum[channel_at] = 10;
        let mut bad_branch = ok;
        bad_branch[channel_at + 1] = 4;
        for record in [bad_utf8, bad_enum, bad_branch] {
            let (read, generic) = both(&record);
            let read = read.expect_err("a mismatch");
            assert_eq!(
                (read.reason, read.field.as_deref()),
                (ReasonCode::InvalidField, Some("avro"))
            );
            assert_eq!(Err(read), generic);
        }
    }

    #[test]
    fn identifiers_are_read_as_the_generic_decoder_reads_them() {
        // As a log written before normalisation holds them.
        let older = track_record("m", "2026-01-31T12:00:00Z", Some(" Ｕ１ "), None);
        let (read, generic) = both(&older);
        let Ok(LogPayload::Event(e)) = &read else {
            panic!("{read:?}")
        };
        assert_eq!(e.user_id.as_deref(), Some("U1"));
        assert_eq!(read, generic);
        let placeholder = track_record("m", "2026-01-31T12:00:00Z", Some("nil"), None);
        let (read, generic) = both(&placeholder);
        assert_eq!(
            read.as_ref().err().and_then(|r| r.field.as_deref()),
            Some("user_id")
        );
        assert_eq!(read, generic);
    }

    #[test]
    fn erasure_requests_are_read_whole() {
        let request = ErasureRequest {
            erasure_id: "er-1".into(),
            workspace_id: "ws".into(),
            profile: Identifier::email("ada@example.com"),
            requested_at: 1_780_000_000_123_000_000,
        };
        let bytes = encode_erasure(&request);
        assert_eq!(decode_log_payload(&bytes), Ok(LogPayload::Erasure(request)));
        for cut in 10..bytes.len() {
            let r = decode_log_payload(&bytes[..cut]).expect_err("cut");
            assert_eq!(r.field.as_deref(), Some("avro"));
            assert!(r.message.contains("erasure.v1.avsc"), "{r}");
        }
    }

    proptest! {
        #[test]
        fn valid_events_are_read_exactly_as_the_generic_decoder_reads_them(v in arb_event_object()) {
            if let Ok(e) = validate_value(&v) {
                let bytes = encode_avro(&e);
                let (read, generic) = both(&bytes);
                prop_assert_eq!(&read, &Ok(LogPayload::Event(e)));
                prop_assert_eq!(read, generic);
            }
        }

        #[test]
        fn any_json_objects_are_read_as_the_generic_decoder_reads_them(
            kind in prop::sample::select(KINDS.to_vec()),
            objects in prop::collection::vec(arb_json(), 5),
        ) {
            let mut v = full(kind);
            let fields = ["traits", "set_once", "properties", "answers", "context"];
            for (name, object) in fields.into_iter().zip(objects) {
                if v.get(name).is_some() {
                    v[name] = match object {
                        Value::Object(m) => Value::Object(m),
                        other => json!({ "v": other }),
                    };
                }
            }
            let e = event(&v);
            let (read, generic) = both(&encode_avro(&e));
            prop_assert_eq!(&read, &Ok(LogPayload::Event(e)));
            prop_assert_eq!(read, generic);
        }

        #[test]
        fn damaged_records_are_refused_or_read_as_the_generic_decoder_reads_them(
            kind in prop::sample::select(KINDS.to_vec()),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            keep in any::<prop::sample::Index>(),
            cut in any::<bool>(),
        ) {
            let mut bytes = encode_avro(&event(&full(kind)));
            let len = bytes.len();
            for (i, b) in flips {
                // The datum, not the header: the header has its own tests.
                let at = 10 + i.index(len - 10);
                bytes[at] ^= b;
            }
            if cut {
                bytes.truncate(keep.index(len + 1));
            }
            let (read, generic) = both(&bytes);
            match (&read, &generic) {
                (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
                // Only the rules the edge enforces alone may let through
                // what the generic decoder refuses.
                (Ok(_), Err(refused)) => prop_assert_ne!(refused.field.as_deref(), Some("avro")),
                (Err(refused), Ok(_)) => prop_assert!(false, "refused what decodes: {}", refused),
            }
            if generic.is_ok() {
                prop_assert_eq!(&read, &generic);
            }
            let structural = |r: &Result<LogPayload, Rejection>| {
                r.as_ref().err().is_some_and(|r| r.field.as_deref() == Some("avro"))
            };
            prop_assert_eq!(structural(&read), structural(&generic));
            if structural(&read) {
                prop_assert_eq!(read, generic);
            }
        }
    }
}
