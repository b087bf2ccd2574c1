//! Write keys out of what the dead letters keep. A key may come as a
//! `writeKey` member at any depth, with its name written with JSON escapes
//! (`"write\u004bey"`), or as any string equal to a configured key.

use idfold_access::WriteKeys;
use serde_json::Value;

const REDACTED: &str = "[redacted]";

/// The bytes as a dead letter may keep them, and whether anything was cut
/// off. JSON is re-serialized without `writeKey` members and with known
/// keys redacted (bytes with neither are kept exactly); bytes that are not
/// JSON are kept up to the first string that is a `writeKey` name or a key.
pub(crate) fn scrub_secrets(bytes: &[u8], keys: &WriteKeys) -> (Vec<u8>, bool) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut value) => {
            if scrub_value(&mut value, keys) {
                (value.to_string().into_bytes(), false)
            } else {
                (bytes.to_vec(), false)
            }
        }
        Err(_) => match first_secret_string(bytes, keys) {
            Some(at) => (bytes.get(..at).unwrap_or_default().to_vec(), true),
            None => (bytes.to_vec(), false),
        },
    }
}

/// Removes `writeKey` members and redacts known keys; true if it changed.
fn scrub_value(value: &mut Value, keys: &WriteKeys) -> bool {
    match value {
        Value::Object(members) => {
            let mut changed = members.remove("writeKey").is_some();
            for member in members.values_mut() {
                changed |= scrub_value(member, keys);
            }
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| scrub_value(item, keys) | changed),
        Value::String(text) if keys.lookup(text).is_some() => {
            *value = Value::from(REDACTED);
            true
        }
        _ => false,
    }
}

/// Where the first JSON string literal that decodes to `writeKey` or to a
/// configured key starts, in bytes that may not be valid JSON as a whole
/// (truncated, invalid UTF-8 elsewhere).
fn first_secret_string(bytes: &[u8], keys: &WriteKeys) -> Option<usize> {
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'"' {
            at += 1;
            continue;
        }
        let start = at;
        let mut end = start + 1;
        let mut escaped = false;
        while end < bytes.len() {
            match bytes[end] {
                b'\\' if !escaped => escaped = true,
                b'"' if !escaped => break,
                _ => escaped = false,
            }
            end += 1;
        }
        if end >= bytes.len() {
            // An unterminated string runs to the end: if it may hold a
            // secret, it is cut; a partial escape cannot be decoded, so any
            // escape counts as maybe.
            let tail = &bytes[start..];
            let maybe = tail.contains(&b'\\') || tail.windows(8).any(|w| w == b"writeKey");
            return maybe.then_some(start);
        }
        let literal = &bytes[start..=end];
        let secret = match serde_json::from_slice::<String>(literal) {
            Ok(text) => text == "writeKey" || keys.lookup(&text).is_some(),
            // Not decodable (a bad escape, invalid UTF-8): keep nothing
            // from here if it might be one.
            Err(_) => literal.contains(&b'\\'),
        };
        if secret {
            return Some(start);
        }
        at = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use idfold_access::AccessConfig;

    const KEY: &str = "wk_acme_0123456789abcdef";

    fn keys() -> WriteKeys {
        let mut config = AccessConfig::default();
        let added = config.add_env_keys(&format!("acme:{KEY}"));
        assert!(added.is_ok());
        config.write_keys().unwrap_or_default()
    }

    fn holds_key(bytes: &[u8]) -> bool {
        bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes())
    }

    #[test]
    fn keys_are_gone_however_written_and_nested() {
        let keys = keys();
        let cases = [
            format!(r#"{{"writeKey":"{KEY}","userId":"u"}}"#),
            format!(r#"{{"write\u004bey":"{KEY}","userId":"u"}}"#),
            format!(r#"{{"properties":{{"writeKey":"{KEY}"}}}}"#),
            format!(r#"{{"context":{{"w":[{{"write\u004Bey":"{KEY}"}}]}}}}"#),
            format!(r#"{{"batch":[{{"writeKey":"{KEY}"}}]}}"#),
            format!(r#"{{"note":"{KEY}"}}"#),
            // Not JSON as a whole: truncated, and invalid UTF-8.
            format!(r#"{{"batch":[{{"write\u004bey":"{KEY}","userId":"#),
            format!(r#"{{"writeKey":"{KEY}"#),
            format!(r#"{{"writ\u0065Key":"{KEY}"#),
        ];
        for case in &cases {
            let (kept, _) = scrub_secrets(case.as_bytes(), &keys);
            assert!(
                !holds_key(&kept),
                "{case} kept as {}",
                String::from_utf8_lossy(&kept)
            );
        }
        let mut invalid = format!(r#"{{"writeKey":"{KEY}","x":""#).into_bytes();
        invalid.push(0xff);
        let (kept, truncated) = scrub_secrets(&invalid, &keys);
        assert!(!holds_key(&kept) && truncated);
    }

    #[test]
    fn inputs_without_a_key_are_kept_exactly() {
        let keys = keys();
        let body = br#"{ "userId" : "u",  "event":"e\u0041" }"#;
        assert_eq!(scrub_secrets(body, &keys), (body.to_vec(), false));
        let truncated = br#"[{"userId":"u","ev"#;
        assert_eq!(scrub_secrets(truncated, &keys), (truncated.to_vec(), false));
    }
}
