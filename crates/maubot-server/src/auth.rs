//! Who may use the management API: the unshared secret, the admins' passwords and the tokens
//! they are exchanged for.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maubot_types::config::{AdminPassword, Config};
use maubot_types::secret::Secret;
use maubot_types::token;

const LOG: &str = "maubot.server";
/// Password checks waiting for their turn beyond which further logins are refused at once. One
/// check runs at a time (bcrypt takes most of a second of one core by design), so that logins,
/// however many, leave the rest of the machine to the server's other work.
const MAX_WAITING_LOGINS: usize = 8;

/// A password login was refused without a check: too many are waiting.
#[derive(Debug, thiserror::Error)]
#[error("too many password logins are waiting")]
pub struct LoginsThrottled;

/// A verified admin: the holder of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub username: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenRejected {
    /// Bad format or signature.
    #[error(transparent)]
    Token(#[from] token::TokenError),
    /// Correctly signed, but for a user who is not (or no longer) an admin.
    #[error("token user is not an admin")]
    NotAdmin,
    /// Older than `server.token_lifetime`.
    #[error("token has expired")]
    Expired,
}

/// Issues and checks management API tokens.
pub struct Authenticator {
    secret: Secret,
    /// Admin name → bcrypt hash, or `None` for admins who cannot log in with a password.
    admins: HashMap<String, Option<String>>,
    token_lifetime: Option<Duration>,
    /// One bcrypt check at a time.
    password_check: tokio::sync::Semaphore,
    waiting_logins: AtomicUsize,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("admins", &self.admins.keys())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator from the config, hashing plaintext passwords in memory (never on
    /// disk). Slow by design (bcrypt): call from a blocking context.
    pub fn from_config(config: &Config) -> Self {
        let mut secret = config.server.unshared_secret.clone();
        if secret.is_empty() || secret.expose() == "generate" {
            tracing::warn!(
                target: LOG,
                "server.unshared_secret is `generate`: using a random secret for this run only, so \
                 tokens stop working at restart. Put a long random string in the config instead."
            );
            secret = Secret::random(64);
        }
        let mut admins = HashMap::new();
        admins.insert("root".to_owned(), None);
        for (name, password) in &config.admins {
            let hash = match password {
                _ if name == "root" => None,
                AdminPassword::None => None,
                AdminPassword::Bcrypt(hash) => Some(hash.clone()),
                AdminPassword::Placeholder => {
                    tracing::warn!(
                        target: LOG,
                        admin = %name,
                        "admins.{name} is the example password `password`; that admin cannot log in with a password"
                    );
                    None
                }
                AdminPassword::Plaintext(plain) => {
                    tracing::warn!(
                        target: LOG,
                        admin = %name,
                        "admins.{name} is a plaintext password; replace it with a bcrypt hash \
                         (`maubot hash-password` prints one)"
                    );
                    bcrypt::hash(plain.expose(), bcrypt::DEFAULT_COST).ok()
                }
            };
            admins.insert(name.clone(), hash);
        }
        Self {
            secret,
            admins,
            token_lifetime: config.server.token_lifetime.map(Duration::from_secs),
            password_check: tokio::sync::Semaphore::new(1),
            waiting_logins: AtomicUsize::new(0),
        }
    }

    /// A new token for `username`.
    pub fn issue(&self, username: &str) -> String {
        token::sign(&self.secret, username, unix_now())
    }

    /// maubot's secret login: the unshared secret buys a token for `user` (default `root`).
    /// Unlike maubot, which signs tokens for any name (they then fail everywhere), only admins
    /// get one.
    pub fn login_with_secret(&self, secret: &str, user: Option<&str>) -> Option<String> {
        let user = user.filter(|u| !u.is_empty()).unwrap_or("root");
        (self.secret.ct_eq(secret) && self.admins.contains_key(user)).then(|| self.issue(user))
    }

    /// Password login. `root` never logs in with a password; admins without a hash neither.
    /// Takes bcrypt's time whether or not the user exists, so that timing does not reveal admins.
    /// Checks run one at a time; with too many waiting, a login is refused unchecked.
    pub async fn login_with_password(
        self: &Arc<Self>,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, LoginsThrottled> {
        if self.waiting_logins.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_LOGINS {
            self.waiting_logins.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(target: LOG, "Refused a password login: too many are waiting for their check");
            return Err(LoginsThrottled);
        }
        let turn = self.password_check.acquire().await;
        self.waiting_logins.fetch_sub(1, Ordering::AcqRel);
        let Ok(_turn) = turn else {
            return Err(LoginsThrottled);
        };
        Ok(self.check_password(username, password).await)
    }

    async fn check_password(&self, username: &str, password: &str) -> Option<String> {
        const DUMMY_HASH: &str = "$2b$12$H7p5uo8hSaW6WtQHNtX3FO3btZu/4eRHh.rNPv/HXIfnNNJhXPvQu";
        let hash = match self.admins.get(username) {
            Some(Some(hash)) if username != "root" => Some(hash.clone()),
            _ => None,
        };
        let password = Secret::new(password);
        let candidate = hash.clone().unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matches = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.expose(), &candidate).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        (matches && hash.is_some()).then(|| self.issue(username))
    }

    /// Checks a token: signed with our secret, for a current admin, and not expired.
    pub fn verify(&self, token: &str) -> Result<Admin, TokenRejected> {
        let claims = token::verify(&self.secret, token)?;
        if !self.admins.contains_key(&claims.user_id) {
            return Err(TokenRejected::NotAdmin);
        }
        if let Some(lifetime) = self.token_lifetime {
            let age = unix_now().saturating_sub(claims.created_at.unwrap_or(0));
            if age < 0 || age as u64 > lifetime.as_secs() {
                return Err(TokenRejected::Expired);
            }
        }
        Ok(Admin {
            username: claims.user_id,
        })
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
