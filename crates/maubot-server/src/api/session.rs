//! Token authentication: where a token is read from, which paths need one, and the [`Admin`]
//! extractor. Everything under the API prefix needs a valid token except maubot's public paths,
//! so an unauthenticated request to an unknown path gets 401, as in maubot.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::json::{BodyLimit, PUBLIC_BODY_LIMIT};
pub use crate::auth::Admin;
use crate::state::AppState;

/// Paths (below the API prefix) that do their own authentication or need none.
fn is_public(path: &str) -> bool {
    path.starts_with("/auth/")
        || path.starts_with("/client/auth_external_sso/complete/")
        || matches!(path, "/features" | "/logs" | "/health")
}

/// The token of a request: `Authorization: Bearer <token>` (exactly that prefix, as maubot), else
/// the `access_token` query parameter (used by the web UI for `<img>` URLs).
fn token_of(parts: &Parts) -> Option<String> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim_end);
    if let Some(token) = bearer.filter(|t| !t.is_empty()) {
        return Some(token.to_owned());
    }
    let query = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == "access_token").then_some(v))
}

fn authenticate(parts: &Parts, state: &AppState) -> Result<Admin, ApiError> {
    let token = token_of(parts).ok_or(ApiError::TokenMissing)?;
    state.auth.verify(&token).map_err(|reason| {
        tracing::debug!(target: "maubot.server", %reason, "refused a token");
        ApiError::TokenInvalid
    })
}

/// Middleware on the whole API: refuses requests without a valid token to non-public paths, and
/// leaves the verified [`Admin`] in the request for handlers. Public paths take small JSON bodies
/// only: anyone can send them.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if is_public(parts.uri.path()) {
        parts.extensions.insert(BodyLimit(PUBLIC_BODY_LIMIT));
    } else {
        match authenticate(&parts, &state) {
            Ok(admin) => {
                parts.extensions.insert(admin);
            }
            Err(err) => return err.into_response(),
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The authenticated admin. On public paths (which the middleware lets through) it checks the
/// token itself.
impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Admin>() {
            Some(admin) => Ok(admin.clone()),
            None => authenticate(parts, state),
        }
    }
}

/// `Option<Admin>`: `None` for a missing or invalid token, for routes that answer everyone.
impl OptionalFromRequestParts<AppState> for Admin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Admin as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(auth: Option<&str>, uri: &str) -> Parts {
        let mut builder = axum::http::Request::builder().uri(uri);
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth);
        }
        builder.body(()).expect("valid request").into_parts().0
    }

    #[test]
    fn reads_tokens_where_maubot_does() {
        assert_eq!(
            token_of(&parts(Some("Bearer abc"), "/x")),
            Some("abc".into())
        );
        assert_eq!(
            token_of(&parts(Some("Bearer abc "), "/x")),
            Some("abc".into())
        );
        assert_eq!(
            token_of(&parts(None, "/x?access_token=q%3Ar")),
            Some("q:r".into())
        );
        // The header wins over the query; other schemes fall back to the query.
        assert_eq!(
            token_of(&parts(Some("Bearer h"), "/x?access_token=q")),
            Some("h".into())
        );
        assert_eq!(
            token_of(&parts(Some("bearer h"), "/x?access_token=q")),
            Some("q".into())
        );
        assert_eq!(token_of(&parts(Some("Token h"), "/x")), None);
        assert_eq!(token_of(&parts(Some("Bearer "), "/x")), None);
    }

    #[test]
    fn public_paths_are_maubots() {
        for path in [
            "/auth/login",
            "/auth/ping",
            "/auth/anything",
            "/features",
            "/logs",
            "/health",
        ] {
            assert!(is_public(path), "{path}");
        }
        for path in ["/version", "/plugins", "/features/", "/", ""] {
            assert!(!is_public(path), "{path}");
        }
    }
}
