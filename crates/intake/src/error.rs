//! Every way a request can fail, with its stable code, and the one place
//! that maps them to HTTP statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use idfold_access::AuthError;
use idfold_events::{ReasonCode, Rejection};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("no write key: send it as the HTTP Basic user name, as a Bearer token, or as `writeKey` in the body")]
    MissingWriteKey,
    #[error("the write key is not valid")]
    InvalidWriteKey,
    #[error("the `Authorization` header is not valid {0} credentials")]
    BadAuthorization(&'static str),
    #[error("the request body is over the {} KiB limit for {what} ({limit} bytes, counted after gzip decoding)", limit / 1024)]
    BodyTooLarge { limit: usize, what: &'static str },
    #[error("`Content-Encoding` {0} is not supported; send the body plain or gzip-compressed")]
    UnsupportedEncoding(String),
    #[error("the gzip body does not decode: {0}")]
    BadGzip(String),
    #[error("the request body cannot be read: {0}")]
    BadBody(String),
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// The request as a whole does not hold events (a malformed batch, a
    /// single call that failed validation).
    #[error("{}", .0.message)]
    Rejected(Rejection),
    #[error("idfold is taking in as much as it can hold; retry after the delay")]
    Overloaded,
    #[error(
        "the log is unavailable; nothing of this request was acknowledged, retry after the delay"
    )]
    LogUnavailable,
    #[error("the log did not acknowledge the write in time; it may or may not hold it: retry (re-deliveries are dropped by message_id)")]
    AckTimeout,
    #[error("the log refused the write: {0}")]
    LogRefused(String),
    #[error("the server is shutting down; retry after the delay")]
    ShuttingDown,
}

impl IntakeError {
    /// The stable code clients match on; a rejection keeps the core's.
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::MissingWriteKey => "missing_write_key",
            IntakeError::InvalidWriteKey => "invalid_write_key",
            IntakeError::BadAuthorization(_) => "invalid_authorization",
            IntakeError::BodyTooLarge { .. } => ReasonCode::TooLarge.as_str(),
            IntakeError::UnsupportedEncoding(_) => "unsupported_encoding",
            IntakeError::BadGzip(_) => "invalid_gzip",
            IntakeError::BadBody(_) => "invalid_body",
            IntakeError::BodyTimeout(_) => "body_timeout",
            IntakeError::Rejected(r) => r.reason.as_str(),
            IntakeError::Overloaded => "overloaded",
            IntakeError::LogUnavailable => "log_unavailable",
            IntakeError::AckTimeout => "log_timeout",
            IntakeError::LogRefused(_) => "log_refused",
            IntakeError::ShuttingDown => "shutting_down",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            IntakeError::MissingWriteKey
            | IntakeError::InvalidWriteKey
            | IntakeError::BadAuthorization(_) => Some("Authorization"),
            IntakeError::UnsupportedEncoding(_) => Some("Content-Encoding"),
            IntakeError::Rejected(r) => r.field.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            IntakeError::MissingWriteKey
            | IntakeError::InvalidWriteKey
            | IntakeError::BadAuthorization(_) => StatusCode::UNAUTHORIZED,
            IntakeError::Rejected(r) => rejection_status(r.reason),
            IntakeError::BodyTooLarge { .. }
            | IntakeError::BadGzip(_)
            | IntakeError::BadBody(_) => StatusCode::BAD_REQUEST,
            IntakeError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IntakeError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            IntakeError::Overloaded
            | IntakeError::LogUnavailable
            | IntakeError::AckTimeout
            | IntakeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            IntakeError::LogRefused(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying; only for retryable errors.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            IntakeError::Overloaded | IntakeError::AckTimeout => Some(1),
            IntakeError::LogUnavailable | IntakeError::ShuttingDown => Some(5),
            _ => None,
        }
    }

    /// The JSON every error answer carries.
    pub fn body(&self) -> serde_json::Value {
        error_json(self.code(), self.field(), &self.to_string())
    }
}

/// The shape of every error answer of the server, the framework's
/// included. `code` and `message` also at the top, where Segment's
/// libraries read them when they report a failed request.
pub fn error_json(code: &str, field: Option<&str>, message: &str) -> serde_json::Value {
    serde_json::json!({
        "success": false,
        "code": code,
        "message": message,
        "error": {"code": code, "field": field, "message": message},
    })
}

/// Rejections are the client's to fix: 400, or 403 for a workspace the
/// write key does not cover.
pub(crate) fn rejection_status(reason: ReasonCode) -> StatusCode {
    match reason {
        ReasonCode::WrongWorkspace => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<AuthError> for IntakeError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => IntakeError::MissingWriteKey,
            AuthError::Invalid => IntakeError::InvalidWriteKey,
            AuthError::Malformed(scheme) => IntakeError::BadAuthorization(scheme),
        }
    }
}

impl IntoResponse for IntakeError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_side_conditions_are_retryable_and_5xx() {
        let cases = [
            IntakeError::MissingWriteKey,
            IntakeError::InvalidWriteKey,
            IntakeError::BadAuthorization("Basic"),
            IntakeError::BodyTooLarge {
                limit: 1024,
                what: "a batch",
            },
            IntakeError::UnsupportedEncoding("br".into()),
            IntakeError::BadGzip("x".into()),
            IntakeError::BadBody("x".into()),
            IntakeError::BodyTimeout(30),
            IntakeError::Rejected(Rejection::missing("userId")),
            IntakeError::Overloaded,
            IntakeError::LogUnavailable,
            IntakeError::AckTimeout,
            IntakeError::LogRefused("x".into()),
            IntakeError::ShuttingDown,
        ];
        for error in cases {
            let status = error.status();
            assert_eq!(
                error.retry_after_secs().is_some(),
                status == StatusCode::SERVICE_UNAVAILABLE,
                "{error:?}"
            );
            if status.is_client_error() {
                assert!(!error.code().is_empty());
            }
        }
        let too_large = IntakeError::BodyTooLarge {
            limit: 512_000,
            what: "a batch request",
        };
        assert!(too_large.to_string().contains("500 KiB"), "{too_large}");
    }
}
