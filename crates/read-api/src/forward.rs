//! Reads that find their owner. On Kafka with several instances, a
//! workspace's state lives with the instance holding its partition: a read
//! that lands elsewhere is forwarded there, one hop at most; one whose
//! partition is being replayed here is answered 503, never from half a
//! state.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use idfold_cluster::{route, Ownership, Registry, Route};
use serde_json::json;

use crate::routes::ReadState;

/// Marks a forwarded request: it is answered where it lands.
const FORWARDED: &str = "x-idfold-forwarded";
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// This instance among the others.
#[derive(Clone)]
pub struct ClusterView {
    pub instance: String,
    pub ownership: Arc<Ownership>,
    pub registry: Arc<Registry>,
    client: Client<HttpConnector, Body>,
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl ClusterView {
    pub fn new(instance: &str, ownership: Arc<Ownership>, registry: Arc<Registry>) -> ClusterView {
        ClusterView {
            instance: instance.to_owned(),
            ownership,
            registry,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

fn unavailable(why: String, partition: u32) -> Response {
    let body = json!({"error": {"code": "partition_unavailable", "field": null, "message": why},
                      "partition": partition});
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// The workspace a `/v1/workspaces/{workspace}/...` path names, decoded
/// as the handlers decode it (`%77s-1` is `ws-1`).
fn workspace_of(uri: &Uri) -> Option<String> {
    let segment = uri
        .path()
        .strip_prefix("/v1/workspaces/")?
        .split('/')
        .next()
        .filter(|w| !w.is_empty())?;
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|w| w.into_owned())
}

/// Middleware for the workspace routes.
pub async fn route_to_owner(
    State(state): State<ReadState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(cluster) = state.cluster() else {
        return next.run(request).await;
    };
    let Some(workspace) = workspace_of(request.uri()) else {
        return next.run(request).await;
    };
    let forwarded = request.headers().contains_key(FORWARDED);
    let now_ms = u64::try_from(state.now() / 1_000_000).unwrap_or(0);
    match route(
        &workspace,
        &cluster.instance,
        &cluster.ownership,
        &cluster.registry,
        now_ms,
    ) {
        Route::Here => next.run(request).await,
        Route::Rebuilding { partition } => unavailable(
            format!("partition {partition}, which holds this workspace, is being rebuilt here; try again shortly"),
            partition,
        ),
        Route::Unowned { partition } => unavailable(
            format!("no instance holds partition {partition}, which holds this workspace, yet (a rebalance is under way); try again shortly"),
            partition,
        ),
        Route::Forward { partition, .. } if forwarded => unavailable(
            format!("partition {partition} moved while this request was being forwarded; try again"),
            partition,
        ),
        Route::Forward { url, partition } => forward(cluster, &url, partition, request).await,
    }
}

async fn forward(cluster: &ClusterView, base: &str, partition: u32, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Ok(uri) = format!("{}{path}", base.trim_end_matches('/')).parse::<Uri>() else {
        return unavailable(
            format!("the holder of partition {partition} announced a bad address"),
            partition,
        );
    };
    parts.uri = uri;
    parts.headers.remove(header::HOST);
    // The dashboard's cookie holds a read token; no workspace route needs it.
    parts.headers.remove(header::COOKIE);
    parts
        .headers
        .insert(FORWARDED, HeaderValue::from_static("1"));
    let outgoing = Request::from_parts(parts, body);
    match tokio::time::timeout(FORWARD_TIMEOUT, cluster.client.request(outgoing)).await {
        Ok(Ok(response)) => response.map(Body::new),
        Ok(Err(error)) => {
            tracing::warn!(%error, partition, "forwarding a read to the partition's holder failed");
            unavailable(
                format!("the holder of partition {partition} did not answer; try again"),
                partition,
            )
        }
        Err(_) => unavailable(
            format!("the holder of partition {partition} did not answer in time; try again"),
            partition,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_read_off_the_path() {
        let uri: Uri = "/v1/workspaces/acme/mau?month=2026-01"
            .parse()
            .unwrap_or_default();
        assert_eq!(workspace_of(&uri).as_deref(), Some("acme"));
        let uri: Uri = "/v1/workspaces/%77s-1/mau".parse().unwrap_or_default();
        assert_eq!(workspace_of(&uri).as_deref(), Some("ws-1"));
        let uri: Uri = "/v1/workspaces//mau".parse().unwrap_or_default();
        assert_eq!(workspace_of(&uri), None);
        let uri: Uri = "/healthz".parse().unwrap_or_default();
        assert_eq!(workspace_of(&uri), None);
    }
}
