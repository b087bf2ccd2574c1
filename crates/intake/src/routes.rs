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

use crate::body::{read_body, BodyFailure, BodyTimeouts, MAX_BATCH_BYTES, MAX_EVENT_BYTES};
use crate::durable::DurableWriter;
use crate::error::{error_json, rejection_status, IntakeError};
use crate::items::{self, Arrival, SegmentBatch};
use crate::scrub::scrub_secrets;
use idfold_access::WriteKeys;
use idfold_log::DeadLetter;
use idfold_telemetry::names;

/// Whether the log behind the server is reachable (`/readyz`). May block:
/// it is called off the request threads.
pub trait Readiness: Send + Sync + 'static {
    fn check(&self) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests being validated or waiting for the log at once (their body
    /// already read); one more is answered 503 at once. One workspace may
    /// hold at most three quarters of them, so another always finds some.
    pub max_inflight_requests: usize,
    /// How long a body may go without a byte, and take in all.
    pub body: BodyTimeouts,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflight_requests: 256,
            body: BodyTimeouts::default(),
        }
    }
}

impl Limits {
    /// The slots one workspace may hold at once.
    fn workspace_share(&self) -> usize {
        let all = self.max_inflight_requests.max(1);
        (all - all / 4).max(1)
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
    /// Slots held by each workspace, against `Limits::workspace_share`.
    held: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    limits: Limits,
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
            held: Arc::default(),
            limits,
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
            Json(json!({
                "status": "unavailable",
                "reason": why,
                "code": "not_ready",
                "message": format!("not ready: {why}"),
            })),
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
    (status, Json(error_json(code, None, message))).into_response()
}

/// A request's slot, given back when dropped.
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    held: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    workspace: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut held) = self.held.lock() {
            if let Some(n) = held.get_mut(&self.workspace) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// A slot for one request whose body is read, or 503 when every slot is
/// taken or its workspace holds its share: a body is read before a slot
/// is taken, so slow clients hold connections, never slots, and one
/// workspace's load leaves slots for the others.
fn take_slot(state: &IntakeState, workspace: &str) -> Result<Slot, IntakeError> {
    let mut held = state.0.held.lock().map_err(|_| IntakeError::Overloaded)?;
    let count = held.entry(workspace.to_owned()).or_default();
    if *count >= state.0.limits.workspace_share() {
        return Err(IntakeError::Overloaded);
    }
    let permit = state
        .0
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| IntakeError::Overloaded)?;
    *count += 1;
    Ok(Slot {
        _permit: permit,
        held: state.0.held.clone(),
        workspace: workspace.to_owned(),
    })
}

/// A request's body and the workspace of the key in its `Authorization`
/// header when there is one (checked before anything is read). Where the
/// body cannot carry a key, no header is refused at once.
struct Received<'s> {
    from_header: Option<&'s str>,
    bytes: Vec<u8>,
}

async fn receive<'s>(
    state: &'s IntakeState,
    headers: &HeaderMap,
    body: Body,
    body_may_hold_key: bool,
    limit: usize,
    what: &'static str,
    source: &'static str,
) -> Result<Received<'s>, IntakeError> {
    let from_header = match authorization(headers) {
        Some(h) => match state.0.keys.authenticate(Some(h), None) {
            Ok(workspace) => Some(workspace),
            Err(error) => return Err(count_unattributed(error.into())),
        },
        None if body_may_hold_key => None,
        None => return Err(count_unattributed(IntakeError::MissingWriteKey)),
    };
    let encoding = headers.get(header::CONTENT_ENCODING);
    match read_body(body, encoding, limit, what, state.0.limits.body).await {
        Ok(bytes) => Ok(Received { from_header, bytes }),
        Err(failure) => Err(match from_header {
            Some(workspace) => refuse_whole(state, workspace, source, failure).await,
            // The key is in the body that could not be read: nobody to
            // charge a dead letter to.
            None => count_unattributed(failure.error),
        }),
    }
}

/// Counts a request refused before any workspace was known: one input
/// received, one rejected. No dead letter: anyone could fill the store.
/// A request refused for its credentials (401) holds no input to count;
/// `idfold_http_requests_total` has it by status.
fn count_unattributed(error: IntakeError) -> IntakeError {
    if error.status() != StatusCode::UNAUTHORIZED {
        count_whole_rejection(error.code());
    }
    error
}

fn count_whole_rejection(reason: &'static str) {
    metrics::counter!(names::EVENTS_RECEIVED, "source" => "http").increment(1);
    metrics::counter!(names::EVENTS_REJECTED, "source" => "http", "reason" => reason).increment(1);
}

/// A body refused as a whole by a workspace's key: counted, and
/// dead-lettered (its first `KEPT_BYTES`, without secrets) with the
/// workspace and the route, before the client is answered.
async fn refuse_whole(
    state: &IntakeState,
    workspace: &str,
    source: &'static str,
    failure: BodyFailure,
) -> IntakeError {
    count_whole_rejection(failure.error.code());
    let (raw, cut) = scrub_secrets(&failure.kept, &state.0.keys);
    let letter = DeadLetter {
        reason: failure.error.code().to_owned(),
        field: failure.error.field().map(str::to_owned),
        message: failure.error.to_string(),
        source: source.to_owned(),
        partition: None,
        position: None,
        raw,
        truncated: failure.truncated || cut,
        workspace: Some(workspace.to_owned()),
    };
    let mut validated = Validated::default();
    validated.dead_letters.push(letter);
    // The client's answer is the refusal either way; a dead letter the
    // log could not take is logged, not retried.
    if let Err(error) = state.0.writer.write(validated).await {
        tracing::warn!(%error, workspace, source, "a refused body could not be dead-lettered");
    }
    failure.error
}

/// Whole-body refusal of bytes that were read (not JSON, not a batch).
async fn refuse_read(
    state: &IntakeState,
    workspace: &str,
    source: &'static str,
    bytes: &[u8],
    error: IntakeError,
) -> IntakeError {
    let failure = BodyFailure::of_bytes(error, bytes);
    refuse_whole(state, workspace, source, failure).await
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
    const SOURCE: &str = "http:/v1/events";
    let received = receive(
        &state,
        &headers,
        body,
        false,
        MAX_BATCH_BYTES,
        "a batch request",
        SOURCE,
    )
    .await?;
    let workspace = workspace(&state, received.from_header, None).map_err(count_unattributed)?;
    let _slot = take_slot(&state, workspace)?;
    let validated = match items::native(&received.bytes, &arrival(&state, workspace, SOURCE)) {
        Ok(validated) => validated,
        Err(error) => {
            return Err(refuse_read(&state, workspace, SOURCE, &received.bytes, error).await)
        }
    };
    write_and_answer(&state, workspace, validated).await
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
        source,
    )
    .await?;
    let batch = match SegmentBatch::parse(&received.bytes) {
        Ok(batch) => batch,
        Err(error) => {
            return Err(match received.from_header {
                Some(workspace) => {
                    refuse_read(&state, workspace, source, &received.bytes, error).await
                }
                None => count_unattributed(error),
            })
        }
    };
    let workspace = workspace(&state, received.from_header, batch.write_key.as_deref())
        .map_err(count_unattributed)?;
    let _slot = take_slot(&state, workspace)?;
    let validated = match batch.validate(&arrival(&state, workspace, source)) {
        Ok(validated) => validated,
        Err(error) => {
            return Err(refuse_read(&state, workspace, source, &received.bytes, error).await)
        }
    };
    write_and_answer(&state, workspace, validated).await
}

async fn segment_single(
    call: SegmentCall,
    state: IntakeState,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let source = single_source(call);
    let received = receive(
        &state,
        &headers,
        body,
        true,
        MAX_EVENT_BYTES,
        "one event",
        source,
    )
    .await?;
    let (message, body_key) = match items::segment_message(&received.bytes) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Err(match received.from_header {
                Some(workspace) => {
                    refuse_read(&state, workspace, source, &received.bytes, error).await
                }
                None => count_unattributed(error),
            })
        }
    };
    let workspace =
        workspace(&state, received.from_header, body_key.as_deref()).map_err(count_unattributed)?;
    let _slot = take_slot(&state, workspace)?;
    let arrival = arrival(&state, workspace, source);
    let validated = items::segment_single(call, &message, &received.bytes, &arrival)?;
    let report = write(&state, workspace, validated).await?;
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
async fn write(
    state: &IntakeState,
    workspace: &str,
    mut validated: Validated,
) -> Result<PublishReport, IntakeError> {
    for letter in &mut validated.dead_letters {
        letter.workspace = Some(workspace.to_owned());
    }
    // The writer records the metrics from the report it is given.
    let report = validated.report.clone();
    state.0.writer.write(validated).await?;
    Ok(report)
}

/// 200 when anything was accepted (the rest are listed by index), the
/// rejection's status when nothing was.
async fn write_and_answer(
    state: &IntakeState,
    workspace: &str,
    validated: Validated,
) -> Result<Response, IntakeError> {
    let report = write(state, workspace, validated).await?;
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
