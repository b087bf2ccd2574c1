//! A request to forget one person, as the canonical log carries it. It has
//! its own schema (`schemas/erasure.v1.avsc`) so that only the log decodes
//! it: input validation (`decode_avro`) does not know the schema and refuses
//! one sent by a client as `unknown_schema`.

use std::sync::OnceLock;

use apache_avro::rabin::Rabin;
use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;

use crate::avro::single_object;
use crate::error::Rejection;
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

/// The fingerprint of the erasure schema as the single-object header
/// carries it (`None` only if the built-in schema were broken).
pub(crate) fn erasure_fingerprint() -> Option<[u8; 8]> {
    codec().map(|c| c.fingerprint)
}

/// The file name the erasure schema's messages give.
pub(crate) const ERASURE_SCHEMA_FILE: &str = "erasure.v1.avsc";

/// The fields of an erasure record, as its datum holds them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErasureFields<'a> {
    pub erasure_id: &'a str,
    pub workspace_id: &'a str,
    pub profile_id: &'a str,
    pub requested_at: &'a str,
}

/// The request an erasure record's fields make, or why they make none.
pub(crate) fn erasure_from_fields(fields: ErasureFields<'_>) -> Result<ErasureRequest, Rejection> {
    let required = |name: &'static str, text: &str| {
        if text.is_empty() {
            Err(Rejection::missing(name))
        } else {
            Ok(text.to_owned())
        }
    };
    let profile_text = required("profile_id", fields.profile_id)?;
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
    let requested_at = parse_rfc3339(&required("requested_at", fields.requested_at)?)
        .ok_or_else(|| Rejection::invalid("requested_at", "must be an RFC 3339 timestamp"))?;
    Ok(ErasureRequest {
        erasure_id: required("erasure_id", fields.erasure_id)?,
        workspace_id: required("workspace_id", fields.workspace_id)?,
        profile,
        requested_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::{check_complete_datum, split_single_object};
    use crate::error::ReasonCode;
    use crate::log_reader::decode_log_payload;
    use crate::model::IdentifierKind;
    use crate::validate::decode_event;
    use proptest::prelude::*;

    /// The generic decoding the log reader replaced: apache-avro's datum
    /// reader, kept as the reference the reader is compared with.
    fn decode_erasure_generic(bytes: &[u8]) -> Result<ErasureRequest, Rejection> {
        let codec = codec().ok_or_else(|| Rejection::missing("schema"))?;
        let mismatch = |why: String| {
            Rejection::new(
                ReasonCode::InvalidField,
                Some("avro"),
                format!("Avro body does not match schema erasure.v1.avsc: {why}"),
            )
        };
        let (fingerprint, mut body) = split_single_object(bytes)?;
        if fingerprint != codec.fingerprint {
            return Err(mismatch("another schema".to_owned()));
        }
        check_complete_datum(&codec.schema, body).map_err(mismatch)?;
        let datum = apache_avro::from_avro_datum(&codec.schema, &mut body, None)
            .map_err(|e| mismatch(e.to_string()))?;
        let AvroValue::Record(fields) = datum else {
            return Err(mismatch("the datum is not a record".to_owned()));
        };
        let text = |name: &str| {
            fields
                .iter()
                .find_map(|(n, v)| match v {
                    AvroValue::String(s) if n == name => Some(s.as_str()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        erasure_from_fields(ErasureFields {
            erasure_id: text("erasure_id"),
            workspace_id: text("workspace_id"),
            profile_id: text("profile_id"),
            requested_at: text("requested_at"),
        })
    }

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

    fn arb_request() -> impl Strategy<Value = ErasureRequest> {
        let kind = prop::sample::select(vec![
            IdentifierKind::User,
            IdentifierKind::Email,
            IdentifierKind::Anonymous,
        ]);
        (
            ".{0,12}",
            ".{0,12}",
            kind,
            prop_oneof![".{0,12}", Just(" Ｕ１@Example.com".to_owned())],
            0..crate::time::EVENT_TIME_END,
        )
            .prop_map(|(erasure_id, workspace_id, kind, value, requested_at)| {
                ErasureRequest {
                    erasure_id,
                    workspace_id,
                    profile: Identifier { kind, value },
                    requested_at,
                }
            })
    }

    proptest! {
        #[test]
        fn the_log_reader_reads_requests_as_the_generic_decoder_does(
            request in arb_request(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let mut bytes = encode_erasure(&request);
            let len = bytes.len();
            for (i, b) in flips {
                let at = 10 + i.index(len - 10);
                bytes[at] ^= b;
            }
            let read = decode_log_payload(&bytes);
            let generic = decode_erasure_generic(&bytes).map(LogPayload::Erasure);
            prop_assert_eq!(read, generic);
        }
    }

    #[test]
    fn a_damaged_request_is_refused_not_half_read() {
        let bytes = encode_erasure(&request());
        for cut in 0..bytes.len() {
            assert!(decode_log_payload(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
