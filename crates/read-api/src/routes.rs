//! The read routes. Each checks the read token against the path's
//! workspace first: a token of another workspace learns nothing of it, not
//! even whether an id exists there.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idfold_access::ReadTokens;
use idfold_events::Identifier;
use idfold_projector::{ProfileView, StateStore};
use serde::Serialize;
use serde_json::{json, Value};

use crate::dashboard::{dashboard, sign_in, sign_out, Dashboard, DashboardSettings};
use crate::erasure::{erasure_request, outcome_json, ErasureLog};
use crate::error::ReadError;
use crate::forward::{route_to_owner, ClusterView};
use crate::mau::{month_query, MonthQuery};
use crate::profiles::{answer, lookup_identifier, path_identifier};
use crate::responses::{
    limit_param, page, responses_of, time_param, to_csv, Cursor, ResponseFilter, ResponseRow,
};
use crate::segments::{check_name, decode_cursor, encode_cursor, SegmentStore, MAX_FILTER_BYTES};
use idfold_segments::{parse, FilterError};

/// Reads that scan the store run at most this many at once, each on a
/// thread of its own, so a heavy read never stalls ingestion.
const MAX_CONCURRENT_READS: usize = 4;
/// One workspace's reads run at most this many at once, so another
/// workspace always finds a read slot free...
const WORKSPACE_CONCURRENT_READS: usize = 2;
/// ...and at most this many more wait; one more is answered 503 with
/// Retry-After at once, so a workspace's heavy reads cannot queue without
/// bound.
const WORKSPACE_QUEUED_READS: usize = 8;

#[derive(Clone)]
pub struct ReadState(Arc<Inner>);

struct Inner {
    /// Reads run at once; more wait their turn.
    reads: Arc<tokio::sync::Semaphore>,
    /// Each workspace's own bound, within `reads`.
    workspace_reads: std::sync::Mutex<HashMap<String, Arc<WorkspaceReads>>>,
    tokens: ReadTokens,
    store: StateStore,
    segments: SegmentStore,
    /// The server's clock, for "within the last d days" (the rules have none).
    clock: fn() -> idfold_events::EventTime,
    /// Where erasure requests go; none: this server takes none.
    erasures: Option<ErasureLog>,
    /// On Kafka: the other instances, for reads of workspaces held there.
    cluster: Option<ClusterView>,
    dashboard: Dashboard,
}

impl std::fmt::Debug for ReadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadState")
            .field("tokens", &self.0.tokens)
            .finish_non_exhaustive()
    }
}

impl ReadState {
    pub fn new(
        tokens: ReadTokens,
        store: StateStore,
        segments: SegmentStore,
        clock: fn() -> idfold_events::EventTime,
        erasures: Option<ErasureLog>,
        cluster: Option<ClusterView>,
        dashboard: DashboardSettings,
    ) -> ReadState {
        ReadState(Arc::new(Inner {
            reads: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_READS)),
            workspace_reads: std::sync::Mutex::default(),
            tokens,
            store,
            segments,
            clock,
            erasures,
            cluster,
            dashboard: Dashboard::new(dashboard),
        }))
    }

    /// Runs a read that blocks (sled reads, filter evaluation) off the async
    /// workers that take in events, at most `MAX_CONCURRENT_READS` at once.
    pub(crate) async fn blocking<T>(
        &self,
        read: impl FnOnce() -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        let _permit = self
            .0
            .reads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ReadError::Output("shutting down".into()))?;
        tokio::task::block_in_place(read)
    }

    /// A point read of a workspace (one profile, one month, one segment),
    /// once the request's token opens it: one of the server's read slots,
    /// waited for in turn. Point reads are short, so a busy workspace's
    /// make another's wait a moment, never long.
    pub(crate) async fn read_of<T>(
        &self,
        headers: &HeaderMap,
        workspace: &str,
        read: impl FnOnce() -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        self.authorize(headers, workspace)?;
        self.blocking(read).await
    }

    /// A read that scans the workspace's profiles (responses, a segment's
    /// members), once the request's token opens it: at most
    /// `WORKSPACE_CONCURRENT_READS` of the workspace's scans at once and
    /// `WORKSPACE_QUEUED_READS` waiting (503 past that), so one workspace's
    /// heavy reads never hold every read slot. The token is checked first,
    /// so requests without one never take a workspace's queue.
    pub(crate) async fn scan_of<T>(
        &self,
        headers: &HeaderMap,
        workspace: &str,
        read: impl FnOnce() -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        self.authorize(headers, workspace)?;
        self.workspace_read(workspace, read).await
    }

    /// A scan of a workspace its caller may read (a token or a dashboard
    /// session checked it), within the workspace's bounds.
    pub(crate) async fn workspace_read<T>(
        &self,
        workspace: &str,
        read: impl FnOnce() -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        let gate = {
            let mut gates = self.0.workspace_reads.lock().map_err(|_| ReadError::Busy)?;
            gates
                .entry(workspace.to_owned())
                .or_insert_with(|| Arc::new(WorkspaceReads::new()))
                .clone()
        };
        let _place = gate.enter()?;
        let _running = gate
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ReadError::Output("shutting down".into()))?;
        self.blocking(read).await
    }

    /// What the path's `id` asks for and the profile it names now (a device
    /// or email resolving to its user), once the token checks out.
    fn lookup_at(
        &self,
        headers: &HeaderMap,
        workspace: &str,
        id: &str,
    ) -> Result<(Identifier, Option<(Identifier, ProfileView)>), ReadError> {
        self.authorize(headers, workspace)?;
        let asked = path_identifier(id)?;
        let found = self.0.store.lookup_view(workspace, &asked)?;
        Ok((asked, found))
    }

    /// The profile the path's `id` names, once the token checks out.
    fn profile_at(
        &self,
        headers: &HeaderMap,
        workspace: &str,
        id: &str,
    ) -> Result<ProfileView, ReadError> {
        let (_, found) = self.lookup_at(headers, workspace, id)?;
        found
            .map(|(_, profile)| profile)
            .ok_or(ReadError::NotFound("such profile"))
    }

    /// A stored segment's filter, once the token and the name check out.
    fn stored_segment(
        &self,
        headers: &HeaderMap,
        workspace: &str,
        name: &str,
    ) -> Result<Value, ReadError> {
        self.authorize(headers, workspace)?;
        check_name(name)?;
        self.0
            .segments
            .get(workspace, name)?
            .ok_or(ReadError::NotFound("such segment"))
    }

    /// An erasure's outcome once it is complete.
    fn erasure_outcome(
        &self,
        workspace: &str,
        erasure_id: &str,
    ) -> Result<Option<Value>, ReadError> {
        let purges = self.0.erasures.as_ref().is_some_and(|e| e.purges());
        Ok(self
            .0
            .store
            .erasure(workspace, erasure_id)?
            .filter(|record| record.log_purged || !purges)
            .map(|record| outcome_json(workspace, &record, purges)))
    }

    pub(crate) fn cluster(&self) -> Option<&ClusterView> {
        self.0.cluster.as_ref()
    }

    pub(crate) fn dashboard(&self) -> &Dashboard {
        &self.0.dashboard
    }

    pub(crate) fn store(&self) -> &StateStore {
        &self.0.store
    }

    pub(crate) fn segments(&self) -> &SegmentStore {
        &self.0.segments
    }

    pub(crate) fn now(&self) -> idfold_events::EventTime {
        (self.0.clock)()
    }

    /// The workspace a read token opens, if it is one.
    pub(crate) fn workspace_of_token(&self, token: &str) -> Option<String> {
        self.0.tokens.workspace_of_token(token).map(str::to_owned)
    }

    /// The path's workspace, if the request's token is one of its tokens.
    fn authorize(&self, headers: &HeaderMap, workspace: &str) -> Result<(), ReadError> {
        let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        let allowed = self.0.tokens.workspace(authorization)?;
        if allowed == workspace {
            Ok(())
        } else {
            Err(ReadError::OtherWorkspace(workspace.to_owned()))
        }
    }
}

/// One workspace's reads: those running, and those let in (running or
/// waiting), bounded.
struct WorkspaceReads {
    running: Arc<tokio::sync::Semaphore>,
    admitted: Arc<std::sync::atomic::AtomicUsize>,
}

/// A read's place in its workspace's queue, given back when dropped.
struct Admitted(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl WorkspaceReads {
    fn new() -> WorkspaceReads {
        WorkspaceReads {
            running: Arc::new(tokio::sync::Semaphore::new(WORKSPACE_CONCURRENT_READS)),
            admitted: Arc::default(),
        }
    }

    fn enter(&self) -> Result<Admitted, ReadError> {
        use std::sync::atomic::Ordering;
        let bound = WORKSPACE_CONCURRENT_READS + WORKSPACE_QUEUED_READS;
        self.admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < bound).then_some(n + 1)
            })
            .map_err(|_| ReadError::Busy)?;
        Ok(Admitted(self.admitted.clone()))
    }
}

pub fn router(state: ReadState) -> Router {
    let dashboard = Router::new()
        .route("/", get(dashboard))
        .route("/dashboard/session", post(sign_in))
        .route("/dashboard/logout", post(sign_out));
    Router::new()
        .route("/v1/workspaces/{workspace}/mau", get(mau))
        .route(
            "/v1/workspaces/{workspace}/profiles/lookup",
            get(profile_lookup),
        )
        .route(
            "/v1/workspaces/{workspace}/profiles/{id}",
            get(profile_by_id).delete(profile_erase),
        )
        .route(
            "/v1/workspaces/{workspace}/erasures/{erasure_id}",
            get(erasure_status),
        )
        .route("/v1/workspaces/{workspace}/responses", get(responses))
        .route("/v1/workspaces/{workspace}/segments", get(segment_list))
        .route(
            "/v1/workspaces/{workspace}/segments/{name}",
            get(segment_get).put(segment_put).delete(segment_delete),
        )
        .route(
            "/v1/workspaces/{workspace}/segments/{name}/members",
            get(segment_members),
        )
        .route(
            "/v1/workspaces/{workspace}/profiles/{id}/segments",
            get(profile_segments),
        )
        .route(
            "/v1/workspaces/{workspace}/profiles/{id}/responses",
            get(profile_responses),
        )
        // Every workspace route goes to the instance holding its partition.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            route_to_owner,
        ))
        .merge(dashboard)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed() -> Response {
    let message = "this route takes another method";
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({
            "code": "method_not_allowed",
            "message": message,
            "error": {"code": "method_not_allowed", "field": null, "message": message},
        })),
    )
        .into_response()
}

type Params = Query<HashMap<String, String>>;

fn param<'p>(params: &'p Params, name: &str) -> Option<&'p str> {
    params.get(name).map(String::as_str)
}

async fn mau(
    State(state): State<ReadState>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            state.authorize(&headers, &workspace)?;
            let store = &state.0.store;
            match month_query(
                param(&params, "month"),
                param(&params, "from"),
                param(&params, "to"),
            )? {
                MonthQuery::One(month) => Ok(Json(json!(store.mau_row(&workspace, month)?))),
                MonthQuery::Range(months) => {
                    let rows = months
                        .into_iter()
                        .map(|month| store.mau_row(&workspace, month))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Json(json!({ "rows": rows })))
                }
            }
        })
        .await
}

async fn profile_lookup(
    State(state): State<ReadState>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            state.authorize(&headers, &workspace)?;
            let asked = lookup_identifier(
                param(&params, "user_id"),
                param(&params, "email"),
                param(&params, "anonymous_id"),
            )?;
            let found = state.0.store.lookup_view(&workspace, &asked)?;
            Ok(Json(answer(&asked, found)?))
        })
        .await
}

async fn profile_by_id(
    State(state): State<ReadState>,
    Path((workspace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            let (asked, found) = state.lookup_at(&headers, &workspace, &id)?;
            Ok(Json(answer(&asked, found)?))
        })
        .await
}

/// How long `DELETE .../profiles/{id}` waits for the fold to apply the
/// erasure before answering 202 with where to look later.
const ERASURE_WAIT: Duration = Duration::from_secs(10);
const ERASURE_POLL: Duration = Duration::from_millis(25);

async fn profile_erase(
    State(state): State<ReadState>,
    Path((workspace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ReadError> {
    let request = state
        .read_of(&headers, &workspace, || {
            state.authorize(&headers, &workspace)?;
            let erasures = state
                .0
                .erasures
                .as_ref()
                .ok_or_else(|| ReadError::LogUnavailable("this server writes no log".into()))?;
            let asked = path_identifier(&id)?;
            let (profile, _) = state
                .0
                .store
                .lookup_view(&workspace, &asked)?
                .ok_or(ReadError::NotFound("such profile"))?;
            let request = erasure_request(&workspace, profile, (state.0.clock)());
            erasures.request(&request)?;
            Ok(request)
        })
        .await?;
    let deadline = Instant::now() + ERASURE_WAIT;
    loop {
        if let Some(answer) = state
            .blocking(|| state.erasure_outcome(&workspace, &request.erasure_id))
            .await?
        {
            return Ok(Json(answer).into_response());
        }
        if Instant::now() >= deadline {
            let location = format!("/v1/workspaces/{workspace}/erasures/{}", request.erasure_id);
            let body = json!({
                "workspace_id": workspace,
                "erasure_id": request.erasure_id,
                "status": "pending",
            });
            let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return Ok(response);
        }
        tokio::time::sleep(ERASURE_POLL).await;
    }
}

async fn erasure_status(
    State(state): State<ReadState>,
    Path((workspace, erasure_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            state.authorize(&headers, &workspace)?;
            state
                .erasure_outcome(&workspace, &erasure_id)?
                .map(Json)
                .ok_or(ReadError::NotFound("erasure applied with this id (yet)"))
        })
        .await
}

/// The filter, cursor and page size of a responses request.
fn response_query(params: &Params) -> Result<(ResponseFilter, Option<Cursor>, usize), ReadError> {
    let filter = {
        ResponseFilter {
            survey_id: param(params, "survey_id").map(str::to_owned),
            from: param(params, "from")
                .map(|t| time_param("from", t))
                .transpose()?,
            to: param(params, "to")
                .map(|t| time_param("to", t))
                .transpose()?,
        }
    };
    let cursor = param(params, "cursor").map(Cursor::decode).transpose()?;
    Ok((filter, cursor, limit_param(param(params, "limit"))?))
}

/// JSON by default; CSV for `Accept: text/csv`, with the next page's
/// cursor in `X-Next-Cursor`.
fn responses_answer(
    headers: &HeaderMap,
    rows: Vec<ResponseRow>,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<Response, ReadError> {
    let (rows, next) = page(rows, cursor, limit);
    let next = next.map(|c| c.encode());
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if !wants_csv {
        return Ok(Json(json!({"responses": rows, "next_cursor": next})).into_response());
    }
    let body = to_csv(&rows).map_err(|e| ReadError::Output(e.to_string()))?;
    let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert("x-next-cursor", next);
    }
    Ok(response)
}

async fn responses(
    State(state): State<ReadState>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ReadError> {
    state
        .scan_of(&headers, &workspace, || {
            state.authorize(&headers, &workspace)?;
            let (filter, cursor, limit) = response_query(&params)?;
            let mut rows = Vec::new();
            for profile in state.0.store.profile_views(Some(&workspace)) {
                rows.extend(responses_of(&profile?, &filter));
            }
            responses_answer(&headers, rows, cursor.as_ref(), limit)
        })
        .await
}

async fn profile_responses(
    State(state): State<ReadState>,
    Path((workspace, id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            let profile = state.profile_at(&headers, &workspace, &id)?;
            let (filter, cursor, limit) = response_query(&params)?;
            responses_answer(
                &headers,
                responses_of(&profile, &filter),
                cursor.as_ref(),
                limit,
            )
        })
        .await
}

async fn segment_put(
    State(state): State<ReadState>,
    Path((workspace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ReadError> {
    let body = axum::body::to_bytes(body, MAX_FILTER_BYTES)
        .await
        .map_err(|_| ReadError::BadParameter {
            field: "body",
            message: format!(
                "is over the {} KiB a filter may take",
                MAX_FILTER_BYTES / 1024
            ),
        })?;
    state
        .read_of(&headers, &workspace, || {
            state.authorize(&headers, &workspace)?;
            check_name(&name)?;
            let filter: Value = serde_json::from_slice(&body).map_err(|e| {
                ReadError::InvalidFilter(FilterError {
                    pointer: String::new(),
                    message: format!("the body is not JSON: {e}"),
                })
            })?;
            parse(&filter).map_err(ReadError::InvalidFilter)?;
            state.0.segments.put(&workspace, &name, &filter)?;
            Ok(Json(json!({"name": name, "filter": filter})))
        })
        .await
}

async fn segment_get(
    State(state): State<ReadState>,
    Path((workspace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            let filter = state.stored_segment(&headers, &workspace, &name)?;
            Ok(Json(json!({"name": name, "filter": filter})))
        })
        .await
}

async fn segment_delete(
    State(state): State<ReadState>,
    Path((workspace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::http::StatusCode, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            state.authorize(&headers, &workspace)?;
            check_name(&name)?;
            if state.0.segments.delete(&workspace, &name)? {
                Ok(axum::http::StatusCode::NO_CONTENT)
            } else {
                Err(ReadError::NotFound("such segment"))
            }
        })
        .await
}

async fn segment_list(
    State(state): State<ReadState>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            state.authorize(&headers, &workspace)?;
            let segments: Vec<Value> = state
                .0
                .segments
                .all(&workspace)?
                .iter()
                .map(|(name, filter, _)| json!({"name": name, "filter": filter}))
                .collect();
            Ok(Json(json!({ "segments": segments })))
        })
        .await
}

/// The identified profiles in a segment, by id, paged; with the total.
async fn segment_members(
    State(state): State<ReadState>,
    Path((workspace, name)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ReadError> {
    state
        .scan_of(&headers, &workspace, || {
            let json = state.stored_segment(&headers, &workspace, &name)?;
            let filter = parse(&json).map_err(ReadError::InvalidFilter)?;
            let limit = limit_param(param(&params, "limit"))?;
            let after = param(&params, "cursor").map(decode_cursor).transpose()?;
            let at = (state.0.clock)();
            let mut total = 0usize;
            let mut members = Vec::new();
            let mut more = false;
            for profile in state.0.store.profile_views(Some(&workspace)) {
                let profile = profile?;
                if !filter.matches(&profile, at) {
                    continue;
                }
                total += 1;
                if after.as_deref().is_some_and(|a| profile.id.as_str() <= a) {
                    continue;
                }
                if members.len() == limit {
                    more = true;
                    continue;
                }
                members.push(SegmentMember::from(profile));
            }
            let next = if more {
                members.last().map(|m| encode_cursor(&m.id))
            } else {
                None
            };
            Ok(Json(
                json!({"segment": name, "total": total, "members": members, "next_cursor": next}),
            ))
        })
        .await
}

/// One member in a segment's listing: what a caller needs to reach the
/// person, keys sorted as in every other answer.
#[derive(Debug, Serialize)]
struct SegmentMember {
    emails: Vec<String>,
    id: String,
    traits: BTreeMap<String, Value>,
    user_id: Option<String>,
}

impl From<ProfileView> for SegmentMember {
    fn from(profile: ProfileView) -> Self {
        SegmentMember {
            emails: profile.emails,
            id: profile.id,
            traits: profile.traits,
            user_id: profile.user_id,
        }
    }
}

/// The segments a profile is in now: what decides whether to show it a survey.
async fn profile_segments(
    State(state): State<ReadState>,
    Path((workspace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ReadError> {
    state
        .read_of(&headers, &workspace, || {
            let profile = state.profile_at(&headers, &workspace, &id)?;
            let at = (state.0.clock)();
            let names: Vec<String> = state
                .0
                .segments
                .all(&workspace)?
                .iter()
                .filter(|(_, _, filter)| filter.matches(&profile, at))
                .map(|(name, _, _)| name.clone())
                .collect();
            Ok(Json(json!({"profile": profile.id, "segments": names})))
        })
        .await
}

#[cfg(test)]
mod fairness_tests {
    use super::*;

    #[test]
    fn a_workspace_admits_its_running_and_queued_reads_then_refuses() {
        let gate = WorkspaceReads::new();
        let admitted: Vec<Admitted> = (0..WORKSPACE_CONCURRENT_READS + WORKSPACE_QUEUED_READS)
            .filter_map(|_| gate.enter().ok())
            .collect();
        assert_eq!(
            admitted.len(),
            WORKSPACE_CONCURRENT_READS + WORKSPACE_QUEUED_READS
        );
        let refused = gate.enter();
        assert!(matches!(refused, Err(ReadError::Busy)));
        assert_eq!(
            ReadError::Busy.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "answered 503"
        );
        drop(admitted);
        assert!(gate.enter().is_ok(), "places come back when reads end");
    }
}
