//! What the route fuzz tests of the HTTP crates share (each crate's
//! `tests/fuzz_routes.rs` includes this file by path): a router served in
//! process, and the check that an answer is never a 5xx and that a 4xx is
//! JSON with a known `code` and a `message`.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

/// The framework's own answers, made JSON by the intake's error layer.
pub const FRAMEWORK_CODES: &[&str] = &[
    "bad_request",
    "unprocessable",
    "unsupported_media_type",
    "uri_too_long",
    "headers_too_large",
    "request_timeout",
];

/// An answer's status, content type and body.
pub type Answer = (StatusCode, Option<String>, Vec<u8>);

/// A router served in process, on a runtime of its own, with the
/// temporary directory of its data.
pub struct Served {
    router: Router,
    runtime: tokio::runtime::Runtime,
    body_limit: usize,
    _dir: tempfile::TempDir,
}

impl Served {
    /// `router`, whose answers are read up to `body_limit` bytes (a longer
    /// body is read as empty).
    pub fn new(router: Router, dir: tempfile::TempDir, body_limit: usize) -> Served {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Served {
            router,
            runtime,
            body_limit,
            _dir: dir,
        }
    }

    /// The answer's status, content type and body.
    pub fn send(&self, request: Request<Body>) -> Answer {
        self.runtime.block_on(async {
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = axum::body::to_bytes(response.into_body(), self.body_limit)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            (status, content_type, body)
        })
    }
}

/// Never a 5xx; a 4xx is JSON, which is given back (`None`: not a 4xx).
pub fn client_error_json(what: &str, (status, content_type, body): &Answer) -> Option<Value> {
    assert!(
        !status.is_server_error(),
        "{what}: {status} {}",
        String::from_utf8_lossy(body)
    );
    if !status.is_client_error() {
        return None;
    }
    assert!(
        content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json")),
        "{what}: {status} as {content_type:?}: {}",
        String::from_utf8_lossy(body)
    );
    let value: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: {status} body is not JSON ({e})"));
    Some(value)
}

/// `error`, one error of the answer `value`, has a code `known` and a
/// message.
pub fn assert_coded(
    what: &str,
    status: StatusCode,
    error: &Value,
    value: &Value,
    known: impl Fn(&str) -> bool,
) {
    let code = error["code"].as_str().unwrap_or_default();
    assert!(known(code), "{what}: {status} with code {code:?}: {value}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "{what}: {status} without a message: {value}"
    );
}
