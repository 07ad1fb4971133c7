//! Bots: the list, one bot's page (profile, switches, connection, encryption, instances), its
//! actions and its deletion.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maubot_types::secret::Secret;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Alert, Nav, bot_state, confirm, empty, instance_state, page};
use super::{
    Ctx, NoticeQuery, PostResult, Session, UiForm, html as page_html, notice, see_other, seg,
};
use crate::api::error::ApiError;
use crate::client::{ClientRequest, ClientView};
use crate::state::AppState;
use crate::views::{self, InstanceView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bots", get(list))
        .route("/bots/{id}", get(show).post(save))
        .route("/bots/{id}/action", post(action))
        .route("/bots/{id}/verify", post(verify))
        .route("/bots/{id}/recovery-key", post(recovery_key))
        .route("/bots/{id}/delete", get(confirm_delete).post(delete))
}

/// Bots needing attention first, then by ID.
pub fn sort_attention_first(bots: &mut [ClientView]) {
    bots.sort_by(|a, b| (!bot_state(a).1, &a.id).cmp(&(!bot_state(b).1, &b.id)));
}

/// The table of bots (the list and the overview).
pub fn table(ctx: &Ctx, bots: &[ClientView], instances: &[InstanceView]) -> Markup {
    html! {
        div.scroll {
            table.list {
                thead { tr { th { "Bot" } th { "State" } th { "Instances" } } }
                tbody {
                    @for bot in bots {
                        @let (state, attention) = bot_state(bot);
                        @let count = instances.iter().filter(|i| i.primary_user == bot.id).count();
                        tr class=[attention.then_some("attention")] {
                            td {
                                a href=(ctx.href(&format!("bots/{}", seg(&bot.id)))) { (bot.id) }
                                @if let Some(name) = &bot.remote_displayname {
                                    br; span.sub { (name) }
                                }
                            }
                            td { (state) }
                            td data-label="Instances" { (count) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET {ui}/bots`
async fn list(
    Session(ctx): Session,
    State(state): State<AppState>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let mut bots = state.clients.views().await;
    sort_attention_first(&mut bots);
    let instances = views::instances(&state);
    let content = html! {
        div.section-head {
            h1 { "Bots" }
            a.button.primary href=(ctx.href("new/bot")) { "Add a bot" }
        }
        @if bots.is_empty() {
            (empty("No bots yet. Add a Matrix account with its access token, or register or log in one on a homeserver of the config.",
                html! { a.button.primary href=(ctx.href("new/bot")) { "Add the first bot" } }))
        } @else {
            (table(&ctx, &bots, &instances))
        }
    };
    page_html(
        StatusCode::OK,
        page(
            &ctx,
            "Bots",
            Nav::Bots,
            notice(query.ok.as_deref()).as_ref(),
            content,
        ),
    )
}

/// A bot, and the instances that run on it.
struct Bot {
    view: ClientView,
    instances: Vec<InstanceView>,
}

async fn view_of(state: &AppState, id: &str) -> Option<Bot> {
    Some(Bot {
        view: state.clients.get(id).await?.view(),
        instances: views::instances_of_client(state, id),
    })
}

fn not_found(ctx: &Ctx) -> Response {
    page_html(
        StatusCode::NOT_FOUND,
        page(
            ctx,
            "Not found",
            Nav::Bots,
            Some(&Alert::Error(ApiError::ClientNotFound.message())),
            html! { p { a href=(ctx.href("bots")) { "All bots" } } },
        ),
    )
}

/// `GET {ui}/bots/{id}`
async fn show(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    render(
        &ctx,
        &state,
        &id,
        StatusCode::OK,
        notice(query.ok.as_deref()),
    )
    .await
}

async fn render(
    ctx: &Ctx,
    state: &AppState,
    id: &str,
    status: StatusCode,
    alert: Option<Alert>,
) -> Response {
    let Some(bot) = view_of(state, id).await else {
        return not_found(ctx);
    };
    page_html(
        status,
        page(
            ctx,
            &bot.view.id,
            Nav::Bots,
            alert.as_ref(),
            bot_page(ctx, state, &bot),
        ),
    )
}

/// The proxy URL of an `mxc://` avatar, as the bot downloads it.
fn avatar_src(ctx: &Ctx, bot: &str, mxc: &str) -> Option<String> {
    let (server, media) = mxc.strip_prefix("mxc://")?.split_once('/')?;
    Some(format!(
        "{}/proxy/{}/_matrix/client/v1/media/download/{}/{}",
        ctx.api,
        seg(bot),
        seg(server),
        seg(media)
    ))
}

fn bot_page(
    ctx: &Ctx,
    state: &AppState,
    Bot {
        view: bot,
        instances,
    }: &Bot,
) -> Markup {
    let base = ctx.href(&format!("bots/{}", seg(&bot.id)));
    let (state_badge, _) = bot_state(bot);
    let action = |name: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action={ (base) "/action" } {
                input type="hidden" name="action" value=(name);
                button class=(class) type="submit" { (label) }
            }
        }
    };
    let displayname = if bot.displayname == "disable" {
        ""
    } else {
        bot.displayname.as_str()
    };
    let avatar_url = if bot.avatar_url == "disable" {
        ""
    } else {
        bot.avatar_url.as_str()
    };
    let shown_avatar = bot
        .remote_avatar_url
        .as_deref()
        .or((!avatar_url.is_empty()).then_some(avatar_url));
    let proxy = state.config.api_features.client_proxy;
    html! {
        div.bot-head {
            @if let Some(src) = shown_avatar.filter(|_| proxy).and_then(|mxc| avatar_src(ctx, &bot.id, mxc)) {
                img.avatar #avatar-preview src=(src) alt="";
            } @else {
                div.avatar.placeholder #avatar-preview aria-hidden="true" {}
            }
            div {
                h1 { (bot.remote_displayname.as_deref().unwrap_or(&bot.id)) }
                p.sub { (bot.id) " on " (bot.homeserver) }
                p { (state_badge) }
            }
        }
        div.actions {
            @if bot.started { (action("stop", "Stop", "")) } @else if bot.enabled { (action("start", "Start", "")) }
            @if bot.enabled { (action("disable", "Disable", "")) } @else { (action("enable", "Enable", "")) }
            (action("clearcache", "Clear cache", ""))
            a.button.danger href={ (base) "/delete" } { "Delete…" }
        }
        div.columns {
            section.card {
                h2 { "Profile and behaviour" }
                form method="post" action=(base) {
                    label for="displayname" { "Display name" }
                    input #displayname name="displayname" value=(displayname) placeholder="(left as it is)";
                    p.hint { "Empty leaves the account's display name alone." }
                    label for="avatar_url" { "Avatar" }
                    div.avatar-field {
                        input #avatar_url name="avatar_url" value=(avatar_url) placeholder="mxc://… (left as it is)";
                        @if proxy {
                            label.button.file {
                                "Upload an image"
                                input #avatar-file type="file" accept="image/*"
                                    data-avatar-upload=(format!("{}/proxy/{}/_matrix/media/v3/upload", ctx.api, seg(&bot.id)))
                                    data-download=(format!("{}/proxy/{}/_matrix/client/v1/media/download/", ctx.api, seg(&bot.id)));
                            }
                        }
                    }
                    p.hint #avatar-status aria-live="polite" { "Empty leaves the account's avatar alone." }
                    fieldset {
                        legend { "Switches" }
                        label.check { input type="checkbox" name="autojoin" checked[bot.autojoin]; " Join rooms when invited" }
                        label.check { input type="checkbox" name="online" checked[bot.online]; " Appear online" }
                        label.check { input type="checkbox" name="sync" checked[bot.sync]; " Sync (receive events)" }
                    }
                    details {
                        summary { "Connection" }
                        label for="homeserver" { "Homeserver URL" }
                        input #homeserver name="homeserver" value=(bot.homeserver);
                        label for="access_token" { "New access token" }
                        input #access_token type="password" name="access_token" autocomplete="off" placeholder="(unchanged)";
                        label for="device_id" { "Device ID" }
                        input #device_id name="device_id" value=(bot.device_id);
                    }
                    div.actions { button.primary type="submit" { "Save" } }
                }
            }
            section.card {
                h2 { "Encryption" }
                @if bot.device_id.is_empty() {
                    p { "This bot has no device ID, so it does not use end-to-end encryption." }
                } @else {
                    dl {
                        dt { "Device" } dd { code { (bot.device_id) } }
                        dt { "Fingerprint" } dd { code.fingerprint { (bot.fingerprint.as_deref().unwrap_or("(not known until the bot starts)")) } }
                        dt { "Trust" } dd {
                            @match bot.trust_state.as_deref() {
                                Some("cross-signed-trusted") | Some("verified") => (super::layout::badge("ok", "verified")),
                                Some(other) => (super::layout::badge("warn", other)),
                                None => (super::layout::badge("warn", "unverified")),
                            }
                        }
                    }
                    form method="post" action={ (base) "/verify" } {
                        label for="recovery_key" { "Verify with the account's recovery key" }
                        input #recovery_key type="password" name="recovery_key" autocomplete="off" required;
                        div.actions { button type="submit" { "Verify" } }
                    }
                    @if bot.trust_state.is_none() && bot.started {
                        form method="post" action={ (base) "/recovery-key" } {
                            p.hint { "An account without cross-signing keys can get them here, with a new recovery key (shown once)." }
                            div.actions { button type="submit" { "Set up cross-signing" } }
                        }
                    }
                }
                h2 { "Instances" }
                @if instances.is_empty() {
                    p { "No instance runs on this bot. " a href=(ctx.href(&format!("new/instance?bot={}", seg(&bot.id)))) { "Create one" } }
                } @else {
                    ul.plain {
                        @for instance in instances {
                            li {
                                a href=(ctx.href(&format!("instances/{}", seg(&instance.id)))) { (instance.id) }
                                " " (instance_state(instance).0)
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct SaveForm {
    #[serde(default)]
    displayname: String,
    #[serde(default)]
    avatar_url: String,
    autojoin: Option<String>,
    online: Option<String>,
    sync: Option<String>,
    homeserver: Option<String>,
    access_token: Option<String>,
    device_id: Option<String>,
}

fn or_disable(value: &str) -> String {
    let value = value.trim();
    if value.is_empty() {
        "disable".into()
    } else {
        value.to_owned()
    }
}

/// `POST {ui}/bots/{id}`: as `PUT /client/{id}`.
async fn save(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(form): UiForm<SaveForm>,
) -> PostResult {
    let request = ClientRequest {
        displayname: Some(or_disable(&form.displayname)),
        avatar_url: Some(or_disable(&form.avatar_url)),
        autojoin: Some(form.autojoin.is_some()),
        online: Some(form.online.is_some()),
        sync: Some(form.sync.is_some()),
        homeserver: form
            .homeserver
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty()),
        access_token: form.access_token.filter(|t| !t.is_empty()).map(Secret::new),
        device_id: form.device_id.map(|d| d.trim().to_owned()),
        ..ClientRequest::default()
    };
    done(
        &ctx,
        &state,
        &id,
        state.clients.update(&id, request).await.map(drop),
        "saved",
    )
    .await
}

/// Where a bot's post leads: its page with a notice, or its page again with the error.
async fn done(
    ctx: &Ctx,
    state: &AppState,
    id: &str,
    result: Result<(), crate::client::Error>,
    ok: &str,
) -> PostResult {
    match result {
        Ok(()) => Ok(see_other(&ctx.href(&format!("bots/{}?ok={ok}", seg(id))))),
        Err(err) => {
            let err = ApiError::from(err);
            Err(render(
                ctx,
                state,
                id,
                err.status(),
                Some(Alert::Error(err.message())),
            )
            .await)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    action: String,
}

/// `POST {ui}/bots/{id}/action`: start, stop, enable, disable or clear the cache.
async fn action(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(form): UiForm<ActionForm>,
) -> PostResult {
    // `enabled` and `started` as `PUT /client/{id}` takes them (enabled first).
    let switch = |enabled: Option<bool>, started: bool| ClientRequest {
        enabled,
        started: Some(started),
        ..ClientRequest::default()
    };
    let (request, ok) = match form.action.as_str() {
        "clearcache" => {
            let result = state.clients.clear_cache(&id).await;
            return done(&ctx, &state, &id, result, "cleared").await;
        }
        "start" => (switch(None, true), "started"),
        "stop" => (switch(None, false), "stopped"),
        "enable" => (switch(Some(true), true), "enabled"),
        "disable" => (switch(Some(false), false), "disabled"),
        _ => {
            let alert = Alert::Error("Unknown action".into());
            return Err(render(&ctx, &state, &id, StatusCode::BAD_REQUEST, Some(alert)).await);
        }
    };
    let result = state.clients.update(&id, request).await.map(drop);
    done(&ctx, &state, &id, result, ok).await
}

#[derive(Debug, Deserialize)]
struct VerifyForm {
    recovery_key: String,
}

/// `POST {ui}/bots/{id}/verify`: as `POST /client/{id}/verify`.
async fn verify(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(form): UiForm<VerifyForm>,
) -> PostResult {
    let Some(bot) = state.clients.get(&id).await else {
        return Err(not_found(&ctx));
    };
    let result = bot.verify(form.recovery_key.trim()).await;
    done(&ctx, &state, &id, result, "verified").await
}

/// `POST {ui}/bots/{id}/recovery-key`: as `POST /client/{id}/generate_recovery_key`. The key
/// is shown on the page this once (never in a URL).
async fn recovery_key(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(_): UiForm<super::layout::Empty>,
) -> PostResult {
    let Some(bot) = state.clients.get(&id).await else {
        return Err(not_found(&ctx));
    };
    match bot.generate_recovery_key().await {
        Ok(key) => {
            let alert = Alert::Secret {
                text: "Cross-signing is set up. The recovery key, shown only now: store it safely."
                    .into(),
                secret: key,
            };
            Ok(render(&ctx, &state, &id, StatusCode::CREATED, Some(alert)).await)
        }
        Err(err) => done(&ctx, &state, &id, Err(err), "").await,
    }
}

/// What deleting a bot means; blocked while instances use it.
fn delete_page(
    ctx: &Ctx,
    Bot {
        view: bot,
        instances,
    }: &Bot,
    alert: Option<&Alert>,
) -> Markup {
    let base = ctx.href(&format!("bots/{}", seg(&bot.id)));
    let names: Vec<&str> = instances.iter().map(|i| i.id.as_str()).collect();
    let blocked = !names.is_empty();
    let consequences = html! {
        @if blocked {
            p.alert.error role="alert" {
                "This bot is used by instances " (names.join(", ")) ". Delete those instances or move them to another bot first."
            }
            ul.plain {
                @for name in &names {
                    li { a href=(ctx.href(&format!("instances/{}", seg(name)))) { (name) } }
                }
            }
        } @else {
            p { "The bot stops and is removed from maubot. The Matrix account itself stays, and so do its encryption keys on this server." }
        }
    };
    page(
        ctx,
        "Delete bot",
        Nav::Bots,
        alert,
        confirm(
            &format!("Delete {}?", bot.id),
            consequences,
            &format!("{base}/delete"),
            "Delete bot",
            &base,
            blocked,
        ),
    )
}

/// `GET {ui}/bots/{id}/delete`
async fn confirm_delete(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match view_of(&state, &id).await {
        Some(bot) => page_html(StatusCode::OK, delete_page(&ctx, &bot, None)),
        None => not_found(&ctx),
    }
}

/// `POST {ui}/bots/{id}/delete`: as `DELETE /client/{id}` (412 while instances use it).
async fn delete(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(_): UiForm<super::layout::Empty>,
) -> PostResult {
    match state.clients.delete(&id).await {
        Ok(()) => Ok(see_other(&ctx.href("bots?ok=deleted"))),
        Err(err) => {
            let err = ApiError::from(err);
            let Some(bot) = view_of(&state, &id).await else {
                return Err(not_found(&ctx));
            };
            Err(page_html(
                err.status(),
                delete_page(&ctx, &bot, Some(&Alert::Error(err.message()))),
            ))
        }
    }
}
