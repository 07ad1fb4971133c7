//! The management API's one error type, and how each error is answered: maubot's status codes,
//! errcodes and messages (docs/compatibility.md, "API errors").

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
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
    /// The body is larger than the route's limit (`server.max_body_size`,
    /// `server.max_json_body_size` or 16 KiB on routes that need no token).
    #[error("Request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// The body stalled for longer than `server.request_body_timeout`.
    #[error("The request body did not arrive in time")]
    BodyTimeout,
    /// The connection broke off in the middle of the body.
    #[error("The request body could not be read")]
    BodyIncomplete,
    /// `GET /logs` without a websocket upgrade.
    #[error("This is a websocket: connect with a websocket client")]
    WebsocketRequired,
    /// Too many password logins are waiting for their check.
    #[error("Too many login attempts at once, try again later")]
    TooManyLogins,
    /// Wrong secret, username or password.
    #[error("Invalid username or password")]
    InvalidAuth,
    /// The request carries no token.
    #[error("Authorization token missing")]
    TokenMissing,
    /// The token is forged, from another secret, expired, or for a user who is no admin.
    #[error("Invalid authorization token")]
    TokenInvalid,
    /// A request with the web UI's session cookie, from a page of another origin (maubot-rs
    /// addition: maubot has no cookies).
    #[error("Requests from other origins cannot use the web UI's session")]
    CrossOrigin,
    /// No such route.
    #[error("Resource not found")]
    NotFound,
    /// The route exists, but not for this method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// No client with that ID.
    #[error("Client not found")]
    ClientNotFound,
    /// `POST /client/new` for a user that already has a client.
    #[error("There is already a client with the user ID of that token")]
    UserExists,
    /// A client with instances cannot be deleted.
    #[error("Plugin instances with this client as their primary user still exist")]
    ClientInUse,
    /// The homeserver says the access token is not valid.
    #[error("Invalid access token")]
    BadClientAccessToken,
    /// The homeserver refused the access details for another reason.
    #[error("Invalid homeserver or access token")]
    BadClientAccessDetails,
    /// The homeserver could not be reached.
    #[error("Could not connect to homeserver")]
    BadClientConnectionDetails,
    /// The token belongs to another user than the client ID says.
    #[error(
        "The Matrix user ID of the client and the user ID of the access token don't match. Access token is for user {0}"
    )]
    MxidMismatch(String),
    /// The token belongs to another device than `device_id` says. (maubot's errcode for this is
    /// `mxid_mismatch` too.)
    #[error(
        "The Matrix device ID of the client and the device ID of the access token don't match. Access token is for device {0}"
    )]
    DeviceIdMismatch(String),
    /// `generate_recovery_key` for an account with cross-signing keys.
    #[error("Client already has cross-signing keys")]
    ClientHasKeys,
    /// Cross-signing or recovery failed.
    #[error("Internal crypto error: {0}")]
    InternalCrypto(String),
    /// `homeservers` has no entry of that name.
    #[error("Registration target server not found")]
    ServerNotFound,
    /// The `homeservers` entry has no registration secret.
    #[error("Config does not have a registration secret for that server")]
    RegistrationSecretNotFound,
    /// Register or login without username or password.
    #[error("Username or password missing")]
    UsernameOrPasswordMissing,
    /// Single sign-on login on a homeserver without `m.login.sso`.
    #[error("That server does not seem to support single sign-on")]
    SsoNotSupported,
    /// A single sign-on session that does not exist (any more). maubot answers a bare 500.
    #[error("The single sign-on session does not exist or has expired")]
    SsoSessionNotFound,
    /// `?sso=true` on register.
    #[error("The register operation is only for registering with a password")]
    RegistrationNoSso,
    /// The homeserver cannot do what was asked: not Synapse, or no password login. (maubot
    /// answers these with a bare 500.)
    #[error("{message}")]
    HomeserverUnsupported {
        errcode: &'static str,
        message: &'static str,
    },
    /// The homeserver refused registration or login; its errcode and message are passed on.
    #[error("{error}")]
    Homeserver {
        status: StatusCode,
        errcode: String,
        error: String,
        http_status: Option<u16>,
    },
    #[error("Plugin not found")]
    PluginNotFound,
    #[error("Plugin instance not found")]
    InstanceNotFound,
    #[error("Plugin instances of this type still exist")]
    PluginInUse,
    #[error("A plugin with the same ID as the uploaded plugin already exists")]
    PluginExists,
    #[error("The ID in the path does not match the ID of the uploaded plugin")]
    PidMismatch,
    /// The archive is not a working plugin; `detail` goes out as `stacktrace`.
    #[error("{message}")]
    PluginInvalid {
        message: String,
        detail: Option<String>,
    },
    /// New code failed to start (on replace, the old code runs again).
    #[error("{message}")]
    PluginReloadFail {
        message: String,
        detail: Option<String>,
    },
    #[error("{0}")]
    UnsupportedPluginDatabase(String),
    #[error("Plugin type is required when creating plugin instances")]
    PluginTypeRequired,
    #[error("Primary user is required when creating plugin instances")]
    PrimaryUserRequired,
    #[error("Client for given primary user not found")]
    PrimaryUserNotFound,
    #[error("Given plugin type not found")]
    PluginTypeNotFound,
    /// The instance's database was not opened (maubot answers this with HTTP 200).
    #[error("Given plugin does not have a database")]
    PluginHasNoDatabase,
    /// maubot answers this with HTTP 200.
    #[error("Given table not found in plugin database")]
    TableNotFound,
    #[error("Query missing")]
    QueryMissing,
    /// The database refused a query; the body carries `ok: false` and the query, as maubot's.
    #[error("{error}")]
    SqlError {
        /// `sql_error`, or SQLAlchemy's `sql_integrity_error` / `sql_operational_error`.
        errcode: &'static str,
        query: String,
        error: String,
    },
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

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status_and_errcode().0
    }

    /// What a person is shown: the API's `error` message (an internal error is logged here, as
    /// [`IntoResponse`] logs it, and shown only as "Internal server error").
    pub fn message(&self) -> String {
        if let Self::Internal(err) = self {
            tracing::error!(target: "maubot.server", error = format!("{err:#}"), "Error in handler");
        }
        self.to_string()
    }

    fn status_and_errcode(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BodyNotJson | Self::BodyNotObject => (StatusCode::BAD_REQUEST, "body_not_json"),
            Self::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_request_body"),
            // maubot's errcode for aiohttp's own 413; clients only show the message.
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "unhandled_http_413"),
            Self::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::BodyIncomplete => (StatusCode::BAD_REQUEST, "body_incomplete"),
            Self::WebsocketRequired => (StatusCode::BAD_REQUEST, "websocket_required"),
            Self::TooManyLogins => (StatusCode::TOO_MANY_REQUESTS, "too_many_login_attempts"),
            Self::InvalidAuth => (StatusCode::UNAUTHORIZED, "invalid_auth"),
            Self::TokenMissing => (StatusCode::UNAUTHORIZED, "auth_token_missing"),
            Self::TokenInvalid => (StatusCode::UNAUTHORIZED, "auth_token_invalid"),
            Self::CrossOrigin => (StatusCode::FORBIDDEN, "cross_origin_request"),
            Self::NotFound => (StatusCode::NOT_FOUND, "resource_not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::DatabaseUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::ClientNotFound => (StatusCode::NOT_FOUND, "client_not_found"),
            Self::UserExists => (StatusCode::CONFLICT, "user_exists"),
            Self::ClientInUse => (StatusCode::PRECONDITION_FAILED, "client_in_use"),
            Self::BadClientAccessToken => (StatusCode::BAD_REQUEST, "bad_client_access_token"),
            Self::BadClientAccessDetails => (StatusCode::BAD_REQUEST, "bad_client_access_details"),
            Self::BadClientConnectionDetails => {
                (StatusCode::BAD_REQUEST, "bad_client_connection_details")
            }
            Self::MxidMismatch(_) | Self::DeviceIdMismatch(_) => {
                (StatusCode::BAD_REQUEST, "mxid_mismatch")
            }
            Self::ClientHasKeys => (StatusCode::CONFLICT, "client_has_keys"),
            Self::InternalCrypto(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_crypto_error"),
            Self::ServerNotFound => (StatusCode::NOT_FOUND, "server_not_found"),
            Self::RegistrationSecretNotFound => {
                (StatusCode::NOT_FOUND, "registration_secret_not_found")
            }
            Self::UsernameOrPasswordMissing => {
                (StatusCode::BAD_REQUEST, "username_or_password_missing")
            }
            Self::RegistrationNoSso => (StatusCode::BAD_REQUEST, "registration_no_sso"),
            Self::SsoNotSupported => (StatusCode::FORBIDDEN, "sso_not_supported"),
            Self::SsoSessionNotFound => (StatusCode::NOT_FOUND, "sso_session_not_found"),
            Self::HomeserverUnsupported { errcode, .. } => (StatusCode::BAD_REQUEST, errcode),
            // The errcode is the homeserver's; see `into_response`.
            Self::Homeserver { status, .. } => (*status, "M_UNKNOWN"),
            Self::PluginHasNoDatabase => (StatusCode::NOT_FOUND, "plugin_has_no_database"),
            Self::TableNotFound => (StatusCode::NOT_FOUND, "table_not_found"),
            Self::QueryMissing => (StatusCode::BAD_REQUEST, "query_missing"),
            Self::SqlError { errcode, .. } => (StatusCode::BAD_REQUEST, errcode),
            Self::PluginNotFound => (StatusCode::NOT_FOUND, "plugin_not_found"),
            Self::InstanceNotFound => (StatusCode::NOT_FOUND, "instance_not_found"),
            Self::PluginInUse => (StatusCode::PRECONDITION_FAILED, "plugin_in_use"),
            Self::PluginExists => (StatusCode::CONFLICT, "plugin_exists"),
            Self::PidMismatch => (StatusCode::BAD_REQUEST, "pid_mismatch"),
            Self::PluginInvalid { .. } => (StatusCode::BAD_REQUEST, "plugin_invalid"),
            Self::PluginReloadFail { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "plugin_reload_fail")
            }
            Self::UnsupportedPluginDatabase(_) => {
                (StatusCode::NOT_IMPLEMENTED, "unsupported_plugin_database")
            }
            Self::PluginTypeRequired => (StatusCode::BAD_REQUEST, "plugin_type_required"),
            Self::PrimaryUserRequired => (StatusCode::BAD_REQUEST, "primary_user_required"),
            Self::PrimaryUserNotFound => (StatusCode::NOT_FOUND, "primary_user_not_found"),
            Self::PluginTypeNotFound => (StatusCode::NOT_FOUND, "plugin_type_not_found"),
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
        let mut body = serde_json::json!({ "error": self.to_string(), "errcode": errcode });
        if let Self::Homeserver {
            errcode,
            http_status,
            ..
        } = &self
        {
            body["errcode"] = errcode.as_str().into();
            if let Some(http_status) = http_status {
                body["http_status"] = (*http_status).into();
            }
        }
        if let Self::SqlError { query, .. } = &self {
            body["ok"] = false.into();
            body["query"] = query.clone().into();
        }
        // maubot sends the Python traceback; maubot-rs sends the plugin's, or null.
        if let Self::PluginInvalid { detail, .. } | Self::PluginReloadFail { detail, .. } = &self {
            body["stacktrace"] = detail.clone().into();
        }
        let mut response = (status, Json(body)).into_response();
        // The rest of the body is never read, so the connection cannot carry another request.
        // Saying so keeps a client from reusing it (hyper closes it right after this answer).
        if matches!(
            self,
            Self::BodyTooLarge { .. } | Self::BodyTimeout | Self::BodyIncomplete
        ) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
