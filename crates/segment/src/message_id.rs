//! The messageId of a message sent without one.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Derived from the message itself and its position in its batch, so a
/// client that retries a request without messageIds gets the same ids
/// again and the fold drops the re-delivery, while two identical items of
/// one batch stay two events. `sentAt` and `writeKey` change between attempts and are
/// left out. A message without a timestamp takes its time from the receive
/// time, which is part of the hash: two such identical messages sent apart
/// stay two events.
pub fn generated_message_id(
    workspace_id: &str,
    call: &str,
    message: &Map<String, Value>,
    position: usize,
    received_at_when_untimed: Option<&str>,
) -> String {
    let mut stable = message.clone();
    stable.remove("sentAt");
    stable.remove("writeKey");
    let mut hash = Sha256::new();
    for part in [workspace_id, call, &Value::Object(stable).to_string()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(u64::try_from(position).unwrap_or(u64::MAX).to_be_bytes());
    if let Some(received) = received_at_when_untimed {
        hash.update(received.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("gen-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_retry_gets_the_same_id_and_a_different_message_another() {
        let first = object(json!({"event": "A", "userId": "u", "sentAt": "1", "writeKey": "k"}));
        let retry = object(json!({"event": "A", "userId": "u", "sentAt": "2"}));
        let other = object(json!({"event": "B", "userId": "u"}));
        let id = generated_message_id("w", "track", &first, 0, None);
        assert_eq!(id, generated_message_id("w", "track", &retry, 0, None));
        assert_ne!(id, generated_message_id("w", "track", &other, 0, None));
        assert_ne!(id, generated_message_id("w2", "track", &first, 0, None));
        assert_ne!(id, generated_message_id("w", "page", &first, 0, None));
        assert_ne!(
            generated_message_id("w", "track", &first, 0, Some("t1")),
            generated_message_id("w", "track", &first, 0, Some("t2"))
        );
        assert!(id.starts_with("gen-") && id.len() == 36, "{id}");
        // The same item at another place in its batch is another event.
        assert_ne!(id, generated_message_id("w", "track", &first, 1, None));
        assert_eq!(
            generated_message_id("w", "track", &first, 1, None),
            generated_message_id("w", "track", &retry, 1, None)
        );
    }
}
