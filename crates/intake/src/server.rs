//! The HTTP server loop: accepts connections up to a cap and closes those
//! that hold a connection without making progress (idle TCP connections,
//! headers sent a byte at a time, keep-alive connections left idle), so
//! slow clients of any shape cannot keep others from being served.
//! A request's body is timed by the handler that reads it
//! (`body_progress_timeout`), which answers 408 in JSON.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use idfold_telemetry::names;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long connections may stay open without progress, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at once; past it a new connection is answered 503
    /// (best effort) and closed at once, without holding a descriptor.
    pub max_connections: usize,
    /// From accepting a connection, or from the first byte of a later
    /// request, until the request's headers are complete.
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request, and no response being
    /// written, is closed after this.
    pub keep_alive_idle: Duration,
    /// A request body that sends nothing for this long is answered 408
    /// (applied by the handlers that read bodies; see `Limits`).
    pub body_progress_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(60),
            body_progress_timeout: Duration::from_secs(10),
        }
    }
}

/// Where one connection is, for its deadline.
#[derive(Debug)]
struct Progress {
    /// Requests handed to the app and not yet answered.
    requests: usize,
    /// When the connection last became idle (accepted, or a response given).
    idle_since: Instant,
    /// First byte read while idle: a request's headers are arriving.
    head_started: Option<Instant>,
    /// Last time bytes moved either way (a long response being written).
    last_io: Instant,
    served_any: bool,
    /// Requests handed to the app whose response head is not written yet:
    /// a head written when there is none is hyper's own error answer.
    heads_owed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    HeaderTimeout,
    IdleTimeout,
}

impl Expiry {
    fn label(self) -> &'static str {
        match self {
            Expiry::HeaderTimeout => "header_timeout",
            Expiry::IdleTimeout => "idle_timeout",
        }
    }
}

impl Progress {
    fn new(now: Instant) -> Progress {
        Progress {
            requests: 0,
            idle_since: now,
            head_started: None,
            last_io: now,
            served_any: false,
            heads_owed: 0,
        }
    }

    /// When the connection is to be closed if nothing changes, and why;
    /// `None` while a request is with the app (its handler times itself).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Expiry)> {
        if self.requests > 0 {
            return None;
        }
        if !self.served_any {
            // A new connection: its first request's headers, from accept.
            return Some((
                self.idle_since + limits.header_read_timeout,
                Expiry::HeaderTimeout,
            ));
        }
        match self.head_started {
            Some(started) => Some((started + limits.header_read_timeout, Expiry::HeaderTimeout)),
            None => Some((
                self.idle_since.max(self.last_io) + limits.keep_alive_idle,
                Expiry::IdleTimeout,
            )),
        }
    }
}

type Shared = Arc<Mutex<Progress>>;

fn with<T>(shared: &Shared, f: impl FnOnce(&mut Progress) -> T) -> T {
    let mut guard = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut guard)
}

/// Marks a request answered when dropped (answered or cancelled alike).
struct RequestGuard(Shared);

impl RequestGuard {
    fn begin(shared: &Shared) -> RequestGuard {
        with(shared, |p| {
            p.requests += 1;
            p.heads_owed += 1;
            p.served_any = true;
            p.head_started = None;
        });
        RequestGuard(shared.clone())
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        with(&self.0, |p| {
            p.requests = p.requests.saturating_sub(1);
            p.idle_since = Instant::now();
            p.head_started = None;
        });
    }
}

/// The socket, noting every byte that moves; and the answer hyper writes
/// by itself for a request it could not parse (400, 414, 431, with no
/// body) replaced by one with the JSON every error carries.
struct Watched {
    inner: TcpStream,
    progress: Shared,
    /// A replacement answer still to be written, and how much of it was.
    replacement: Option<(Vec<u8>, usize)>,
}

impl Watched {
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            if *written >= bytes.len() {
                self.replacement = None;
                break;
            }
            let n =
                std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = Instant::now();
            with(&self.progress, |p| {
                p.last_io = now;
                if p.requests == 0 && p.head_started.is_none() && p.served_any {
                    p.head_started = Some(now);
                }
            });
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_replacement(cx))?;
        // An interim answer (`100 Continue`) is not the request's answer.
        let is_head = buf.starts_with(b"HTTP/1.1 ") && !buf.starts_with(b"HTTP/1.1 1");
        let hypers_own = is_head
            && with(&self.progress, |p| {
                if p.heads_owed > 0 {
                    p.heads_owed -= 1;
                    false
                } else {
                    p.requests == 0
                }
            });
        if hypers_own {
            // No request was handed to the app: hyper answers a request it
            // could not parse.
            if let Some(json) = json_parse_error_answer(buf) {
                self.replacement = Some((json, 0));
                std::task::ready!(self.poll_replacement(cx))?;
                return Poll::Ready(Ok(buf.len()));
            }
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            with(&self.progress, |p| p.last_io = Instant::now());
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// For hyper's own answer to an unparsable request (`HTTP/1.1 431 ...`,
/// empty body), the same status with a JSON body; `None` for anything else.
fn json_parse_error_answer(written: &[u8]) -> Option<Vec<u8>> {
    let status = written.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let (code, message) = match status {
        b"400" => ("bad_request", "the request is not valid HTTP/1.1"),
        b"414" => ("uri_too_long", "the request's URI is too long"),
        b"431" => (
            "headers_too_large",
            "the request's headers are too large or too many",
        ),
        _ => return None,
    };
    let body = crate::error::error_json(code, None, message).to_string();
    let reason = match status {
        b"400" => "Bad Request",
        b"414" => "URI Too Long",
        _ => "Request Header Fields Too Large",
    };
    let status = std::str::from_utf8(status).ok()?;
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Written (best effort, without waiting) to a connection over the cap.
fn over_capacity_answer() -> Vec<u8> {
    let body = crate::error::error_json(
        "too_many_connections",
        None,
        "the server has as many connections open as it takes; retry after the delay",
    )
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\ncache-control: no-store\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The connection cap, lowered to leave a quarter of the process's open
/// file limit (at least 64) for everything else: past the limit, accept
/// fails and no new client, `/healthz` included, gets in.
fn within_descriptor_limit(max_connections: usize) -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    match open_files_limit(&limits) {
        Some(files) => {
            let room = files.saturating_sub((files / 4).max(64)).max(1);
            if room < max_connections {
                tracing::warn!(
                    max_connections,
                    open_files_limit = files,
                    using = room,
                    "max_connections is over what the open file limit leaves room for; raise `ulimit -n` or lower it"
                );
            }
            max_connections.min(room)
        }
        None => max_connections,
    }
}

/// The soft limit on open files in `/proc/self/limits`' text.
fn open_files_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish (idle connections close at once) and returns when every
/// connection is closed. Connections past `max_connections` are answered
/// 503 and closed.
pub async fn serve_connections<F>(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let max_connections = within_descriptor_limit(limits.max_connections.max(1));
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let open = Arc::new(());
    let mut accept_errors_logged = Instant::now() - Duration::from_secs(60);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, most likely: wait a moment for some
                // to close rather than spin. Logged once a minute at most.
                if accept_errors_logged.elapsed() > Duration::from_secs(60) {
                    tracing::warn!(%error, "cannot accept connections");
                    accept_errors_logged = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!(names::HTTP_CONNECTIONS_CLOSED, "reason" => "over_limit")
                .increment(1);
            let _ = stream.try_write(&over_capacity_answer());
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        let open = open.clone();
        tokio::spawn(async move {
            metrics::gauge!(names::HTTP_CONNECTIONS_OPEN).increment(1.0);
            serve_one(stream, app, limits, stop).await;
            metrics::gauge!(names::HTTP_CONNECTIONS_OPEN).decrement(1.0);
            drop(permit);
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds a clone; wait for them to end.
    while Arc::strong_count(&open) > 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn serve_one(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let progress: Shared = Arc::new(Mutex::new(Progress::new(Instant::now())));
    let io = Watched {
        inner: stream,
        progress: progress.clone(),
        replacement: None,
    };
    let on_request = progress.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = RequestGuard::begin(&on_request);
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await;
            drop(guard);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Timers are this loop's own (see `Progress::deadline`).
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    // With nothing to time (a request with the app), look again this often.
    let recheck = limits.header_read_timeout.min(limits.keep_alive_idle);
    loop {
        let deadline = with(&progress, |p| p.deadline(&limits));
        let wake = deadline.map_or_else(|| Instant::now() + recheck, |(at, _)| at);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if let Some((at, why)) = with(&progress, |p| p.deadline(&limits)) {
                    if at <= Instant::now() {
                        metrics::counter!(names::HTTP_CONNECTIONS_CLOSED, "reason" => why.label())
                            .increment(1);
                        // Dropping the connection closes the socket.
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 4,
            header_read_timeout: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(60),
            body_progress_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn deadlines_follow_the_connection() {
        let start = Instant::now();
        let mut p = Progress::new(start);
        let l = limits();
        assert_eq!(
            p.deadline(&l),
            Some((start + l.header_read_timeout, Expiry::HeaderTimeout))
        );
        p.requests = 1;
        p.served_any = true;
        assert_eq!(p.deadline(&l), None, "the handler times a request");
        p.requests = 0;
        let answered = start + Duration::from_secs(3);
        p.idle_since = answered;
        assert_eq!(
            p.deadline(&l),
            Some((answered + l.keep_alive_idle, Expiry::IdleTimeout))
        );
        // A long response still being written keeps the connection.
        p.last_io = answered + Duration::from_secs(30);
        assert_eq!(
            p.deadline(&l),
            Some((p.last_io + l.keep_alive_idle, Expiry::IdleTimeout))
        );
        let head = answered + Duration::from_secs(40);
        p.head_started = Some(head);
        assert_eq!(
            p.deadline(&l),
            Some((head + l.header_read_timeout, Expiry::HeaderTimeout))
        );
    }

    #[test]
    fn the_open_file_limit_is_read_and_unlimited_is_no_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            512                  4096                 files     \n";
        assert_eq!(open_files_limit(text), Some(512));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(open_files_limit(unlimited), None);
        assert_eq!(open_files_limit(""), None);
    }

    #[test]
    fn hyper_parse_error_answers_become_json() {
        let written = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let Some(answer) = json_parse_error_answer(written) else {
            panic!("431 not replaced");
        };
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(json["code"], "headers_too_large", "{text}");
        assert!(text.contains("x-content-type-options: nosniff"), "{text}");
        assert!(json["message"].is_string());
        assert!(json_parse_error_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
    }
}
