//! `mbc auth`: the server's `/client/auth/*` routes — list its homeservers, register or log in
//! a bot's Matrix account, optionally making it a client (`--update-client`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::AuthArgs;
use crate::config::CliConfig;
use crate::error::{Failure, Result};
use crate::http::{Answer, Api, path_segment};
use crate::term::Term;

pub async fn auth(args: AuthArgs, term: &Term) -> Result<()> {
    let (config, _) = CliConfig::load()?;
    let server = config.resolve(args.server.as_deref())?;
    let api = Api::new(&server.url, Some(server.token.clone()))?;
    if args.list {
        return list(&api, term).await;
    }
    let homeserver = match args.homeserver {
        Some(homeserver) => homeserver,
        None if term.interactive() => {
            let names = homeserver_names(&api).await.unwrap_or_default();
            let question = if names.is_empty() {
                "Homeserver".to_owned()
            } else {
                format!("Homeserver ({})", names.join(", "))
            };
            let default = (names.len() == 1).then(|| names[0].as_str());
            term.ask(&question, default)?
        }
        None => term.value(None, "Homeserver", None, "--homeserver")?,
    };
    let action = if args.register { "register" } else { "login" };
    let mut query = Vec::new();
    if args.update_client {
        query.push("update_client=true");
    }
    if args.sso {
        if args.register {
            return Err(Failure::new(
                "The register operation is only for registering with a password",
            )
            .hint("register with a password (leave out --sso), or log in to an existing account with --sso (leave out --register)"));
        }
        query.push("sso=true");
    }
    let path = format!(
        "/client/auth/{}/{action}{}{}",
        path_segment(&homeserver),
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    );

    let answer = if args.sso {
        let answer = api
            .send_json(
                Method::POST,
                &path,
                &json!({ "device_name": args.device_name }),
            )
            .await?;
        let session = match (
            answer.status,
            answer.body["sso_url"].as_str(),
            answer.body["id"].as_str(),
        ) {
            (StatusCode::OK, Some(url), Some(id)) => {
                term.note(&format!("Open this URL in a browser to log in:\n{url}"));
                term.note("Waiting for the login to finish...");
                id.to_owned()
            }
            _ => return Err(failure(&api, &answer, &homeserver, args.register)),
        };
        let wait = format!(
            "/client/auth/{}/sso/{}/wait",
            path_segment(&homeserver),
            path_segment(&session)
        );
        api.send_json(Method::POST, &wait, &json!({})).await?
    } else {
        let username = term.value(args.username, "Username", None, "--username")?;
        let password = term.secret(args.password, "Password", "--password")?;
        api.send_json(
            Method::POST,
            &path,
            &json!({
                "username": username,
                "password": password,
                "device_name": args.device_name,
            }),
        )
        .await?
    };
    show(&api, &answer, &homeserver, args.register, term)
}

/// `GET /client/auth/servers`.
async fn list(api: &Api, term: &Term) -> Result<()> {
    let answer = api.get("/client/auth/servers").await?;
    let Some(servers) = answer
        .body
        .as_object()
        .filter(|_| answer.status == StatusCode::OK)
    else {
        return Err(api.failure(&answer));
    };
    if servers.is_empty() {
        term.note(&format!(
            "{} has no homeservers for registration and login (the `homeservers` section of its config)",
            api.server()
        ));
        return Ok(());
    }
    term.out("Available Matrix servers for registration and login:");
    for (name, url) in servers {
        match url.as_str() {
            Some(url) => term.out(&format!("* {name} ({url})")),
            None => term.out(&format!("* {name}")),
        }
    }
    Ok(())
}

async fn homeserver_names(api: &Api) -> Result<Vec<String>> {
    let answer = api.get("/client/auth/servers").await?;
    Ok(answer
        .body
        .as_object()
        .map(|servers| servers.keys().cloned().collect())
        .unwrap_or_default())
}

/// Prints what maubot's mbc prints for each kind of success.
fn show(api: &Api, answer: &Answer, homeserver: &str, register: bool, term: &Term) -> Result<()> {
    let text = |key: &str| answer.body[key].as_str().unwrap_or("?").to_owned();
    match answer.status {
        StatusCode::OK => {
            let verb = if register {
                "registered"
            } else {
                "logged in as"
            };
            term.out(&format!("Successfully {verb} {}.", text("user_id")));
            term.out(&format!("Access token: {}", text("access_token")));
            term.out(&format!("Device ID: {}", text("device_id")));
            Ok(())
        }
        StatusCode::CREATED | StatusCode::ACCEPTED => {
            let verb = if answer.status == StatusCode::CREATED {
                "created"
            } else {
                "updated"
            };
            term.out(&format!(
                "Successfully {verb} client for {} / {}",
                text("id"),
                text("device_id")
            ));
            Ok(())
        }
        _ => Err(failure(api, answer, homeserver, register)),
    }
}

fn failure(api: &Api, answer: &Answer, homeserver: &str, register: bool) -> Failure {
    let errcode = answer.body["errcode"].as_str().unwrap_or_default();
    match errcode {
        "server_not_found" => Failure::new(format!(
            "{} has no homeserver named `{homeserver}`",
            api.server()
        ))
        .hint("list the homeservers it has with `mbc auth --list`"),
        "registration_secret_not_found" => api.failure(answer).hint(format!(
            "registration needs `secret` (the homeserver's registration_shared_secret) under homeservers.{homeserver} in the server's config; without it, log in to an existing account (leave out --register)"
        )),
        "registration_no_sso" => Failure::new(
            "The register operation is only for registering with a password",
        ),
        "sso_not_supported" => api
            .failure(answer)
            .hint("log in with a password: leave out --sso"),
        "M_USER_IN_USE" => api
            .failure(answer)
            .hint("log in to the account instead: leave out --register"),
        "M_FORBIDDEN" if !register => api
            .failure(answer)
            .hint("check the user name and password of the Matrix account"),
        _ => {
            let failure = api.failure(answer);
            match answer.body.get("http_status").and_then(Value::as_u64) {
                Some(status) => failure.hint(format!("the homeserver answered HTTP {status}")),
                None => failure,
            }
        }
    }
}
