//! Every way a read can fail, with its stable code, mapped to HTTP statuses
//! in one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use idfold_access::AuthError;
use idfold_projector::ProjectorError;
use idfold_segments::FilterError;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no read token: send `Authorization: Bearer TOKEN`")]
    MissingToken,
    #[error("the read token is not valid")]
    InvalidToken,
    #[error("the `Authorization` header is not valid Bearer credentials")]
    BadAuthorization,
    /// Said the same whether the workspace exists or not.
    #[error("this read token is not for workspace {0}")]
    OtherWorkspace(String),
    #[error("`{field}` {message}")]
    BadParameter {
        field: &'static str,
        message: String,
    },
    /// An identifier that normalisation refuses (blank-looking, a
    /// placeholder): the same `invalid_field` as at ingest.
    #[error("`{field}` {message}")]
    InvalidIdentifier {
        field: &'static str,
        message: String,
    },
    #[error("no {0} in this workspace")]
    NotFound(&'static str),
    #[error("the store could not be read; try again")]
    Store(#[from] ProjectorError),
    /// The erasure request could not be written; nothing was erased.
    #[error("the log did not take the erasure request ({0}); nothing was erased, try again")]
    LogUnavailable(String),
    #[error("the answer could not be written: {0}")]
    Output(String),
    #[error("the segment filter is not valid {0}")]
    InvalidFilter(FilterError),
    /// A dashboard form posted from another site (login CSRF).
    #[error("refused: {0}; sign in from the dashboard's own page")]
    CrossOrigin(&'static str),
    /// The workspace has as many reads running and waiting as it may.
    #[error("this workspace has as many reads under way as it may; retry after the delay")]
    Busy,
}

impl From<AuthError> for ReadError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => ReadError::MissingToken,
            AuthError::Invalid => ReadError::InvalidToken,
            AuthError::Malformed(_) => ReadError::BadAuthorization,
        }
    }
}

impl ReadError {
    pub fn code(&self) -> &'static str {
        match self {
            ReadError::MissingToken => "missing_token",
            ReadError::InvalidToken => "invalid_token",
            ReadError::BadAuthorization => "invalid_authorization",
            ReadError::OtherWorkspace(_) => "forbidden",
            ReadError::BadParameter { .. } => "invalid_parameter",
            ReadError::InvalidIdentifier { .. } => "invalid_field",
            ReadError::NotFound(_) => "not_found",
            ReadError::Store(_) => "store_unavailable",
            ReadError::LogUnavailable(_) => "log_unavailable",
            ReadError::Output(_) => "internal",
            ReadError::InvalidFilter(_) => "invalid_filter",
            ReadError::CrossOrigin(_) => "cross_origin",
            ReadError::Busy => "overloaded",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            ReadError::MissingToken | ReadError::InvalidToken | ReadError::BadAuthorization => {
                Some("Authorization")
            }
            ReadError::BadParameter { field, .. } | ReadError::InvalidIdentifier { field, .. } => {
                Some(field)
            }
            ReadError::InvalidFilter(e) => Some(&e.pointer),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ReadError::MissingToken | ReadError::InvalidToken | ReadError::BadAuthorization => {
                StatusCode::UNAUTHORIZED
            }
            ReadError::OtherWorkspace(_) | ReadError::CrossOrigin(_) => StatusCode::FORBIDDEN,
            ReadError::BadParameter { .. }
            | ReadError::InvalidIdentifier { .. }
            | ReadError::InvalidFilter(_) => StatusCode::BAD_REQUEST,
            ReadError::NotFound(_) => StatusCode::NOT_FOUND,
            ReadError::Store(_) | ReadError::LogUnavailable(_) | ReadError::Busy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ReadError::Output(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        if let ReadError::Store(error) = &self {
            tracing::warn!(%error, "a read of the store failed");
        }
        let message = self.to_string();
        // `code` and `message` at the top too, as in every error answer.
        let body = serde_json::json!({
            "code": self.code(),
            "message": message,
            "error": {"code": self.code(), "field": self.field(), "message": message},
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if matches!(
            self,
            ReadError::Store(_) | ReadError::LogUnavailable(_) | ReadError::Busy
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
