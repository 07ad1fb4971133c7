//! Instances: the list, creating one (plugin and bot pickers), the start/stop/enable/disable
//! actions and deleting one. One instance's own page is in [`super::instance`].

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Alert, Empty, Nav, confirm, empty, instance_state, page};
use super::{
    Ctx, NoticeQuery, PostResult, Session, UiForm, html as page_html, notice, see_other, seg,
};
use crate::api::detached;
use crate::api::error::ApiError;
use crate::plugins::InstanceRequest;
use crate::state::AppState;
use crate::views::{self, InstanceView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/instances", get(list))
        .route("/new/instance", get(new).post(create))
        .route("/instances/{id}/action", post(action))
        .route("/instances/{id}/delete", get(confirm_delete).post(delete))
        .merge(super::instance::router())
}

/// Instances needing attention first, then by ID.
pub fn sort_attention_first(instances: &mut [InstanceView]) {
    instances.sort_by(|a, b| (!instance_state(a).1, &a.id).cmp(&(!instance_state(b).1, &b.id)));
}

/// The table of instances (the list and the overview).
pub fn table(ctx: &Ctx, instances: &[InstanceView]) -> Markup {
    html! {
        div.scroll {
            table.list {
                thead { tr { th { "Instance" } th { "State" } th { "Plugin" } th { "Bot" } } }
                tbody {
                    @for instance in instances {
                        @let (state, attention) = instance_state(instance);
                        tr class=[attention.then_some("attention")] {
                            td { a href=(ctx.href(&format!("instances/{}", seg(&instance.id)))) { (instance.id) } }
                            td { (state) }
                            td data-label="Plugin" { a href=(ctx.href(&format!("plugins/{}", seg(&instance.plugin)))) { (instance.plugin) } }
                            td data-label="Bot" { a href=(ctx.href(&format!("bots/{}", seg(&instance.primary_user)))) { (instance.primary_user) } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET {ui}/instances`
async fn list(
    Session(ctx): Session,
    State(state): State<AppState>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let mut instances = views::instances(&state);
    sort_attention_first(&mut instances);
    let content = html! {
        div.section-head {
            h1 { "Instances" }
            a.button.primary href=(ctx.href("new/instance")) { "Create an instance" }
        }
        @if instances.is_empty() {
            (empty("No instances yet. An instance runs a plugin on a bot, with its own config.",
                html! { a.button.primary href=(ctx.href("new/instance")) { "Create an instance" } }))
        } @else {
            (table(&ctx, &instances))
        }
    };
    page_html(
        StatusCode::OK,
        page(
            &ctx,
            "Instances",
            Nav::Instances,
            notice(query.ok.as_deref()).as_ref(),
            content,
        ),
    )
}

#[derive(Debug, Default, Deserialize)]
struct NewForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    plugin: String,
    #[serde(default)]
    bot: String,
    enabled: Option<String>,
}

/// `GET {ui}/new/instance[?plugin=&bot=]`
async fn new(
    Session(ctx): Session,
    State(state): State<AppState>,
    Query(form): Query<NewForm>,
) -> Response {
    page_html(
        StatusCode::OK,
        new_page(&ctx, &state, &form, true, None).await,
    )
}

async fn new_page(
    ctx: &Ctx,
    state: &AppState,
    form: &NewForm,
    enabled: bool,
    alert: Option<&Alert>,
) -> Markup {
    let plugins = views::plugins(state);
    let bots = state.clients.views().await;
    let content = html! {
        h1 { "Create an instance" }
        @if plugins.is_empty() || bots.is_empty() {
            (empty("An instance needs a plugin and a bot to run on.", html! {
                div.actions {
                    @if plugins.is_empty() { a.button.primary href=(ctx.href("plugins")) { "Upload a plugin" } }
                    @if bots.is_empty() { a.button.primary href=(ctx.href("new/bot")) { "Add a bot" } }
                }
            }))
        } @else {
            section.card.narrow {
                form method="post" action=(ctx.href("new/instance")) {
                    label for="id" { "Instance ID" }
                    input #id name="id" value=(form.id) required autofocus autocomplete="off" placeholder="echobot";
                    p.hint { "Lower case; names the instance's database and web app path." }
                    label for="plugin" { "Plugin" }
                    select #plugin name="plugin" required {
                        @for plugin in &plugins {
                            option value=(plugin.id) selected[form.plugin == plugin.id] { (plugin.id) " v" (plugin.version) }
                        }
                    }
                    label for="bot" { "Bot" }
                    select #bot name="bot" required {
                        @for bot in &bots {
                            option value=(bot.id) selected[form.bot == bot.id] {
                                (bot.id)
                                @if let Some(name) = &bot.remote_displayname { " (" (name) ")" }
                            }
                        }
                    }
                    label.check { input type="checkbox" name="enabled" checked[enabled]; " Start it now" }
                    div.actions { button.primary type="submit" { "Create" } }
                }
            }
        }
    };
    page(ctx, "Create an instance", Nav::Instances, alert, content)
}

/// `POST {ui}/new/instance`: as `PUT /instance/{id}` creating one (IDs are lower-cased, as the
/// API lower-cases the path's).
async fn create(
    Session(ctx): Session,
    State(state): State<AppState>,
    UiForm(form): UiForm<NewForm>,
) -> PostResult {
    let id = form.id.trim().to_lowercase();
    let result = if id.is_empty() {
        Err(ApiError::InvalidBody("the instance needs an ID".into()))
    } else if state.plugins.instance(&id).is_ok() {
        Err(ApiError::InvalidBody(format!(
            "an instance with the ID {id} already exists"
        )))
    } else {
        let request = InstanceRequest {
            plugin: Some(form.plugin.clone()),
            primary_user: Some(form.bot.clone()),
            enabled: Some(form.enabled.is_some()),
            config: Some(String::new()),
            ..InstanceRequest::default()
        };
        put(&state, &id, request).await
    };
    match result {
        Ok(view) => Ok(see_other(
            &ctx.href(&format!("instances/{}?ok=created", seg(&view.id))),
        )),
        Err(err) => Err(page_html(
            err.status(),
            new_page(
                &ctx,
                &state,
                &form,
                form.enabled.is_some(),
                Some(&Alert::Error(err.message())),
            )
            .await,
        )),
    }
}

/// `PUT /instance/{id}`'s operation, run to completion even if the browser goes away.
pub async fn put(
    state: &AppState,
    id: &str,
    request: InstanceRequest,
) -> Result<InstanceView, ApiError> {
    let host = state.clone();
    let id = id.to_owned();
    detached(async move { host.plugins.put_instance(&id, request).await })
        .await?
        .map(|(_, facts)| InstanceView::new(facts, views::database_routes(state)))
        .map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    action: String,
}

/// `POST {ui}/instances/{id}/action`: start, stop, enable (and start) or disable (and stop).
async fn action(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(form): UiForm<ActionForm>,
) -> PostResult {
    // `enabled` and `started` as `PUT /instance/{id}` takes them.
    let switch = |enabled: Option<bool>, started: bool| InstanceRequest {
        enabled,
        started: Some(started),
        ..InstanceRequest::default()
    };
    let (request, ok) = match form.action.as_str() {
        "start" => (switch(None, true), "started"),
        "stop" => (switch(None, false), "stopped"),
        "enable" => (switch(Some(true), true), "enabled"),
        "disable" => (switch(Some(false), false), "disabled"),
        _ => {
            let alert = Alert::Error("Unknown action".into());
            let page = super::instance::render(
                &ctx,
                &state,
                &id,
                StatusCode::BAD_REQUEST,
                Some(alert),
                None,
            );
            return Err(page.await);
        }
    };
    match put(&state, &id, request).await {
        Ok(view) => Ok(see_other(
            &ctx.href(&format!("instances/{}?ok={ok}", seg(&view.id))),
        )),
        Err(err) => Err(super::instance::render(
            &ctx,
            &state,
            &id,
            err.status(),
            Some(Alert::Error(err.message())),
            None,
        )
        .await),
    }
}

fn delete_page(ctx: &Ctx, instance: &InstanceView, alert: Option<&Alert>) -> Markup {
    let base = ctx.href(&format!("instances/{}", seg(&instance.id)));
    let consequences = html! {
        p { "The instance stops and is removed, with its config"
            @if instance.database_interface.is_some() { " and its database" } "." }
    };
    page(
        ctx,
        "Delete instance",
        Nav::Instances,
        alert,
        confirm(
            &format!("Delete {}?", instance.id),
            consequences,
            &format!("{base}/delete"),
            "Delete instance",
            &base,
            false,
        ),
    )
}

/// `GET {ui}/instances/{id}/delete`
async fn confirm_delete(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match views::instance(&state, &id.to_lowercase()) {
        Ok(instance) => page_html(StatusCode::OK, delete_page(&ctx, &instance, None)),
        Err(_) => super::instance::not_found(&ctx),
    }
}

/// `POST {ui}/instances/{id}/delete`: as `DELETE /instance/{id}`.
async fn delete(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(_): UiForm<Empty>,
) -> PostResult {
    let id = id.to_lowercase();
    let host = state.clone();
    let target = id.clone();
    let result = detached(async move { host.plugins.delete_instance(&target).await })
        .await
        .and_then(|r| r.map_err(ApiError::from));
    match result {
        Ok(()) => Ok(see_other(&ctx.href("instances?ok=deleted"))),
        Err(err) => match views::instance(&state, &id) {
            Ok(instance) => Err(page_html(
                err.status(),
                delete_page(&ctx, &instance, Some(&Alert::Error(err.message()))),
            )),
            Err(_) => Err(super::instance::not_found(&ctx)),
        },
    }
}
