//! Token authentication: where a token is read from, which paths need one, and the [`Admin`]
//! extractor. Everything under the API prefix needs a valid token except maubot's public paths,
//! so an unauthenticated request to an unknown path gets 401, as in maubot.
//!
//! Besides maubot's `Authorization` header and `access_token` query parameter, the web UI's
//! session cookie carries a token (HttpOnly, so the UI's scripts never see it). A browser sends
//! cookies with requests that other sites make it send, so a cookie counts only for requests from
//! this server's own origin when they can change something (see [`same_origin`]).

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, UPGRADE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maubot_types::config::ServerConfig;

use super::error::ApiError;
use super::json::{BodyLimit, PUBLIC_BODY_LIMIT};
pub use crate::auth::Admin;
use crate::state::AppState;

/// Paths (below the API prefix) that do their own authentication or need none.
fn is_public(path: &str) -> bool {
    path.starts_with("/auth/")
        || path.starts_with("/client/auth_external_sso/complete/")
        || matches!(path, "/features" | "/logs" | "/health" | "/openapi.json")
}

/// The web UI's session cookie: a management token.
pub const SESSION_COOKIE: &str = "maubot_session";

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    Query,
    Cookie,
}

/// The token of a request: `Authorization: Bearer <token>` (exactly that prefix, as maubot), else
/// the `access_token` query parameter (used by maubot's web UI for `<img>` URLs), else the web
/// UI's session cookie.
fn token_of(parts: &Parts) -> Option<(String, Source)> {
    if let Some(token) = header_or_query_token(parts) {
        return Some(token);
    }
    session_cookie(&parts.headers).map(|token| (token, Source::Cookie))
}

fn header_or_query_token(parts: &Parts) -> Option<(String, Source)> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim_end);
    if let Some(token) = bearer.filter(|t| !t.is_empty()) {
        return Some((token.to_owned(), Source::Header));
    }
    let query = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == "access_token").then_some((v, Source::Query)))
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| {
            (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

/// The `Cookie` header without the session cookie, or `None` when nothing else is left: for
/// requests passed on to others (plugin web apps, the homeserver), who must never see it.
pub fn cookies_without_session(headers: &HeaderMap) -> Option<String> {
    let rest: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty() && pair.split_once('=').map_or(*pair, |(n, _)| n) != SESSION_COOKIE
        })
        .collect();
    (!rest.is_empty()).then(|| rest.join("; "))
}

/// Whether a request comes from a page of this server (for requests that carry the session
/// cookie and can change something). The browser's `Origin` header must name the host the
/// request was sent to, or `server.public_url`'s origin; without `Origin`, `Sec-Fetch-Site` must
/// say `same-origin`. Anything else (another site, another port, a sandboxed page's `null`) is
/// refused.
pub fn same_origin(headers: &HeaderMap, server: &ServerConfig) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = header(ORIGIN.as_str()) else {
        return header("sec-fetch-site") == Some("same-origin");
    };
    let public = server.public_url.trim_end_matches('/');
    let public_origin = public
        .find("://")
        .map(|scheme_end| {
            let after = &public[scheme_end + 3..];
            &public[..scheme_end + 3 + after.find('/').unwrap_or(after.len())]
        })
        .unwrap_or(public);
    if origin.eq_ignore_ascii_case(public_origin) {
        return true;
    }
    let host_of_origin = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((host_of_origin, header(HOST.as_str())), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// Requests that need [`same_origin`] when the session cookie authenticates them: anything but
/// a plain read, and websocket upgrades (which browsers let any page open).
fn needs_same_origin(parts: &Parts) -> bool {
    !matches!(parts.method, Method::GET | Method::HEAD) || parts.headers.contains_key(UPGRADE)
}

fn authenticate(parts: &Parts, state: &AppState) -> Result<Admin, ApiError> {
    let (token, source) = token_of(parts).ok_or(ApiError::TokenMissing)?;
    if source == Source::Cookie
        && needs_same_origin(parts)
        && !same_origin(&parts.headers, &state.config.server)
    {
        tracing::warn!(target: "maubot.security", method = %parts.method, path = %parts.uri.path(), "refused a cross-origin request with the web UI's session");
        return Err(ApiError::CrossOrigin);
    }
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

    fn token(parts: &Parts) -> Option<String> {
        token_of(parts).map(|(token, _)| token)
    }

    #[test]
    fn reads_tokens_where_maubot_does() {
        assert_eq!(token(&parts(Some("Bearer abc"), "/x")), Some("abc".into()));
        assert_eq!(token(&parts(Some("Bearer abc "), "/x")), Some("abc".into()));
        assert_eq!(
            token(&parts(None, "/x?access_token=q%3Ar")),
            Some("q:r".into())
        );
        // The header wins over the query; other schemes fall back to the query.
        assert_eq!(
            token(&parts(Some("Bearer h"), "/x?access_token=q")),
            Some("h".into())
        );
        assert_eq!(
            token(&parts(Some("bearer h"), "/x?access_token=q")),
            Some("q".into())
        );
        assert_eq!(token(&parts(Some("Token h"), "/x")), None);
        assert_eq!(token(&parts(Some("Bearer "), "/x")), None);
    }

    #[test]
    fn reads_the_session_cookie_last_and_hides_it_from_others() {
        let mut with_cookie = parts(None, "/x");
        with_cookie.headers.insert(
            COOKIE,
            "theme=dark; maubot_session=t:1; other=2"
                .parse()
                .expect("header"),
        );
        assert_eq!(token_of(&with_cookie), Some(("t:1".into(), Source::Cookie)));
        assert_eq!(
            cookies_without_session(&with_cookie.headers),
            Some("theme=dark; other=2".into())
        );
        with_cookie
            .headers
            .insert(AUTHORIZATION, "Bearer h".parse().expect("header"));
        assert_eq!(token_of(&with_cookie), Some(("h".into(), Source::Header)));
        let mut only_session = parts(None, "/x");
        only_session
            .headers
            .insert(COOKIE, "maubot_session=t".parse().expect("header"));
        assert_eq!(cookies_without_session(&only_session.headers), None);
    }

    #[test]
    fn same_origin_means_the_host_asked_or_the_public_url() {
        let server = ServerConfig {
            public_url: "https://bots.example.com/maubot".into(),
            ..ServerConfig::default()
        };
        let headers = |pairs: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    value.parse().expect("value"),
                );
            }
            map
        };
        let host = ("host", "127.0.0.1:29316");
        assert!(same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:29316")]),
            &server
        ));
        assert!(same_origin(
            &headers(&[host, ("origin", "https://bots.example.com")]),
            &server
        ));
        assert!(!same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:8080")]),
            &server
        ));
        assert!(!same_origin(
            &headers(&[host, ("origin", "https://evil.example.com")]),
            &server
        ));
        assert!(!same_origin(&headers(&[host, ("origin", "null")]), &server));
        assert!(same_origin(
            &headers(&[host, ("sec-fetch-site", "same-origin")]),
            &server
        ));
        assert!(!same_origin(
            &headers(&[host, ("sec-fetch-site", "same-site")]),
            &server
        ));
        assert!(!same_origin(&headers(&[host]), &server));
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
