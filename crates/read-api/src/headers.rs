//! Headers every response of the server carries, applied once where the
//! app is assembled (`.layer(axum::middleware::map_response(security_headers))`):
//! errors and fallbacks of every router included.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::Response;

/// `nosniff` always: a browser never reads JSON, CSV or text as HTML or
/// script. Unless the handler chose its own: `no-store` (every answer is
/// per workspace or live, none is for a cache) and no framing (a page
/// framed by another site could be clicked through without the user
/// knowing). The dashboard sends a fuller policy of its own.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    for (name, value) in [
        (CACHE_CONTROL, "no-store"),
        (X_FRAME_OPTIONS, "DENY"),
        (
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn every_response_gets_nosniff_and_keeps_what_its_handler_set() {
        let plain =
            security_headers((axum::http::StatusCode::NOT_FOUND, "no such route").into_response())
                .await;
        assert_eq!(plain.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(plain.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(plain.headers()[X_FRAME_OPTIONS], "DENY");
        assert!(plain.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .is_ok_and(|csp| csp.contains("frame-ancestors 'none'")));

        let own = security_headers(
            (
                [
                    (CACHE_CONTROL, "max-age=60"),
                    (CONTENT_SECURITY_POLICY, "default-src 'self'"),
                    (X_CONTENT_TYPE_OPTIONS, "sniff-away"),
                ],
                "cacheable",
            )
                .into_response(),
        )
        .await;
        assert_eq!(own.headers()[CACHE_CONTROL], "max-age=60");
        assert_eq!(own.headers()[CONTENT_SECURITY_POLICY], "default-src 'self'");
        assert_eq!(own.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(
            own.headers().get_all(X_CONTENT_TYPE_OPTIONS).iter().count(),
            1
        );
    }
}
