//! Every HTTP request counted by route, method and status, and timed by
//! route: a middleware for the whole server (ingestion, reads, dashboard).
//! The route is the router's template (`/v1/workspaces/{workspace}/mau`),
//! never the path itself, so workspace and profile ids never become labels.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use idfold_telemetry::names;

/// Records the request's count and duration once it is answered.
pub async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = http_method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        names::HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "status" => status
    )
    .increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Standard methods by name; anything else is `other` (a client may send
/// any token as a method).
fn http_method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
    ]
    .into_iter()
    .find(|(known, _)| known == method)
    .map_or("other", |(_, label)| label)
}
