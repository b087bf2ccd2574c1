//! Segment messages from JSON text, with ids given as numbers kept exact.
//!
//! SDKs may send `userId: 12345678901234567890123`. serde_json reads an
//! integer beyond 64 bits as an `f64`, and two such ids that differ in
//! their last digits become one float: two users would be merged. Reading
//! the id fields' raw text keeps every digit. This is done here, for the
//! few id fields only, rather than with serde_json's `arbitrary_precision`
//! feature, which would change number handling for every crate of the
//! workspace (each number an allocated string, equality by text) to fix
//! five fields of one format.

use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The fields of a message that hold ids: an integer there is the id made
/// of its decimal digits.
pub const ID_FIELDS: [&str; 5] = [
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "messageId",
];

/// Parses one Segment message as `serde_json::from_str::<Value>` would,
/// except that an integer in one of [`ID_FIELDS`] too large for 64 bits is
/// kept as its exact decimal digits (a JSON string) instead of a float.
/// Integers that fit stay numbers, and other numbers (`1.5`, `1e3`) stay
/// floats for [`crate::translate`] to refuse as ids.
pub fn parse_message(text: &str) -> Result<Value, serde_json::Error> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str::<ExactIds>(text).map(|m| m.0)
    } else {
        // Not an object: `translate` says a message must be one.
        serde_json::from_str(text)
    }
}

/// [`parse_message`] for bytes (a request body): invalid UTF-8 is an error.
pub fn parse_message_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    if bytes.trim_ascii_start().starts_with(b"{") {
        serde_json::from_slice::<ExactIds>(bytes).map(|m| m.0)
    } else {
        serde_json::from_slice(bytes)
    }
}

/// A message object whose id fields were read from their raw text.
struct ExactIds(Value);

impl<'de> Deserialize<'de> for ExactIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor).map(ExactIds)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut message = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if ID_FIELDS.contains(&key.as_str()) {
                let raw: Box<RawValue> = map.next_value()?;
                exact_id(raw.get()).map_err(A::Error::custom)?
            } else {
                map.next_value::<Value>()?
            };
            // The last of repeated keys wins, as with `Value`.
            message.insert(key, value);
        }
        Ok(Value::Object(message))
    }
}

/// An id field's value from its raw JSON text.
fn exact_id(raw: &str) -> Result<Value, serde_json::Error> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let is_integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let fits = raw.parse::<u64>().is_ok() || raw.parse::<i64>().is_ok();
    if is_integer && !fits {
        Ok(Value::String(raw.to_owned()))
    } else {
        serde_json::from_str(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn big_integer_ids_keep_every_digit() -> Result<(), serde_json::Error> {
        let a = parse_message(r#"{"userId": 12345678901234567890123, "event": "E"}"#)?;
        let b = parse_message(r#"{"userId": 12345678901234567890124, "event": "E"}"#)?;
        assert_eq!(a["userId"], "12345678901234567890123");
        assert_eq!(b["userId"], "12345678901234567890124");
        let c = parse_message_slice(br#"{"anonymousId": -18446744073709551617}"#)?;
        assert_eq!(c["anonymousId"], "-18446744073709551617");
        for field in ID_FIELDS {
            let m = parse_message(&format!(r#"{{"{field}": 18446744073709551616}}"#))?;
            assert_eq!(m[field], "18446744073709551616", "{field}");
        }
        Ok(())
    }

    #[test]
    fn everything_else_parses_as_before() -> Result<(), serde_json::Error> {
        let text = r#"{"userId": 42, "anonymousId": "d", "groupId": 1.5, "previousId": 1e3,
            "messageId": null, "properties": {"userId": 12345678901234567890123, "n": [1, 2.5]},
            "traits": {"email": "a@b.co"}, "userId": 18446744073709551615}"#;
        let exact = parse_message(text)?;
        let plain: Value = serde_json::from_str(text)?;
        assert_eq!(exact, plain);
        assert_eq!(exact["userId"], 18_446_744_073_709_551_615_u64);
        assert_eq!(parse_message("[1]")?, serde_json::json!([1]));
        assert_eq!(parse_message(" \"x\" ")?, serde_json::json!("x"));
        for bad in [
            "{",
            r#"{"userId": }"#,
            r#"{"userId": 01}"#,
            "{} x",
            "",
            r#"{"a":1,}"#,
        ] {
            assert!(parse_message(bad).is_err(), "{bad}");
            assert!(parse_message_slice(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_message_slice(b"{\"userId\": \"\xff\"}").is_err());
        Ok(())
    }

    proptest! {
        /// On any text, the same verdict as serde_json, and the same value
        /// but for big integer ids.
        #[test]
        fn agrees_with_serde_json(text in r#"\{("(userId|anonymousId|x)": ?(-?[0-9]{1,25}(\.[0-9])?|"[a-z]{0,3}"|null|\[\]|\{\}),? ?){0,3}\}?"#) {
            let plain = serde_json::from_str::<Value>(&text);
            let exact = parse_message(&text);
            prop_assert_eq!(plain.is_ok(), exact.is_ok(), "{}", text);
            if let (Ok(plain), Ok(exact)) = (plain, exact) {
                for (key, value) in exact.as_object().into_iter().flatten() {
                    match value {
                        Value::String(digits) if ID_FIELDS.contains(&key.as_str()) && plain[key].is_f64() => {
                            prop_assert!(digits.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()));
                            prop_assert_eq!(digits.parse::<f64>().ok(), plain[key].as_f64());
                        }
                        other => prop_assert_eq!(other, &plain[key]),
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_message_slice(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                prop_assert_eq!(parse_message(text).is_ok(), serde_json::from_str::<Value>(text).is_ok());
            }
        }
    }
}
