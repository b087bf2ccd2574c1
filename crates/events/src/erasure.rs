//! A request to forget one person, as the canonical log carries it. It has
//! its own schema (`schemas/erasure.v1.avsc`) so that only the log decodes
//! it: input validation (`decode_avro`) does not know the schema and refuses
//! one sent by a client as `unknown_schema`.

use std::sync::OnceLock;

use apache_avro::rabin::Rabin;
use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;

use crate::avro::{check_complete_datum, decode_avro, single_object, split_single_object};
use crate::error::{ReasonCode, Rejection};
use crate::identifier::normalize_identifier;
use crate::model::{Event, Identifier};
use crate::time::{format_nanos, parse_rfc3339, EventTime};

const SCHEMA_SOURCE: &str = include_str!("../../../schemas/erasure.v1.avsc");

/// Forget the profile `profile` of `workspace_id`, and everything that
/// resolves to it, as of this point in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRequest {
    pub erasure_id: String,
    pub workspace_id: String,
    pub profile: Identifier,
    pub requested_at: EventTime,
}

/// What a canonical log record holds.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every record is an event: boxing it would cost an allocation each"
)]
pub enum LogPayload {
    Event(Event),
    Erasure(ErasureRequest),
}

struct ErasureCodec {
    schema: Schema,
    fingerprint: [u8; 8],
}

fn codec() -> Option<&'static ErasureCodec> {
    static CODEC: OnceLock<Option<ErasureCodec>> = OnceLock::new();
    CODEC
        .get_or_init(|| {
            let schema = Schema::parse_str(SCHEMA_SOURCE).ok()?;
            let fingerprint = schema.fingerprint::<Rabin>().bytes.try_into().ok()?;
            Some(ErasureCodec {
                schema,
                fingerprint,
            })
        })
        .as_ref()
}

/// Encodes a request as Avro single-object encoding (empty, which every
/// reader refuses, only if the built-in schema were broken: a tested bug).
pub fn encode_erasure(request: &ErasureRequest) -> Vec<u8> {
    let Some(codec) = codec() else {
        return Vec::new();
    };
    let fields = vec![
        (
            "erasure_id".to_owned(),
            AvroValue::String(request.erasure_id.clone()),
        ),
        (
            "workspace_id".to_owned(),
            AvroValue::String(request.workspace_id.clone()),
        ),
        (
            "profile_id".to_owned(),
            AvroValue::String(request.profile.to_string()),
        ),
        (
            "requested_at".to_owned(),
            AvroValue::String(format_nanos(request.requested_at)),
        ),
    ];
    match apache_avro::to_avro_datum(&codec.schema, AvroValue::Record(fields)) {
        Ok(datum) => single_object(&codec.fingerprint, &datum),
        Err(_) => Vec::new(),
    }
}

/// Decodes a canonical log record: an event, or an erasure request.
pub fn decode_log_payload(bytes: &[u8]) -> Result<LogPayload, Rejection> {
    let (fingerprint, mut body) = split_single_object(bytes)?;
    match codec() {
        Some(codec) if codec.fingerprint == fingerprint => {
            decode_erasure(codec, &mut body).map(LogPayload::Erasure)
        }
        _ => decode_avro(bytes).map(LogPayload::Event),
    }
}

fn decode_erasure(codec: &ErasureCodec, body: &mut &[u8]) -> Result<ErasureRequest, Rejection> {
    let mismatch = |why: String| {
        Rejection::new(
            ReasonCode::InvalidField,
            Some("avro"),
            format!("Avro body does not match schema erasure.v1.avsc: {why}"),
        )
    };
    check_complete_datum(&codec.schema, body).map_err(mismatch)?;
    let datum = apache_avro::from_avro_datum(&codec.schema, body, None)
        .map_err(|e| mismatch(e.to_string()))?;
    let AvroValue::Record(fields) = datum else {
        return Err(mismatch("the datum is not a record".to_owned()));
    };
    let text = |name: &str| {
        fields.iter().find_map(|(n, v)| match v {
            AvroValue::String(s) if n == name => Some(s.clone()),
            _ => None,
        })
    };
    let required = |name: &'static str| {
        text(name)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Rejection::missing(name))
    };
    let profile_text = required("profile_id")?;
    let profile = Identifier::parse(&profile_text).ok_or_else(|| {
        Rejection::invalid(
            "profile_id",
            "must be `user:<id>`, `email:<address>` or `anonymous:<id>`",
        )
    })?;
    // The fold normalises events' identifiers again as it reads them (a
    // no-op on what this version wrote): the person a request names must
    // be normalised the same way, or a log written before the rule would
    // erase nobody when refolded. A value the rule refuses names no event
    // the fold keeps, and stays as it was.
    let profile = match normalize_identifier(profile.kind, &profile.value) {
        Ok(value) => Identifier {
            kind: profile.kind,
            value,
        },
        Err(_) => profile,
    };
    let requested_at = parse_rfc3339(&required("requested_at")?)
        .ok_or_else(|| Rejection::invalid("requested_at", "must be an RFC 3339 timestamp"))?;
    Ok(ErasureRequest {
        erasure_id: required("erasure_id")?,
        workspace_id: required("workspace_id")?,
        profile,
        requested_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::decode_event;

    fn request() -> ErasureRequest {
        ErasureRequest {
            erasure_id: "er-1".into(),
            workspace_id: "ws".into(),
            profile: Identifier::user("u:1"),
            requested_at: 1_780_000_000_123_000_000,
        }
    }

    #[test]
    fn round_trips_through_the_log_codec() {
        let bytes = encode_erasure(&request());
        assert!(!bytes.is_empty(), "the built-in schema encodes");
        assert_eq!(
            decode_log_payload(&bytes),
            Ok(LogPayload::Erasure(request()))
        );
    }

    #[test]
    fn a_request_from_before_normalisation_names_the_normalised_person() {
        let mut older = request();
        older.profile = Identifier::email(" Ｕ１@Example.com");
        let decoded = decode_log_payload(&encode_erasure(&older));
        let Ok(LogPayload::Erasure(decoded)) = decoded else {
            panic!("{decoded:?}");
        };
        assert_eq!(decoded.profile, Identifier::email("u1@example.com"));
        // One the rule refuses is kept as it was.
        older.profile = Identifier::user("nil");
        let decoded = decode_log_payload(&encode_erasure(&older));
        assert_eq!(decoded, Ok(LogPayload::Erasure(older)));
    }

    #[test]
    fn clients_cannot_send_one_as_input() {
        let bytes = encode_erasure(&request());
        let refused = decode_event(&bytes).err().map(|r| r.reason);
        assert_eq!(refused, Some(ReasonCode::UnknownSchema));
    }

    #[test]
    fn a_damaged_request_is_refused_not_half_read() {
        let bytes = encode_erasure(&request());
        for cut in 0..bytes.len() {
            assert!(decode_log_payload(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
