//! Bot accounts ("clients"): their rows, their Matrix connections and the manager that starts,
//! stops, creates, updates and deletes them.

mod bot;
mod crypto;
mod crypto_store;
mod fanout;
mod manager;
mod session;
pub mod store;

use maubot_types::secret::Secret;
use serde::{Deserialize, Serialize};

pub use bot::{Bot, BotEvent, SharedEvent};
pub use manager::ClientManager;
pub use session::BotStores;

/// Errors of client management.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No client with that ID.
    #[error("client not found")]
    NotFound,
    /// A client for that user already exists.
    #[error("a client for that user already exists")]
    UserExists,
    /// Instances still run on the client.
    #[error("plugin instances still use the client")]
    InUse,
    /// The homeserver does not accept the access token.
    #[error("the access token is not valid")]
    BadAccessToken,
    /// The homeserver refused the access details for another reason.
    #[error("the homeserver refused the access details: {0}")]
    BadAccessDetails(String),
    /// The homeserver could not be reached.
    #[error("could not connect to the homeserver: {0}")]
    Connection(String),
    /// The token is another user's.
    #[error("the access token is for {0}")]
    UserMismatch(String),
    /// The token is another device's.
    #[error("the access token is for device {0}")]
    DeviceMismatch(String),
    /// A field of the request is missing or malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// `generate_recovery_key` for an account that already has cross-signing keys.
    #[error("the account already has cross-signing keys")]
    HasKeys,
    /// Cross-signing or recovery failed, or the client has no running encryption.
    #[error("{0}")]
    Crypto(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The Matrix client could not be set up (store, keys).
    #[error("could not set up the Matrix client: {0}")]
    Setup(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a client connects, and as whom.
#[derive(Debug, Clone)]
pub struct AccessDetails {
    pub homeserver: String,
    pub access_token: Secret,
    /// Empty for a client without end-to-end encryption.
    pub device_id: String,
}

/// Whether an upsert created or updated a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
}

/// The body of `POST /client/new` and `PUT /client/{id}`: every field optional, `null` or absent
/// meaning "unchanged" (or the default, on creation).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ClientRequest {
    pub homeserver: Option<String>,
    #[schema(value_type = Option<String>)]
    pub access_token: Option<Secret>,
    pub device_id: Option<String>,
    pub enabled: Option<bool>,
    pub started: Option<bool>,
    pub sync: Option<bool>,
    pub autojoin: Option<bool>,
    pub online: Option<bool>,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

/// A client as the API shows it (maubot's `Client.to_dict`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub id: String,
    pub homeserver: String,
    /// Shown in clear to admins, as maubot does.
    pub access_token: String,
    pub device_id: String,
    pub fingerprint: Option<String>,
    pub enabled: bool,
    pub started: bool,
    pub sync: bool,
    pub sync_ok: bool,
    /// Why the client does not sync although it should: the last sync's error (or the start's),
    /// null while syncing works or has not been tried (maubot-rs addition).
    pub sync_error: Option<String>,
    pub autojoin: bool,
    pub online: bool,
    pub displayname: String,
    pub avatar_url: String,
    pub remote_displayname: Option<String>,
    pub remote_avatar_url: Option<String>,
    pub trust_state: Option<String>,
}
