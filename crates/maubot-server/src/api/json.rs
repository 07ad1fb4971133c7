//! The JSON body extractor: bounded reads and maubot's errors for bodies that are not what a
//! handler expects. Handlers never read bodies by hand.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::error::Category;

use super::error::ApiError;
use crate::state::AppState;

/// The most a body to a route that needs no token may hold (a login: a name and a password, or
/// the secret).
pub const PUBLIC_BODY_LIMIT: u64 = 16 * 1024;

/// A request body parsed as `T`. Like maubot, it does not look at `Content-Type`. Bodies are
/// bounded by `server.max_json_body_size`, or by a [`BodyLimit`] a router sets.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// A smaller bound than `server.max_json_body_size` for the JSON bodies of a router's routes, as
/// a request extension (the routes that answer without a token use it).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub u64);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let mut limit = state.config.server.max_json_body_size;
        if let Some(BodyLimit(smaller)) = req.extensions().get::<BodyLimit>() {
            limit = limit.min(*smaller);
        }
        let bytes = read_body(req, limit).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a body straight into `T`, never into a `serde_json::Value` first: a `Value` takes many
/// times the body's size in memory. serde_json's recursion limit bounds nesting.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // maubot tells a body that is JSON but no object from one that is not JSON at all.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => ApiError::BodyNotObject,
            Err(_) => ApiError::BodyNotJson,
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        match err.inner().classify() {
            Category::Data => {
                // The position is noise in a one-line body; the path says where.
                let message = err.inner().to_string();
                let message = message
                    .rfind(" at line ")
                    .map_or(message.as_str(), |at| &message[..at]);
                ApiError::InvalidBody(format!("`{}`: {message}", err.path()))
            }
            Category::Io | Category::Syntax | Category::Eof => ApiError::BodyNotJson,
        }
    })?;
    deserializer.end().map_err(|_| ApiError::BodyNotJson)?;
    Ok(value)
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
        // The client stalled (`server.request_body_timeout`) or went away: its problem, not an
        // error of the server's.
        Err(err) if caused_by::<tower_http::timeout::TimeoutError>(&*err) => {
            Err(ApiError::BodyTimeout)
        }
        Err(_) => Err(ApiError::BodyIncomplete),
    }
}

fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<E>() {
            return true;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Login {
        #[allow(dead_code)]
        user: Option<String>,
    }

    #[test]
    fn tells_not_json_from_not_an_object_from_a_wrong_field() {
        let parse = |body: &str| parse::<Login>(body.as_bytes()).map(|_| ());
        assert!(matches!(parse("[1, 2]"), Err(ApiError::BodyNotObject)));
        assert!(matches!(parse(" 7 "), Err(ApiError::BodyNotObject)));
        assert!(matches!(parse("nope"), Err(ApiError::BodyNotJson)));
        assert!(matches!(parse(""), Err(ApiError::BodyNotJson)));
        assert!(matches!(
            parse("{\"user\": \"a\""),
            Err(ApiError::BodyNotJson)
        ));
        assert!(matches!(parse("{} {}"), Err(ApiError::BodyNotJson)));
        match parse("{\"user\": 5}") {
            Err(ApiError::InvalidBody(message)) => {
                assert_eq!(
                    message,
                    "`user`: invalid type: integer `5`, expected a string"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("{\"user\": null, \"other\": [[[]]]}").is_ok());
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        // Unknown fields are skipped without recursion; a deep value where a field is expected
        // fails at its first level.
        let deep = |field: &str| {
            format!(
                "{{\"{field}\": {}{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
        };
        assert!(parse::<Login>(deep("other").as_bytes()).is_ok());
        assert!(matches!(
            parse::<Login>(deep("user").as_bytes()),
            Err(ApiError::InvalidBody(_))
        ));
        assert!(matches!(
            parse::<serde_json::Value>(deep("user").as_bytes()),
            Err(ApiError::BodyNotJson)
        ));
    }
}
