//! The Avro codec: what the log stores.
//!
//! Each event kind has its own versioned record schema in `schemas/`
//! (`identify.v1.avsc`, ...). An encoded event uses Avro *single-object
//! encoding*: the magic `C3 01`, the schema's CRC-64-AVRO (Rabin) fingerprint
//! as 8 bytes little-endian, then the Avro binary datum. The fingerprint picks
//! the schema on the way back, so the kind is not stored in the datum.
//!
//! Avro has no arbitrary-JSON type, so JSON objects (`traits`, `set_once`,
//! `properties`, `answers`, `context`) are stored as the JSON text of the
//! object. Decoding rebuilds the canonical JSON shape and runs
//! [`validate_value`] on it, so both codecs obey exactly the same rules.
//! That is for input; the fold reads the log, validated when written,
//! with the faster `log_reader`.

use std::sync::OnceLock;

use apache_avro::rabin::Rabin;
use apache_avro::schema::{EnumSchema, RecordSchema};
use apache_avro::types::Value as AvroValue;
use apache_avro::{GenericSingleObjectReader, Schema};
use serde_json::{Map, Value};

use crate::error::{ReasonCode, Rejection};
use crate::log_reader::Datum;
use crate::model::{Event, EventBody, EventKind};
use crate::validate::{check_size, validate_value};

/// The two bytes every Avro single-object encoded datum starts with.
pub const AVRO_MAGIC: [u8; 2] = [0xC3, 0x01];

/// Magic plus the 8-byte fingerprint.
const HEADER_LEN: usize = 10;

/// Fields whose Avro string holds the JSON text of a JSON object.
const JSON_TEXT_FIELDS: [&str; 5] = ["traits", "set_once", "properties", "answers", "context"];

const SCHEMA_SOURCES: [(EventKind, &str, &str); 4] = [
    (
        EventKind::Identify,
        "identify.v1.avsc",
        include_str!("../../../schemas/identify.v1.avsc"),
    ),
    (
        EventKind::Traits,
        "traits.v1.avsc",
        include_str!("../../../schemas/traits.v1.avsc"),
    ),
    (
        EventKind::Track,
        "track.v1.avsc",
        include_str!("../../../schemas/track.v1.avsc"),
    ),
    (
        EventKind::Survey,
        "survey.v1.avsc",
        include_str!("../../../schemas/survey.v1.avsc"),
    ),
];

/// One parsed schema.
struct Codec {
    kind: EventKind,
    file: &'static str,
    schema: Schema,
    /// CRC-64-AVRO of the Parsing Canonical Form, little-endian, as it
    /// appears in the single-object header.
    fingerprint: [u8; 8],
    /// Holds the schema resolved once: `from_avro_datum` would resolve it
    /// again for every record (a third of the decode time).
    reader: GenericSingleObjectReader,
}

/// The parsed schemas, parsed once. A schema that fails to parse (a bug,
/// caught by the tests) is left out rather than panicking.
fn codecs() -> &'static [Codec] {
    static CODECS: OnceLock<Vec<Codec>> = OnceLock::new();
    CODECS.get_or_init(|| {
        SCHEMA_SOURCES
            .iter()
            .filter_map(|&(kind, file, source)| {
                let schema = Schema::parse_str(source).ok()?;
                let fingerprint = schema.fingerprint::<Rabin>().bytes.try_into().ok()?;
                let reader = GenericSingleObjectReader::new(schema.clone()).ok()?;
                Some(Codec {
                    kind,
                    file,
                    schema,
                    fingerprint,
                    reader,
                })
            })
            .collect()
    })
}

/// The event schemas as the log reader needs them: kind, file name and
/// the fingerprint of each.
pub(crate) fn event_schemas() -> impl Iterator<Item = (EventKind, &'static str, [u8; 8])> {
    codecs().iter().map(|c| (c.kind, c.file, c.fingerprint))
}

fn codec_for_kind(kind: EventKind) -> Option<&'static Codec> {
    codecs().iter().find(|c| c.kind == kind)
}

/// The schema files and their CRC-64-AVRO fingerprints (as the
/// little-endian `u64` read from the 8 header bytes).
pub fn schema_fingerprints() -> Vec<(&'static str, u64)> {
    codecs()
        .iter()
        .map(|c| (c.file, u64::from_le_bytes(c.fingerprint)))
        .collect()
}

/// Whether the bytes look like Avro single-object encoding (start with
/// [`AVRO_MAGIC`]). JSON can never start with these bytes.
pub fn is_avro_single_object(bytes: &[u8]) -> bool {
    bytes.starts_with(&AVRO_MAGIC)
}

// ---------------------------------------------------------------------------
// Encoding

fn string(s: &str) -> AvroValue {
    AvroValue::String(s.to_owned())
}

fn optional(value: Option<AvroValue>) -> AvroValue {
    match value {
        None => AvroValue::Union(0, Box::new(AvroValue::Null)),
        Some(v) => AvroValue::Union(1, Box::new(v)),
    }
}

fn optional_string(s: &Option<String>) -> AvroValue {
    optional(s.as_deref().map(string))
}

fn json_text(m: &Map<String, Value>) -> AvroValue {
    // `Display` for a JSON value is infallible and compact.
    AvroValue::String(Value::Object(m.clone()).to_string())
}

fn optional_json_text(m: &Option<Map<String, Value>>) -> AvroValue {
    optional(m.as_ref().map(json_text))
}

/// An enum value, by symbol, for the enum type of `field` in `schema`.
fn enum_value(schema: &Schema, field: &str, symbol: &str) -> AvroValue {
    let index = match schema {
        Schema::Record(RecordSchema { fields, .. }) => fields
            .iter()
            .find(|f| f.name == field)
            .and_then(|f| match &f.schema {
                Schema::Enum(EnumSchema { symbols, .. }) => {
                    symbols.iter().position(|s| s == symbol)
                }
                _ => None,
            }),
        _ => None,
    };
    match index.and_then(|i| u32::try_from(i).ok()) {
        Some(i) => AvroValue::Enum(i, symbol.to_owned()),
        // Not in the schema: to_avro_datum rejects it.
        None => AvroValue::Null,
    }
}

/// Encodes a (validated) event as Avro single-object encoding with the
/// schema of its kind.
///
/// The schemas are ours and every [`Event`] fits its schema, so encoding
/// cannot fail; if it ever did (a bug, covered by the round-trip tests) the
/// result is empty, which the decoder rejects, rather than a panic.
pub fn encode_avro(event: &Event) -> Vec<u8> {
    let Some(codec) = codec_for_kind(event.kind()) else {
        return Vec::new();
    };
    let schema = &codec.schema;
    let mut fields: Vec<(String, AvroValue)> = vec![
        ("message_id".into(), string(&event.message_id)),
        ("workspace_id".into(), string(&event.workspace_id)),
        ("timestamp".into(), string(&event.timestamp)),
        ("sent_at".into(), optional_string(&event.sent_at)),
        ("received_at".into(), optional_string(&event.received_at)),
        (
            "channel".into(),
            enum_value(schema, "channel", event.channel.as_str()),
        ),
        ("user_id".into(), optional_string(&event.user_id)),
        ("email".into(), optional_string(&event.email)),
        ("anonymous_id".into(), optional_string(&event.anonymous_id)),
    ];
    match &event.body {
        EventBody::Identify { traits } => {
            fields.push(("traits".into(), optional_json_text(traits)));
        }
        EventBody::Traits {
            traits,
            set_once,
            unset,
        } => {
            fields.push(("traits".into(), json_text(traits)));
            fields.push(("set_once".into(), optional_json_text(set_once)));
            let unset = unset
                .as_ref()
                .map(|names| AvroValue::Array(names.iter().map(|n| string(n)).collect()));
            fields.push(("unset".into(), optional(unset)));
        }
        EventBody::Track { event, properties } => {
            fields.push(("event".into(), string(event)));
            fields.push(("properties".into(), optional_json_text(properties)));
        }
        EventBody::Survey {
            survey_id,
            action,
            response_id,
            answers,
            context,
        } => {
            fields.push(("survey_id".into(), string(survey_id)));
            fields.push((
                "action".into(),
                enum_value(schema, "action", action.as_str()),
            ));
            fields.push(("response_id".into(), optional_string(response_id)));
            fields.push(("answers".into(), optional_json_text(answers)));
            fields.push(("context".into(), optional_json_text(context)));
        }
    }
    let datum = apache_avro::to_avro_datum(schema, AvroValue::Record(fields)).unwrap_or_default();
    if datum.is_empty() {
        return Vec::new();
    }
    single_object(&codec.fingerprint, &datum)
}

// ---------------------------------------------------------------------------
// Decoding

pub(crate) fn avro_rejection(message: String) -> Rejection {
    Rejection::new(ReasonCode::InvalidField, Some("avro"), message)
}

/// The schema fingerprint and the datum of single-object encoded bytes.
pub(crate) fn split_single_object(bytes: &[u8]) -> Result<([u8; 8], &[u8]), Rejection> {
    check_size(bytes.len())?;
    let (Some(magic), Some(Ok(fingerprint)), Some(body)) = (
        bytes.get(..2),
        bytes.get(2..HEADER_LEN).map(<[u8; 8]>::try_from),
        bytes.get(HEADER_LEN..),
    ) else {
        return Err(avro_rejection(format!(
            "the Avro header is truncated: single-object encoding starts with C3 01 and an \
             8-byte schema fingerprint, but the input is only {} bytes",
            bytes.len()
        )));
    };
    if magic != AVRO_MAGIC {
        return Err(avro_rejection(
            "the input is not Avro single-object encoding: it must start with C3 01".to_owned(),
        ));
    }
    Ok((fingerprint, body))
}

/// Frames an Avro datum as single-object encoding.
pub(crate) fn single_object(fingerprint: &[u8; 8], datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + datum.len());
    out.extend_from_slice(&AVRO_MAGIC);
    out.extend_from_slice(fingerprint);
    out.extend_from_slice(datum);
    out
}

/// Checks that `body` is exactly one complete datum of `schema`.
pub(crate) fn check_complete_datum(schema: &Schema, body: &[u8]) -> Result<(), String> {
    let mut cursor = Datum::new(body);
    check_datum(schema, &mut cursor)?;
    if cursor.position() != body.len() {
        return Err(format!(
            "{} trailing bytes after the datum",
            body.len().saturating_sub(cursor.position())
        ));
    }
    Ok(())
}

/// A fingerprint as its bytes on the wire, in hex: what a hex dump of the
/// record and Avro libraries' fingerprint bytes show.
fn wire_hex(fingerprint: &[u8; 8]) -> String {
    fingerprint.iter().map(|b| format!("{b:02x}")).collect()
}

/// The rejection of a record whose fingerprint names none of the event
/// schemas.
pub(crate) fn unknown_schema(fingerprint: &[u8; 8]) -> Rejection {
    let known = codecs()
        .iter()
        .map(|c| format!("{} ({})", c.file, wire_hex(&c.fingerprint)))
        .collect::<Vec<_>>()
        .join(", ");
    Rejection::new(
        ReasonCode::UnknownSchema,
        None,
        format!(
            "unknown Avro schema fingerprint {} (the 8 bytes after C3 01, in hex); known schemas: {known}",
            wire_hex(fingerprint)
        ),
    )
}

/// A JSON object field as Avro stores it: the JSON text of the object.
pub(crate) fn json_object_text(name: &str, text: &str) -> Result<Map<String, Value>, Rejection> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Rejection::invalid(
            name,
            "must hold the JSON text of a JSON object in the Avro encoding",
        )),
    }
}

/// Decodes and validates one Avro single-object encoded event.
pub fn decode_avro(bytes: &[u8]) -> Result<Event, Rejection> {
    let (fingerprint, body) = split_single_object(bytes)?;
    let Some(codec) = codecs().iter().find(|c| c.fingerprint == fingerprint) else {
        return Err(unknown_schema(&fingerprint));
    };

    let mismatch = |why: String| {
        avro_rejection(format!(
            "Avro body does not match schema {}: {why}",
            codec.file
        ))
    };

    // apache-avro trusts length prefixes (it reserves memory for them) and
    // reads a truncated string or union as null; check the datum strictly
    // first so that it only ever sees complete, exactly-sized data.
    check_complete_datum(&codec.schema, body).map_err(&mismatch)?;

    let mut reader = bytes;
    let datum = codec
        .reader
        .read_value(&mut reader)
        .map_err(|e| mismatch(e.to_string()))?;
    let AvroValue::Record(fields) = datum else {
        return Err(mismatch("the datum is not a record".to_owned()));
    };

    let mut object = Map::new();
    object.insert("type".to_owned(), Value::from(codec.kind.as_str()));
    for (name, value) in fields {
        let value = match value {
            AvroValue::Union(_, inner) => *inner,
            other => other,
        };
        let json = match value {
            AvroValue::Null => continue,
            AvroValue::String(text) if JSON_TEXT_FIELDS.contains(&name.as_str()) => {
                Value::Object(json_object_text(&name, &text)?)
            }
            AvroValue::String(text) | AvroValue::Enum(_, text) => Value::String(text),
            AvroValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        AvroValue::String(s) => out.push(Value::String(s)),
                        other => {
                            return Err(mismatch(format!(
                                "unexpected item {other:?} in field `{name}`"
                            )))
                        }
                    }
                }
                Value::Array(out)
            }
            other => {
                return Err(mismatch(format!(
                    "unexpected value {other:?} in field `{name}`"
                )))
            }
        };
        object.insert(name, json);
    }
    validate_value(&Value::Object(object))
}

/// Walks a datum against one of our schemas, checking that every length and
/// index is in range and that the data is complete. Supports the schema
/// features the idfold schemas use.
fn check_datum(schema: &Schema, cursor: &mut Datum<'_>) -> Result<(), String> {
    match schema {
        Schema::Null => Ok(()),
        Schema::String => {
            let len = cursor.length("string")?;
            let bytes = cursor.take(len)?;
            std::str::from_utf8(bytes).map_err(|_| "a string is not valid UTF-8".to_owned())?;
            Ok(())
        }
        Schema::Enum(EnumSchema { symbols, .. }) => {
            let index = cursor.long()?;
            if usize::try_from(index).is_ok_and(|i| i < symbols.len()) {
                Ok(())
            } else {
                Err(format!("enum index {index} is out of range"))
            }
        }
        Schema::Union(union) => {
            let index = cursor.long()?;
            let variant = usize::try_from(index)
                .ok()
                .and_then(|i| union.variants().get(i))
                .ok_or_else(|| format!("union branch {index} is out of range"))?;
            check_datum(variant, cursor)
        }
        Schema::Array(array) => loop {
            let Some(count) = cursor.block_count()? else {
                return Ok(());
            };
            for _ in 0..count {
                check_datum(&array.items, cursor)?;
            }
        },
        Schema::Record(RecordSchema { fields, .. }) => {
            for field in fields {
                check_datum(&field.schema, cursor)
                    .map_err(|why| format!("field `{}`: {why}", field.name))?;
            }
            Ok(())
        }
        other => Err(format!("unsupported schema type {other:?}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::model::{Channel, SurveyAction, MAX_EVENT_BYTES};
    use crate::validate::{decode_event, decode_json};
    use proptest::prelude::*;
    use serde_json::json;

    /// An event of `kind` with every optional field present.
    pub(crate) fn full(kind: &str) -> Value {
        let mut v = json!({
            "type": kind,
            "message_id": "m-ü-1",
            "workspace_id": "ws_1",
            "timestamp": "2026-01-31T13:00:00.123+01:00",
            "sent_at": "2026-01-31T12:00:01Z",
            "received_at": "2026-01-31T12:00:03.5Z",
            "channel": "mobile",
            "user_id": " Ｕ-1 ",
            "email": " Ada@Example.com",
            "anonymous_id": "d-1",
        });
        let obj = json!({"s": "x", "n": 1, "f": 0.1, "big": 1e300, "neg": -3, "a": [true, null, {"k": "v"}], "o": {}});
        match kind {
            "identify" => v["traits"] = obj,
            "traits" => {
                v["traits"] = obj.clone();
                v["set_once"] = json!({"first_seen": "2026-01-01"});
                v["unset"] = json!(["old", "", "ü"]);
            }
            "track" => {
                v["event"] = json!("Signed Up");
                v["properties"] = obj;
            }
            "survey" => {
                v["survey_id"] = json!("s-1");
                v["action"] = json!("responded");
                v["response_id"] = json!("r-1");
                v["answers"] = json!({"q1": 5});
                v["context"] = obj;
            }
            _ => {}
        }
        v
    }

    fn minimal(kind: &str) -> Value {
        let mut v = json!({
            "type": kind,
            "message_id": "m",
            "workspace_id": "w",
            "timestamp": "2026-01-31T12:00:00Z",
            "user_id": "u",
        });
        match kind {
            "traits" => v["traits"] = json!({}),
            "track" => v["event"] = json!("e"),
            "survey" => {
                v["survey_id"] = json!("s");
                v["action"] = json!("shown");
            }
            _ => {}
        }
        v
    }

    fn round_trip(v: &Value) -> Event {
        let event = decode_json(v.to_string().as_bytes()).unwrap_or_else(|r| panic!("{v}: {r}"));
        let bytes = encode_avro(&event);
        assert!(is_avro_single_object(&bytes), "{event:?}");
        let back = decode_avro(&bytes).unwrap_or_else(|r| panic!("{event:?}: {r}"));
        assert_eq!(back, event);
        assert_eq!(decode_event(&bytes), Ok(event.clone()));
        event
    }

    #[test]
    fn all_schemas_parse_with_distinct_fingerprints() {
        let fps = schema_fingerprints();
        let files: Vec<_> = fps.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            files,
            [
                "identify.v1.avsc",
                "traits.v1.avsc",
                "track.v1.avsc",
                "survey.v1.avsc"
            ]
        );
        for (i, (_, a)) in fps.iter().enumerate() {
            for (_, b) in fps.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
        for c in codecs() {
            let Schema::Record(r) = &c.schema else {
                panic!("{} is not a record", c.file)
            };
            assert_eq!(r.name.namespace.as_deref(), Some("idfold.v1"));
            assert!(r.doc.is_some(), "{} has a doc", c.file);
        }
    }

    #[test]
    fn header_is_magic_then_little_endian_fingerprint() {
        let event = round_trip(&minimal("track"));
        let bytes = encode_avro(&event);
        assert_eq!(bytes.get(..2), Some(&AVRO_MAGIC[..]));
        let fp = schema_fingerprints()
            .into_iter()
            .find(|(f, _)| *f == "track.v1.avsc")
            .map(|(_, fp)| fp)
            .expect("track schema");
        assert_eq!(bytes.get(2..10), Some(&fp.to_le_bytes()[..]));
    }

    #[test]
    fn round_trips_every_kind_with_all_optionals_present() {
        for kind in ["identify", "traits", "track", "survey"] {
            let e = round_trip(&full(kind));
            assert_eq!(e.channel, Channel::Mobile);
            assert_eq!(e.email.as_deref(), Some("ada@example.com"));
            assert_eq!(e.user_id.as_deref(), Some("U-1"), "normalised, case kept");
            assert!(e.sent_at.is_some() && e.received_at.is_some());
        }
        let e = round_trip(&full("survey"));
        assert!(matches!(
            e.body,
            EventBody::Survey {
                action: SurveyAction::Responded,
                ..
            }
        ));
    }

    #[test]
    fn round_trips_every_kind_with_all_optionals_absent() {
        for kind in ["identify", "traits", "track", "survey"] {
            let e = round_trip(&minimal(kind));
            assert_eq!(e.channel, Channel::Api);
            assert_eq!(
                (e.sent_at, e.received_at, e.email, e.anonymous_id),
                (None, None, None, None)
            );
        }
    }

    #[test]
    fn round_trips_every_channel_and_action() {
        for c in Channel::ALL {
            let e = round_trip(&{
                let mut v = minimal("track");
                v["channel"] = json!(c.as_str());
                v
            });
            assert_eq!(e.channel, c);
        }
        for a in SurveyAction::ALL {
            let mut v = minimal("survey");
            v["action"] = json!(a.as_str());
            round_trip(&v);
        }
    }

    #[test]
    fn unknown_fingerprint_is_unknown_schema() {
        let event = round_trip(&minimal("track"));
        let mut bytes = encode_avro(&event);
        if let Some(b) = bytes.get_mut(2) {
            *b ^= 0xFF;
        }
        let r = decode_avro(&bytes).expect_err("unknown");
        assert_eq!(r.reason, ReasonCode::UnknownSchema);
        assert!(
            r.message.contains("track.v1.avsc") && r.message.contains("survey.v1.avsc"),
            "{r}"
        );
        let r = decode_event(&[0xC3, 0x01, 0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01])
            .expect_err("unknown");
        assert_eq!(r.reason, ReasonCode::UnknownSchema);
        // As the bytes stand on the wire (and in Avro libraries' hex).
        assert!(r.message.contains("efcdab8967452301"), "{r}");
    }

    #[test]
    fn bad_headers_are_rejected() {
        for bytes in [
            &[][..],
            &[0xC3],
            &[0xC3, 0x01],
            &[0xC3, 0x01, 1, 2, 3],
            &[b'{', b'}', 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let r = decode_avro(bytes).expect_err("bad header");
            assert_eq!(r.reason, ReasonCode::InvalidField, "{r}");
            assert_eq!(r.field.as_deref(), Some("avro"));
        }
        let r = decode_avro(&vec![0xC3; MAX_EVENT_BYTES + 1]).expect_err("too large");
        assert_eq!(r.reason, ReasonCode::TooLarge);
    }

    #[test]
    fn every_truncation_is_rejected() {
        for kind in ["identify", "traits", "track", "survey"] {
            for v in [full(kind), minimal(kind)] {
                let bytes = encode_avro(&round_trip(&v));
                for len in 0..bytes.len() {
                    let prefix = bytes.get(..len).unwrap_or_default();
                    assert!(
                        decode_avro(prefix).is_err(),
                        "{kind} truncated to {len} bytes was accepted"
                    );
                }
                let mut longer = bytes.clone();
                longer.push(0);
                let r = decode_avro(&longer).expect_err("trailing byte");
                assert!(r.message.contains("trailing"), "{r}");
            }
        }
    }

    #[test]
    fn corrupt_body_names_the_schema() {
        let bytes = encode_avro(&round_trip(&minimal("track")));
        let mut bad = bytes.get(..HEADER_LEN).unwrap_or_default().to_vec();
        // message_id claims 1 GiB.
        bad.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
        let r = decode_avro(&bad).expect_err("corrupt");
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (ReasonCode::InvalidField, Some("avro"))
        );
        assert!(
            r.message
                .starts_with("Avro body does not match schema track.v1.avsc: "),
            "{r}"
        );
    }

    #[test]
    fn decoded_events_are_validated() {
        // An Avro datum that fits the schema but breaks a rule.
        let mut event = decode_json(minimal("track").to_string().as_bytes()).expect("valid");
        event.user_id = Some("undefined".to_owned());
        let r = decode_avro(&encode_avro(&event)).expect_err("placeholder");
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (ReasonCode::InvalidField, Some("user_id"))
        );
        event.user_id = None;
        let r = decode_avro(&encode_avro(&event)).expect_err("no identifier");
        assert_eq!(r.reason, ReasonCode::NoIdentifier);
    }

    #[test]
    fn json_text_that_is_not_an_object_is_invalid_field() {
        let codec = codec_for_kind(EventKind::Track).expect("track");
        let record = |props: &str| {
            AvroValue::Record(vec![
                ("message_id".into(), string("m")),
                ("workspace_id".into(), string("w")),
                ("timestamp".into(), string("2026-01-31T12:00:00Z")),
                ("sent_at".into(), optional(None)),
                ("received_at".into(), optional(None)),
                ("channel".into(), AvroValue::Enum(4, "api".into())),
                ("user_id".into(), optional(Some(string("u")))),
                ("email".into(), optional(None)),
                ("anonymous_id".into(), optional(None)),
                ("event".into(), string("e")),
                ("properties".into(), optional(Some(string(props)))),
            ])
        };
        for text in ["[1]", "\"x\"", "null", "{", ""] {
            let datum = apache_avro::to_avro_datum(&codec.schema, record(text)).expect("encodes");
            let mut bytes = [&AVRO_MAGIC[..], &codec.fingerprint[..]].concat();
            bytes.extend_from_slice(&datum);
            let r = decode_avro(&bytes).expect_err("not an object");
            assert_eq!(
                (r.reason, r.field.as_deref()),
                (ReasonCode::InvalidField, Some("properties")),
                "{r}"
            );
        }
        let datum =
            apache_avro::to_avro_datum(&codec.schema, record("{\"k\":1}")).expect("encodes");
        let mut bytes = [&AVRO_MAGIC[..], &codec.fingerprint[..]].concat();
        bytes.extend_from_slice(&datum);
        assert!(decode_avro(&bytes).is_ok());
    }

    fn headers() -> Vec<Vec<u8>> {
        codecs()
            .iter()
            .map(|c| [&AVRO_MAGIC[..], &c.fingerprint[..]].concat())
            .collect()
    }

    proptest! {
        #[test]
        fn random_tails_after_a_valid_header_never_panic(
            header in prop::sample::select(headers()),
            tail in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = header;
            bytes.extend_from_slice(&tail);
            let _ = decode_avro(&bytes);
            let _ = decode_event(&bytes);
        }

        #[test]
        fn mutated_valid_datums_never_panic(
            kind in prop::sample::select(vec!["identify", "traits", "track", "survey"]),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = encode_avro(&round_trip(&full(kind)));
            let len = bytes.len();
            for (i, b) in flips {
                let at = HEADER_LEN + i.index(len - HEADER_LEN);
                if let Some(x) = bytes.get_mut(at) {
                    *x = b;
                }
            }
            if let Ok(e) = decode_avro(&bytes) {
                // Whatever survives decoding is a valid event that re-encodes.
                prop_assert_eq!(decode_avro(&encode_avro(&e)), Ok(e));
            }
        }

        #[test]
        fn random_json_objects_round_trip(
            kind in prop::sample::select(vec!["identify", "traits", "track", "survey"]),
            props in prop::collection::btree_map(".{0,8}", prop_oneof![
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                ".{0,16}".prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
            ], 0..6),
        ) {
            let mut v = full(kind);
            let obj = Value::Object(props.into_iter().collect());
            for k in JSON_TEXT_FIELDS {
                if v.get(k).is_some() {
                    v[k] = obj.clone();
                }
            }
            let event = decode_json(v.to_string().as_bytes()).map_err(|r| TestCaseError::fail(r.to_string()))?;
            prop_assert_eq!(decode_avro(&encode_avro(&event)), Ok(event));
        }
    }
}
