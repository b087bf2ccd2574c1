//! Request bodies: read with a limit, gzip decoded with the same limit.

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderValue;
use http_body_util::BodyExt;

use crate::error::IntakeError;

/// One event, or a single-event call's whole body (Segment's limit).
pub const MAX_EVENT_BYTES: usize = idfold_events::MAX_EVENT_BYTES;
/// One batch request (Segment's limit).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// How long a body may take to arrive as a whole, and without a byte:
/// a client trickling bytes must not hold a connection for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeouts {
    /// No byte of the body for this long: 408.
    pub progress: Duration,
    /// The whole body not there after this long: 408.
    pub total: Duration,
}

impl Default for BodyTimeouts {
    fn default() -> Self {
        BodyTimeouts {
            progress: Duration::from_secs(10),
            total: Duration::from_secs(30),
        }
    }
}

/// A request body that fails when it goes `progress` without a frame, or
/// is not over after `total`: whatever reads it (an extractor of the read
/// API or the dashboard, the intake's own reader) sees an error instead of
/// waiting on a client that stopped sending.
#[derive(Debug)]
pub struct TimedBody {
    inner: Body,
    timeouts: BodyTimeouts,
    stall: Pin<Box<tokio::time::Sleep>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

/// The error a [`TimedBody`] fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent no byte for {progress_secs} s, or took over {total_secs} s in all")]
pub struct BodyStalled {
    progress_secs: u64,
    total_secs: u64,
}

impl TimedBody {
    pub fn new(inner: Body, timeouts: BodyTimeouts) -> TimedBody {
        let now = tokio::time::Instant::now();
        TimedBody {
            inner,
            timeouts,
            stall: Box::pin(tokio::time::sleep_until(now + timeouts.progress)),
            deadline: Box::pin(tokio::time::sleep_until(now + timeouts.total)),
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.timeouts.progress;
                this.stall.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let stalled = this.stall.as_mut().poll(cx).is_ready();
                let late = this.deadline.as_mut().poll(cx).is_ready();
                if stalled || late {
                    Poll::Ready(Some(Err(Box::new(BodyStalled {
                        progress_secs: this.timeouts.progress.as_secs(),
                        total_secs: this.timeouts.total.as_secs(),
                    }))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: every request's body is a [`TimedBody`].
pub async fn timed_bodies(
    axum::extract::State(timeouts): axum::extract::State<BodyTimeouts>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    next.run(request.map(|body| Body::new(TimedBody::new(body, timeouts))))
        .await
}

/// What a dead letter keeps of a body that was refused as a whole.
pub const KEPT_BYTES: usize = 64 * 1024;

/// A body refused as a whole, with what was received of it (at most
/// `KEPT_BYTES`, undecoded) for the dead letter.
#[derive(Debug)]
pub struct BodyFailure {
    pub error: IntakeError,
    pub kept: Vec<u8>,
    /// More was received than `kept` holds.
    pub truncated: bool,
}

impl BodyFailure {
    /// A body that was read and then refused as a whole.
    pub(crate) fn of_bytes(error: IntakeError, bytes: &[u8]) -> BodyFailure {
        BodyFailure::new(error, bytes, false)
    }

    fn new(error: IntakeError, received: &[u8], more: bool) -> BodyFailure {
        let kept = received.get(..KEPT_BYTES).unwrap_or(received).to_vec();
        BodyFailure {
            truncated: more || kept.len() < received.len(),
            error,
            kept,
        }
    }
}

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
    timeouts: BodyTimeouts,
) -> Result<Vec<u8>, BodyFailure> {
    let encoding = encoding(content_encoding).map_err(|e| BodyFailure::new(e, &[], false))?;
    let too_large = || IntakeError::BodyTooLarge { limit, what };
    let mut received = Vec::new();
    // A compressed body larger than the limit decodes larger still.
    let collected = tokio::time::timeout(
        timeouts.total,
        collect_within(body, limit, timeouts.progress, &mut received),
    )
    .await
    .unwrap_or(Err(Stalled::Timeout));
    match collected {
        Ok(true) => {}
        Ok(false) => return Err(BodyFailure::new(too_large(), &received, true)),
        Err(Stalled::Timeout) => {
            let secs = timeouts.progress.as_secs().max(1);
            return Err(BodyFailure::new(
                IntakeError::BodyTimeout(secs),
                &received,
                true,
            ));
        }
        Err(Stalled::Broken(detail)) => {
            return Err(BodyFailure::new(
                IntakeError::BadBody(detail),
                &received,
                true,
            ))
        }
    }
    match encoding {
        Encoding::Identity => Ok(received),
        Encoding::Gzip => match gunzip(&received, limit) {
            Some(Ok(decoded)) => Ok(decoded),
            Some(Err(e)) => Err(BodyFailure::new(e, &received, false)),
            None => Err(BodyFailure::new(too_large(), &received, false)),
        },
    }
}

enum Stalled {
    Timeout,
    Broken(String),
}

/// The most of an oversize body read (and dropped) before answering, so
/// the client finishes sending and reads the 400 instead of a reset.
const DRAIN_CAP: usize = 8 * 1024 * 1024;

/// Reads the body into `bytes`; `false` when there are more than `limit`:
/// then the rest is read and dropped (up to `DRAIN_CAP`), since answering
/// before the client has sent everything makes it see a broken connection.
/// A frame that takes longer than `progress` to come is a timeout.
async fn collect_within(
    mut body: Body,
    limit: usize,
    progress: Duration,
    bytes: &mut Vec<u8>,
) -> Result<bool, Stalled> {
    let mut seen = 0usize;
    loop {
        let frame = tokio::time::timeout(progress, body.frame())
            .await
            .map_err(|_| Stalled::Timeout)?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            let error = e.into_inner();
            if error.is::<BodyStalled>() {
                Stalled::Timeout
            } else {
                Stalled::Broken(error.to_string())
            }
        })?;
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
    Ok(seen <= limit)
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

    /// A runtime with timers, for the body readers' futures.
    fn test_runtime() -> tokio::runtime::Runtime {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let Ok(runtime) = runtime else {
            panic!("no runtime")
        };
        runtime
    }
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
        let runtime = test_runtime();
        runtime
            .block_on(read_body(
                Body::from(bytes),
                header.as_ref(),
                limit,
                "a test",
                BodyTimeouts::default(),
            ))
            .map_err(|failure| failure.error)
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
    fn a_body_that_stops_mid_way_times_out_with_what_came() {
        let runtime = test_runtime();
        use futures_util::StreamExt;
        let first = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"[{\"a\""))
        });
        let stalled = Body::from_stream(first.chain(futures_util::stream::pending()));
        let timeouts = BodyTimeouts {
            progress: Duration::from_millis(50),
            total: Duration::from_secs(60),
        };
        let read = runtime.block_on(read_body(stalled, None, 1000, "a test", timeouts));
        let Err(failure) = read else {
            panic!("a stalled body was read")
        };
        assert_eq!(failure.error.code(), "body_timeout");
        assert_eq!(
            failure.error.status(),
            axum::http::StatusCode::REQUEST_TIMEOUT
        );
        assert_eq!(failure.kept, b"[{\"a\"");
        assert!(failure.truncated);
    }

    #[test]
    fn a_timed_body_that_stalls_is_a_body_timeout_to_the_reader() {
        use futures_util::StreamExt;
        let runtime = test_runtime();
        let first = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{"))
        });
        let read = runtime.block_on(async {
            let stalled = Body::from_stream(first.chain(futures_util::stream::pending()));
            let timed = Body::new(TimedBody::new(
                stalled,
                BodyTimeouts {
                    progress: Duration::from_millis(50),
                    total: Duration::from_secs(60),
                },
            ));
            read_body(timed, None, 1000, "a test", BodyTimeouts::default()).await
        });
        assert_eq!(read.err().map(|f| f.error.code()), Some("body_timeout"));
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
