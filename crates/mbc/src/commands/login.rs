//! `mbc login` and `mbc logout`.

use maubot_types::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cli::{DEFAULT_SERVER, LoginArgs, LogoutArgs};
use crate::config::{CliConfig, normalize_url};
use crate::error::{Failure, Result};
use crate::http::Api;
use crate::term::Term;

/// `POST /auth/login` with a user name and password; the token is saved for the server, which
/// becomes the default server if there was none.
pub async fn login(args: LoginArgs, term: &Term) -> Result<()> {
    let (mut config, path) = CliConfig::load()?;
    let user = std::env::var("USER").ok().filter(|user| !user.is_empty());
    let username = term.value(args.username, "Username", user.as_deref(), "--username")?;
    let password = Secret::new(term.secret(args.password, "Password", "--password")?);
    let server = term.value(args.server, "Server", Some(DEFAULT_SERVER), "--server")?;
    let url = config.url_for(&server);

    let api = Api::new(&url, None)?;
    let answer = api
        .send_json(
            Method::POST,
            "/auth/login",
            &json!({ "username": username, "password": password.expose() }),
        )
        .await?;
    if answer.status != StatusCode::OK {
        return Err(api.failure(&answer));
    }
    let Some(token) = answer.body["token"].as_str() else {
        return Err(Failure::new(format!(
            "{url} answered the login without a token"
        )));
    };
    let first = config.default_server.is_none();
    config.add_login(&url, Secret::new(token), args.alias.as_deref());
    config.save(&path)?;
    term.out("Logged in successfully");
    term.note(&format!(
        "The token for {url} is saved in {}",
        path.display()
    ));
    if first {
        term.note(&format!("{url} is the default server"));
    }
    Ok(())
}

/// Forgets the token of a server (the default server if none is given). The token itself
/// stays valid on the server: maubot's tokens cannot be revoked one by one.
pub fn logout(args: LogoutArgs, term: &Term) -> Result<()> {
    let (mut config, path) = CliConfig::load()?;
    let url = match (&args.server, &config.default_server) {
        (Some(server), _) => config.url_for(server),
        (None, Some(default)) => normalize_url(default),
        (None, None) => {
            return Err(Failure::new(
                "Default server not configured. Perhaps you forgot to mbc login?",
            )
            .hint("name the server to log out of with --server"));
        }
    };
    if !config.remove_login(&url) {
        return Err(config.no_token(args.server.as_deref(), &url));
    }
    config.save(&path)?;
    term.out(&format!("Logged out of {url}"));
    Ok(())
}
