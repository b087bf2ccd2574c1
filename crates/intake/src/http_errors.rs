//! Every error answer of the server in JSON with `code` and `message`:
//! one layer over the whole app turns the framework's plain-text or empty
//! answers (a path or query that does not decode, a form that does not
//! deserialize, an unknown route) into the shape of the others, and
//! refuses URIs and header sections over their limits before any handler.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::error_json;

/// Longest request URI taken (414 past it).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest header section taken, names and values (431 past it).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most of a framework error's text quoted in its JSON message.
const MAX_QUOTED: usize = 1024;

/// The middleware: limits first, then JSON for every error answer that is
/// neither JSON already nor a page (the dashboard's HTML).
pub async fn json_errors(request: Request, next: Next) -> Response {
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return answer(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request URI is over {MAX_URI_BYTES} bytes"),
        );
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return answer(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!("the request's headers are over {MAX_HEADER_BYTES} bytes"),
        );
    }
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (code, default_message) = status_code_words(status);
    let message = if text.is_empty() {
        default_message.to_owned()
    } else {
        let mut quoted: String = text.chars().take(MAX_QUOTED).collect();
        if quoted.len() < text.len() {
            quoted.push('…');
        }
        quoted
    };
    let body = error_json(code, None, &message).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

fn answer(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(error_json(code, None, message))).into_response()
}

/// A stable code and a default message for a status the framework chose.
fn status_code_words(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("bad_request", "the request is not valid"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "credentials are missing or wrong"),
        StatusCode::FORBIDDEN => ("forbidden", "not allowed"),
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint; see the README for the API"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this endpoint takes another method")
        }
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long to arrive"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the request body is too large"),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request URI is too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the request body's content type is not one this endpoint takes",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "unprocessable",
            "the request body does not have the fields this endpoint takes",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request's headers are too large")
        }
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "retry after a while"),
        s if s.is_server_error() => ("internal", "the server failed to answer"),
        _ => ("client_error", "the request cannot be answered"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn call(app: axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .unwrap_or_default();
        let Ok(response) = app.oneshot(request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[test]
    fn framework_rejections_become_json() {
        let app = axum::Router::new()
            .route(
                "/p/{id}",
                get(|axum::extract::Path(id): axum::extract::Path<String>| async move { id }),
            )
            .route(
                "/ok",
                get(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(serde_json::json!({"code": "mine", "message": "m"})),
                    )
                }),
            )
            .layer(axum::middleware::from_fn(json_errors));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(runtime) = runtime else {
            panic!("no runtime")
        };
        runtime.block_on(async {
            let (status, body) = call(app.clone(), "/p/user:%FF%FE").await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(body["code"], "bad_request", "{body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            let (status, body) = call(app.clone(), "/nowhere").await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert_eq!(body["code"], "not_found");
            let (status, body) =
                call(app.clone(), &format!("/p/{}", "a".repeat(MAX_URI_BYTES))).await;
            assert_eq!(status, StatusCode::URI_TOO_LONG);
            assert_eq!(body["code"], "uri_too_long");
            // An answer in JSON already is left alone.
            let (_, body) = call(app, "/ok").await;
            assert_eq!(body["code"], "mine");
        });
    }
}
