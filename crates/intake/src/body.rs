//! Request bodies: read with a limit, gzip decoded with the same limit.

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderValue;
use http_body_util::BodyExt;

use crate::error::IntakeError;

/// One event, or a single-event call's whole body (Segment's limit).
pub const MAX_EVENT_BYTES: usize = idfold_events::MAX_EVENT_BYTES;
/// One batch request (Segment's limit).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// How long a body may take to arrive: a client trickling bytes must not
/// hold a request slot for ever.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

fn encoding(header: Option<&HeaderValue>) -> Result<Encoding, IntakeError> {
    let Some(value) = header else {
        return Ok(Encoding::Identity);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else {
        Err(IntakeError::UnsupportedEncoding(format!("{text:?}")))
    }
}

/// The body's bytes, at most `limit` of them after decoding; `what` names
/// the limit in the error (`a batch request`).
pub async fn read_body(
    body: Body,
    content_encoding: Option<&HeaderValue>,
    limit: usize,
    what: &'static str,
) -> Result<Vec<u8>, IntakeError> {
    read_body_within(body, content_encoding, limit, what, BODY_TIMEOUT).await
}

async fn read_body_within(
    body: Body,
    content_encoding: Option<&HeaderValue>,
    limit: usize,
    what: &'static str,
    timeout: Duration,
) -> Result<Vec<u8>, IntakeError> {
    let encoding = encoding(content_encoding)?;
    let too_large = || IntakeError::BodyTooLarge { limit, what };
    // A compressed body larger than the limit decodes larger still.
    let collected = tokio::time::timeout(timeout, collect_within(body, limit))
        .await
        .map_err(|_| IntakeError::BodyTimeout(timeout.as_secs()))?;
    let raw = match collected? {
        Some(raw) => raw,
        None => return Err(too_large()),
    };
    match encoding {
        Encoding::Identity => Ok(raw.to_vec()),
        Encoding::Gzip => gunzip(&raw, limit).ok_or_else(too_large)?,
    }
}

/// The most of an oversize body read (and dropped) before answering, so
/// the client finishes sending and reads the 400 instead of a reset.
const DRAIN_CAP: usize = 8 * 1024 * 1024;

/// The body's bytes, or `None` when there are more than `limit`: then the
/// rest is read and dropped (up to `DRAIN_CAP`), since answering before the
/// client has sent everything makes it see a broken connection.
async fn collect_within(mut body: Body, limit: usize) -> Result<Option<Vec<u8>>, IntakeError> {
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| IntakeError::BadBody(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            bytes.extend_from_slice(&data);
        } else if seen > DRAIN_CAP {
            break;
        }
    }
    Ok((seen <= limit).then_some(bytes))
}

/// Decodes at most `limit` bytes; `None` when there are more.
fn gunzip(compressed: &[u8], limit: usize) -> Option<Result<Vec<u8>, IntakeError>> {
    let mut decoded = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let read = flate2::read::MultiGzDecoder::new(compressed)
        .take(cap)
        .read_to_end(&mut decoded);
    match read {
        Err(e) => Some(Err(IntakeError::BadGzip(e.to_string()))),
        Ok(_) if decoded.len() > limit => None,
        Ok(_) => Some(Ok(decoded)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = encoder.write_all(bytes);
        encoder.finish().unwrap_or_default()
    }

    fn read(
        bytes: Vec<u8>,
        encoding: Option<&'static str>,
        limit: usize,
    ) -> Result<Vec<u8>, IntakeError> {
        let header = encoding.map(HeaderValue::from_static);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let Ok(runtime) = runtime else {
            panic!("no runtime")
        };
        runtime.block_on(read_body(
            Body::from(bytes),
            header.as_ref(),
            limit,
            "a test",
        ))
    }

    #[test]
    fn limits_count_decoded_bytes() {
        let body = vec![b'a'; 1000];
        assert_eq!(read(body.clone(), None, 1000).ok(), Some(body.clone()));
        assert_eq!(
            read(gzip(&body), Some("gzip"), 1000).ok(),
            Some(body.clone())
        );
        // Compresses far below the limit, decodes one byte over it.
        let over = vec![b'a'; 1001];
        assert!(gzip(&over).len() < 100);
        assert_eq!(
            read(gzip(&over), Some("gzip"), 1000)
                .err()
                .map(|e| e.code()),
            Some("too_large")
        );
        assert_eq!(
            read(over, None, 1000).err().map(|e| e.code()),
            Some("too_large")
        );
    }

    #[test]
    fn a_body_that_never_ends_times_out() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let Ok(runtime) = runtime else {
            panic!("no runtime")
        };
        let endless = Body::from_stream(futures_util::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >());
        let read = runtime.block_on(read_body_within(
            endless,
            None,
            1000,
            "a test",
            Duration::from_millis(50),
        ));
        assert_eq!(read.err().map(|e| e.code()), Some("body_timeout"));
    }

    #[test]
    fn bad_gzip_and_unknown_encodings_are_refused() {
        assert_eq!(
            read(b"not gzip".to_vec(), Some("gzip"), 1000)
                .err()
                .map(|e| e.code()),
            Some("invalid_gzip")
        );
        assert_eq!(
            read(b"x".to_vec(), Some("br"), 1000)
                .err()
                .map(|e| e.code()),
            Some("unsupported_encoding")
        );
    }
}
