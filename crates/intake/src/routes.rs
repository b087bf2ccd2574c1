//! The routes, and the answer each request gets.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idfold_events::EventTime;
use idfold_producer::{PublishReport, Validated};
use idfold_segment::SegmentCall;
use serde_json::json;
use tokio::sync::Semaphore;
use tower_http::cors::{Any, CorsLayer};

use crate::access::WriteKeys;
use crate::body::{read_body, MAX_BATCH_BYTES, MAX_EVENT_BYTES};
use crate::durable::DurableWriter;
use crate::error::{rejection_status, IntakeError};
use crate::items::{self, Arrival, SegmentBatch};

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
    slots: Arc<Semaphore>,
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
    ) -> IntakeState {
        IntakeState(Arc::new(Inner {
            keys,
            writer,
            readiness,
            slots: Arc::new(Semaphore::new(limits.max_inflight_requests.max(1))),
        }))
    }
}

pub fn router(state: IntakeState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/events", post(native_events))
        .route("/v1/batch", post(segment_batch))
        .route("/v1/import", post(segment_batch));
    for call in SegmentCall::ALL {
        router = router.route(
            &format!("/v1/{}", call.as_str()),
            post(move |state, headers, body| segment_single(call, state, headers, body)),
        );
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

/// The server's clock, read once per request (the rules have none).
fn now() -> EventTime {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<IntakeState>) -> Response {
    let probe = state.clone();
    let checked = tokio::task::spawn_blocking(move || {
        if !probe.0.writer.is_running() {
            return Err("the log writer has stopped".to_owned());
        }
        probe.0.readiness.check()
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
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

/// A slot for one request, or 503 when every slot is taken.
fn take_slot(state: &IntakeState) -> Result<tokio::sync::OwnedSemaphorePermit, IntakeError> {
    state
        .0
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| IntakeError::Overloaded)
}

/// The body, read within `limit`, and the workspace of the key in the
/// `Authorization` header when there is one: checked before the body is
/// read. Where the body cannot carry a key, a request without the header is
/// refused before reading it too.
async fn receive<'s>(
    state: &'s IntakeState,
    headers: &HeaderMap,
    body: Body,
    body_may_hold_key: bool,
    limit: usize,
    what: &'static str,
) -> Result<(Option<&'s str>, Vec<u8>), IntakeError> {
    let from_header = match authorization(headers) {
        Some(h) => Some(state.0.keys.authenticate(Some(h), None)?),
        None if body_may_hold_key => None,
        None => return Err(IntakeError::MissingWriteKey),
    };
    let bytes = read_body(body, headers.get(header::CONTENT_ENCODING), limit, what).await?;
    Ok((from_header, bytes))
}

/// The header's workspace, else the one of the body's `writeKey`.
fn workspace<'s>(
    state: &'s IntakeState,
    from_header: Option<&'s str>,
    body_key: Option<&str>,
) -> Result<&'s str, IntakeError> {
    match from_header {
        Some(workspace) => Ok(workspace),
        None => state.0.keys.authenticate(None, body_key),
    }
}

fn arrival<'w>(workspace: &'w str, source: &'static str) -> Arrival<'w> {
    Arrival {
        workspace,
        received_at: now(),
        source,
    }
}

async fn native_events(
    State(state): State<IntakeState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let _slot = take_slot(&state)?;
    let (from_header, bytes) = receive(
        &state,
        &headers,
        body,
        false,
        MAX_BATCH_BYTES,
        "a batch request",
    )
    .await?;
    let workspace = workspace(&state, from_header, None)?;
    let validated = items::native(&bytes, &arrival(workspace, "http:/v1/events"))?;
    write_and_answer(&state, validated).await
}

async fn segment_batch(
    State(state): State<IntakeState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let _slot = take_slot(&state)?;
    let (from_header, bytes) = receive(
        &state,
        &headers,
        body,
        true,
        MAX_BATCH_BYTES,
        "a batch request",
    )
    .await?;
    let batch = SegmentBatch::parse(&bytes)?;
    let workspace = workspace(&state, from_header, batch.write_key.as_deref())?;
    let validated = batch.validate(&arrival(workspace, "http:/v1/batch"))?;
    write_and_answer(&state, validated).await
}

async fn segment_single(
    call: SegmentCall,
    State(state): State<IntakeState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let _slot = take_slot(&state)?;
    let (from_header, bytes) =
        receive(&state, &headers, body, true, MAX_EVENT_BYTES, "one event").await?;
    let (message, body_key) = items::segment_message(&bytes)?;
    let workspace = workspace(&state, from_header, body_key.as_deref())?;
    let arrival = arrival(workspace, single_source(call));
    let validated = items::segment_single(call, &message, &bytes, &arrival)?;
    let report = write(&state, validated).await?;
    match report.rejected.into_iter().next() {
        // Dead-lettered, and the caller told why.
        Some((_, rejection)) => Err(IntakeError::Rejected(rejection)),
        None => Ok(Json(json!({"success": true})).into_response()),
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
async fn write(
    state: &IntakeState,
    mut validated: Validated,
) -> Result<PublishReport, IntakeError> {
    let report = std::mem::take(&mut validated.report);
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
