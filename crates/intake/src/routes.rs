//! The routes, and the answer each request gets.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idfold_events::{EventTime, ReasonCode, Rejection};
use idfold_producer::{PublishReport, Validated};
use idfold_segment::SegmentCall;
use serde_json::json;
use tokio::sync::Semaphore;
use tower_http::cors::{Any, CorsLayer};

use crate::body::{read_body, MAX_BATCH_BYTES, MAX_EVENT_BYTES};
use crate::durable::DurableWriter;
use crate::error::{rejection_status, IntakeError};
use crate::items::{self, Arrival, SegmentBatch};
use idfold_access::WriteKeys;

/// Whether the log behind the server is reachable (`/readyz`). May block:
/// it is called off the request threads.
pub trait Readiness: Send + Sync + 'static {
    fn check(&self) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests being read, validated or waiting for the log at once; one
    /// more is answered 503 at once. With the 500 KiB body limit this bounds
    /// the memory requests hold.
    pub max_inflight_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflight_requests: 256,
        }
    }
}

#[derive(Clone)]
pub struct IntakeState(Arc<Inner>);

struct Inner {
    keys: WriteKeys,
    writer: DurableWriter,
    readiness: Box<dyn Readiness>,
    /// The server's clock, read once per request (the rules have none).
    clock: fn() -> EventTime,
    slots: Arc<Semaphore>,
    body_key_slots: Arc<Semaphore>,
    /// The last readiness check and when it ran: `/readyz` answers from it
    /// for a second, so probes cannot pile up blocking checks.
    last_ready: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
}

impl std::fmt::Debug for IntakeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeState")
            .field("keys", &self.0.keys)
            .field("writer", &self.0.writer)
            .finish_non_exhaustive()
    }
}

impl IntakeState {
    pub fn new(
        keys: WriteKeys,
        writer: DurableWriter,
        readiness: Box<dyn Readiness>,
        limits: Limits,
        clock: fn() -> EventTime,
    ) -> IntakeState {
        IntakeState(Arc::new(Inner {
            keys,
            writer,
            readiness,
            clock,
            slots: Arc::new(Semaphore::new(limits.max_inflight_requests.max(1))),
            body_key_slots: Arc::new(Semaphore::new((limits.max_inflight_requests / 4).max(1))),
            last_ready: std::sync::Mutex::new(None),
        }))
    }
}

pub fn router(state: IntakeState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/events", post(native_events));
    // `/v1/b` is analytics.js's batch path.
    for (path, source) in [
        ("/v1/batch", "http:/v1/batch"),
        ("/v1/import", "http:/v1/import"),
        ("/v1/b", "http:/v1/batch"),
    ] {
        router = router.route(
            path,
            post(move |State(state), headers, body| segment_batch(source, state, headers, body)),
        );
    }
    for call in SegmentCall::ALL {
        let single = move |State(state), headers, body| segment_single(call, state, headers, body);
        router = router
            .route(&format!("/v1/{}", call.as_str()), post(single))
            .route(short_path(call), post(single));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Browsers send events from other origins (analytics.js); the
        // write key, not the origin, is what authorizes them.
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::CONTENT_ENCODING,
                ])
                .max_age(Duration::from_secs(86_400)),
        )
        .with_state(state)
}

fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<IntakeState>) -> Response {
    const FRESH: Duration = Duration::from_secs(1);
    let cached = state
        .0
        .last_ready
        .lock()
        .ok()
        .and_then(|last| last.clone())
        .filter(|(at, _)| at.elapsed() < FRESH)
        .map(|(_, result)| result);
    let checked = match cached {
        Some(result) => result,
        None => {
            let probe = state.clone();
            let result = tokio::task::spawn_blocking(move || {
                if !probe.0.writer.is_running() {
                    return Err("the log writer has stopped".to_owned());
                }
                probe.0.readiness.check()
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            if let Ok(mut last) = state.0.last_ready.lock() {
                *last = Some((std::time::Instant::now(), result.clone()));
            }
            result
        }
    };
    match checked {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(json!({"status": "unavailable", "reason": why})),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    error_answer(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see the README for the API",
    )
}

async fn method_not_allowed() -> Response {
    error_answer(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint takes another method (events are POSTed)",
    )
}

fn error_answer(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "error": {"code": code, "field": null, "message": message}})),
    )
        .into_response()
}

/// A slot for one request, or 503 when every slot is taken. Requests that
/// proved their key in the header use the main pool; requests whose key is
/// only in the body (not known before the body is read) share a smaller
/// one, so keyless clients cannot take every slot.
fn take_slot(
    state: &IntakeState,
    authenticated: bool,
) -> Result<tokio::sync::OwnedSemaphorePermit, IntakeError> {
    let pool = if authenticated {
        &state.0.slots
    } else {
        &state.0.body_key_slots
    };
    pool.clone()
        .try_acquire_owned()
        .map_err(|_| IntakeError::Overloaded)
}

/// A request's body and the workspace of the key in its `Authorization`
/// header when there is one (checked before anything is read), holding its
/// slot. Where the body cannot carry a key, no header is refused at once.
struct Received<'s> {
    from_header: Option<&'s str>,
    bytes: Vec<u8>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

async fn receive<'s>(
    state: &'s IntakeState,
    headers: &HeaderMap,
    body: Body,
    body_may_hold_key: bool,
    limit: usize,
    what: &'static str,
) -> Result<Received<'s>, IntakeError> {
    let from_header = match authorization(headers) {
        Some(h) => Some(state.0.keys.authenticate(Some(h), None)?),
        None if body_may_hold_key => None,
        None => return Err(IntakeError::MissingWriteKey),
    };
    let slot = take_slot(state, from_header.is_some())?;
    let bytes = read_body(body, headers.get(header::CONTENT_ENCODING), limit, what).await?;
    Ok(Received {
        from_header,
        bytes,
        _slot: slot,
    })
}

/// The header's workspace, else the one of the body's `writeKey`.
fn workspace<'s>(
    state: &'s IntakeState,
    from_header: Option<&'s str>,
    body_key: Option<&str>,
) -> Result<&'s str, IntakeError> {
    match (from_header, body_key) {
        // A body may repeat the header's key, not name another.
        (Some(workspace), Some(key)) if state.0.keys.lookup(key) != Some(workspace) => {
            Err(IntakeError::Rejected(Rejection::new(
                ReasonCode::WrongWorkspace,
                Some("writeKey"),
                "`writeKey` in the body is not a key of the workspace the Authorization header is for",
            )))
        }
        (Some(workspace), _) => Ok(workspace),
        (None, key) => Ok(state.0.keys.authenticate(None, key)?),
    }
}

fn arrival<'w>(state: &'w IntakeState, workspace: &'w str, source: &'static str) -> Arrival<'w> {
    Arrival {
        workspace,
        received_at: (state.0.clock)(),
        source,
        keys: &state.0.keys,
    }
}

async fn native_events(
    State(state): State<IntakeState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let received = receive(
        &state,
        &headers,
        body,
        false,
        MAX_BATCH_BYTES,
        "a batch request",
    )
    .await?;
    let workspace = workspace(&state, received.from_header, None)?;
    let validated = items::native(
        &received.bytes,
        &arrival(&state, workspace, "http:/v1/events"),
    )?;
    write_and_answer(&state, validated).await
}

async fn segment_batch(
    source: &'static str,
    state: IntakeState,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let received = receive(
        &state,
        &headers,
        body,
        true,
        MAX_BATCH_BYTES,
        "a batch request",
    )
    .await?;
    let batch = SegmentBatch::parse(&received.bytes)?;
    let workspace = workspace(&state, received.from_header, batch.write_key.as_deref())?;
    let validated = batch.validate(&arrival(&state, workspace, source))?;
    write_and_answer(&state, validated).await
}

async fn segment_single(
    call: SegmentCall,
    state: IntakeState,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let received = receive(&state, &headers, body, true, MAX_EVENT_BYTES, "one event").await?;
    let (message, body_key) = items::segment_message(&received.bytes)?;
    let workspace = workspace(&state, received.from_header, body_key.as_deref())?;
    let arrival = arrival(&state, workspace, single_source(call));
    let validated = items::segment_single(call, &message, &received.bytes, &arrival)?;
    let report = write(&state, validated).await?;
    match report.rejected.into_iter().next() {
        // Dead-lettered, and the caller told why.
        Some((_, rejection)) => Err(IntakeError::Rejected(rejection)),
        None => Ok(Json(json!({"success": true})).into_response()),
    }
}

/// analytics.js posts to `/t`, `/p`, `/i`, `/a`, `/g`, `/s` under its API
/// host (`HOST/v1`), the call's first letter.
fn short_path(call: SegmentCall) -> &'static str {
    match call {
        SegmentCall::Identify => "/v1/i",
        SegmentCall::Track => "/v1/t",
        SegmentCall::Page => "/v1/p",
        SegmentCall::Screen => "/v1/s",
        SegmentCall::Group => "/v1/g",
        SegmentCall::Alias => "/v1/a",
    }
}

fn single_source(call: SegmentCall) -> &'static str {
    match call {
        SegmentCall::Identify => "http:/v1/identify",
        SegmentCall::Track => "http:/v1/track",
        SegmentCall::Page => "http:/v1/page",
        SegmentCall::Screen => "http:/v1/screen",
        SegmentCall::Group => "http:/v1/group",
        SegmentCall::Alias => "http:/v1/alias",
    }
}

/// Makes the batch durable (accepted events and dead letters alike).
async fn write(state: &IntakeState, validated: Validated) -> Result<PublishReport, IntakeError> {
    // The writer records the metrics from the report it is given.
    let report = validated.report.clone();
    state.0.writer.write(validated).await?;
    Ok(report)
}

/// 200 when anything was accepted (the rest are listed by index), the
/// rejection's status when nothing was.
async fn write_and_answer(
    state: &IntakeState,
    validated: Validated,
) -> Result<Response, IntakeError> {
    let report = write(state, validated).await?;
    let status = match report.rejected.first() {
        Some((_, first)) if report.accepted == 0 => rejection_status(first.reason),
        _ => StatusCode::OK,
    };
    let errors: Vec<serde_json::Value> = report
        .rejected
        .iter()
        .map(|(index, r)| {
            json!({"index": index, "code": r.reason.as_str(), "field": r.field, "message": r.message})
        })
        .collect();
    let body = json!({
        "success": errors.is_empty(),
        "accepted": report.accepted,
        "rejected": errors.len(),
        "errors": errors,
    });
    Ok((status, Json(body)).into_response())
}
