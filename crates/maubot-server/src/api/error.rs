//! The management API's one error type, and how each error is answered: maubot's status codes,
//! errcodes and messages (behaviour reference §1.2).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Everything a management API handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all.
    #[error("Request body is not JSON")]
    BodyNotJson,
    /// The body is JSON, but not an object.
    #[error("Request body is not a JSON object")]
    BodyNotObject,
    /// A field of the body has the wrong type. (maubot answers most of these with a 500.)
    #[error("Invalid request body: {0}")]
    InvalidBody(String),
    /// The body is larger than `server.max_body_size`.
    #[error("Request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// Wrong secret, username or password.
    #[error("Invalid username or password")]
    InvalidAuth,
    /// The request carries no token.
    #[error("Authorization token missing")]
    TokenMissing,
    /// The token is forged, from another secret, expired, or for a user who is no admin.
    #[error("Invalid authorization token")]
    TokenInvalid,
    /// No such route.
    #[error("Resource not found")]
    NotFound,
    /// The route exists, but not for this method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// The database does not answer.
    #[error("The database is unavailable")]
    DatabaseUnavailable,
    /// A bug or an unexpected failure. Logged in full; the caller sees only the errcode.
    #[error("Internal server error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// Wraps an unexpected error.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    fn status_and_errcode(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BodyNotJson | Self::BodyNotObject => (StatusCode::BAD_REQUEST, "body_not_json"),
            Self::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_request_body"),
            // maubot's errcode for aiohttp's own 413; clients only show the message.
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "unhandled_http_413"),
            Self::InvalidAuth => (StatusCode::UNAUTHORIZED, "invalid_auth"),
            Self::TokenMissing => (StatusCode::UNAUTHORIZED, "auth_token_missing"),
            Self::TokenInvalid => (StatusCode::UNAUTHORIZED, "auth_token_invalid"),
            Self::NotFound => (StatusCode::NOT_FOUND, "resource_not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::DatabaseUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, errcode) = self.status_and_errcode();
        if let Self::Internal(err) = &self {
            tracing::error!(target: "maubot.server", error = format!("{err:#}"), "Error in handler");
        }
        let body = serde_json::json!({ "error": self.to_string(), "errcode": errcode });
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
