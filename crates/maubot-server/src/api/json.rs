//! The JSON body extractor: bounded reads and maubot's errors for bodies that are not what a
//! handler expects. Handlers never read bodies by hand.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::state::AppState;

/// A request body parsed as `T`. Like maubot, it does not look at `Content-Type`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state.config.server.max_body_size).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| ApiError::BodyNotJson)?;
        if !value.is_object() {
            return Err(ApiError::BodyNotObject);
        }
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|err| ApiError::InvalidBody(format!("`{}`: {}", err.path(), err.inner())))
    }
}

/// Reads a whole body, refusing one that announces more than `limit` bytes without reading it,
/// and stopping one that sends more as soon as it passes the limit.
pub async fn read_body(req: Request, limit: u64) -> Result<Bytes, ApiError> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    // The one place a body is collected: `Limited` bounds it.
    #[allow(clippy::disallowed_methods)]
    let collected = Limited::new(req.into_body(), limit_usize).collect().await;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        Err(err) => Err(ApiError::internal(anyhow::anyhow!(
            "reading the request body: {err}"
        ))),
    }
}
