//! Plugins: the list with the upload (drag and drop or a file picker, with progress, through
//! `POST /plugins/upload`), one plugin's metadata and instances, replacing it with a new version
//! (`PUT /plugin/{id}`), reloading and deleting it.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maubot_types::plugin::PluginMeta;
use maud::{Markup, html};

use super::layout::{Alert, Empty, Nav, confirm, empty, instance_state, page, yes_no};
use super::{
    Ctx, NoticeQuery, PostResult, Session, UiForm, html as page_html, notice, see_other, seg,
};
use crate::api::detached;
use crate::api::error::ApiError;
use crate::state::AppState;
use crate::views::{self, PluginView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list))
        .route("/plugins/{id}", get(show))
        .route("/plugins/{id}/reload", post(reload))
        .route("/plugins/{id}/delete", get(confirm_delete).post(delete))
}

/// The drop zone of an upload: `url` takes the archive with `method`; afterwards the browser
/// goes to the plugin's page.
fn upload_zone(ctx: &Ctx, url: &str, method: &str, label: &str) -> Markup {
    html! {
        div.dropzone data-upload=(url) data-method=(method) data-then=(ctx.href("plugins/")) {
            p { (label) }
            label.button.primary.file {
                "Choose a .mbp file"
                input type="file" accept=".mbp,application/zip" data-upload-input;
            }
            progress hidden max="100" value="0" {}
            div.upload-status aria-live="polite" {}
        }
    }
}

/// `GET {ui}/plugins`
async fn list(
    Session(ctx): Session,
    State(state): State<AppState>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let plugins = views::plugins(&state);
    let upload = state.config.api_features.plugin_upload;
    let content = html! {
        h1 { "Plugins" }
        @if upload {
            (upload_zone(&ctx, &format!("{}/plugins/upload", ctx.api), "POST",
                "Upload a plugin: drop its .mbp archive here (what mbc build makes).",
            ))
        }
        @if plugins.is_empty() {
            (empty("No plugins yet. Upload a plugin's .mbp archive, then create instances of it on your bots.", html! {}))
        } @else {
            div.scroll {
                table.list {
                    thead { tr { th { "Plugin" } th { "Version" } th { "Instances" } } }
                    tbody {
                        @for plugin in &plugins {
                            tr {
                                td { a href=(ctx.href(&format!("plugins/{}", seg(&plugin.id)))) { (plugin.id) } }
                                td data-label="Version" { (plugin.version) }
                                td data-label="Instances" { (plugin.instances.len()) }
                            }
                        }
                    }
                }
            }
        }
    };
    page_html(
        StatusCode::OK,
        page(
            &ctx,
            "Plugins",
            Nav::Plugins,
            notice(query.ok.as_deref()).as_ref(),
            content,
        ),
    )
}

fn not_found(ctx: &Ctx) -> Response {
    page_html(
        StatusCode::NOT_FOUND,
        page(
            ctx,
            "Not found",
            Nav::Plugins,
            Some(&Alert::Error(ApiError::PluginNotFound.message())),
            html! { p { a href=(ctx.href("plugins")) { "All plugins" } } },
        ),
    )
}

/// `GET {ui}/plugins/{id}`
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
}

fn render(
    ctx: &Ctx,
    state: &AppState,
    id: &str,
    status: StatusCode,
    alert: Option<Alert>,
) -> Response {
    let (Ok(plugin), Ok(meta)) = (views::plugin(state, id), state.plugins.plugin_meta(id)) else {
        return not_found(ctx);
    };
    page_html(
        status,
        page(
            ctx,
            &plugin.id,
            Nav::Plugins,
            alert.as_ref(),
            plugin_page(ctx, state, &plugin, &meta),
        ),
    )
}

fn list_or_none(items: &[String]) -> Markup {
    html! {
        @if items.is_empty() { "none" } @else {
            ul.plain { @for item in items { li { code { (item) } } } }
        }
    }
}

fn plugin_page(ctx: &Ctx, state: &AppState, plugin: &PluginView, meta: &PluginMeta) -> Markup {
    let base = ctx.href(&format!("plugins/{}", seg(&plugin.id)));
    html! {
        div.section-head {
            h1 { (plugin.id) " " span.sub { "v" (plugin.version) } }
            div.actions {
                form.inline method="post" action={ (base) "/reload" } {
                    button type="submit" { "Reload" }
                }
                a.button href=(ctx.href(&format!("new/instance?plugin={}", seg(&plugin.id)))) { "Create an instance" }
                a.button.danger href={ (base) "/delete" } { "Delete…" }
            }
        }
        div.columns {
            section.card {
                h2 { "Archive" }
                dl {
                    dt { "ID" } dd { code { (meta.id.as_str()) } }
                    dt { "Version" } dd { (meta.version) }
                    dt { "License" } dd { @if meta.license.is_empty() { "not given" } @else { (meta.license) } }
                    dt { "Needs maubot" } dd { (meta.maubot) }
                    dt { "Modules" } dd { (list_or_none(&meta.modules)) }
                    dt { "Main class" } dd { code { (meta.main_class) } }
                    dt { "Dependencies" } dd { (list_or_none(&meta.dependencies)) }
                    @if !meta.soft_dependencies.is_empty() {
                        dt { "Optional dependencies" } dd { (list_or_none(&meta.soft_dependencies)) }
                    }
                    dt { "Database" } dd {
                        @if meta.database { "yes (" (meta.database_type.as_str()) ")" } @else { "no" }
                    }
                    dt { "Config" } dd { (yes_no(meta.config)) }
                    dt { "Web app" } dd { (yes_no(meta.webapp)) }
                    dt { "File" } dd { code.path { (plugin.path.display()) } }
                }
            }
            section.card {
                h2 { "Instances" }
                @if plugin.instances.is_empty() {
                    p { "No instances of this plugin. "
                        a href=(ctx.href(&format!("new/instance?plugin={}", seg(&plugin.id)))) { "Create one" } }
                } @else {
                    ul.plain {
                        @for instance in &plugin.instances {
                            li {
                                a href=(ctx.href(&format!("instances/{}", seg(&instance.id)))) { (instance.id) }
                                " on " (instance.primary_user) " " (instance_state(instance).0)
                            }
                        }
                    }
                }
                @if state.config.api_features.plugin_upload {
                    h2 { "Replace with a new version" }
                    (upload_zone(ctx, &format!("{}/plugin/{}", ctx.api, seg(&plugin.id)), "PUT",
                        "Drop a newer .mbp of this plugin here. Its running instances restart on the new code."))
                }
            }
        }
    }
}

/// `POST {ui}/plugins/{id}/reload`: as `POST /plugin/{id}/reload`.
async fn reload(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(_): UiForm<Empty>,
) -> PostResult {
    let host = state.clone();
    let plugin = id.clone();
    let result = detached(async move { host.plugins.reload(&plugin).await })
        .await
        .and_then(|r| r.map_err(ApiError::from));
    match result {
        Ok(()) => Ok(see_other(
            &ctx.href(&format!("plugins/{}?ok=reloaded", seg(&id))),
        )),
        Err(err) => Err(render(
            &ctx,
            &state,
            &id,
            err.status(),
            Some(Alert::Error(err.message())),
        )),
    }
}

fn delete_page(ctx: &Ctx, plugin: &PluginView, alert: Option<&Alert>) -> Markup {
    let base = ctx.href(&format!("plugins/{}", seg(&plugin.id)));
    let names: Vec<&str> = plugin.instances.iter().map(|i| i.id.as_str()).collect();
    let blocked = !names.is_empty();
    let consequences = html! {
        @if blocked {
            p.alert.error role="alert" {
                "This plugin is used by instances " (names.join(", ")) ". Delete those instances first."
            }
        } @else {
            p { "The archive is moved to the trash folder of the config and the plugin is gone from maubot." }
        }
    };
    page(
        ctx,
        "Delete plugin",
        Nav::Plugins,
        alert,
        confirm(
            &format!("Delete {}?", plugin.id),
            consequences,
            &format!("{base}/delete"),
            "Delete plugin",
            &base,
            blocked,
        ),
    )
}

/// `GET {ui}/plugins/{id}/delete`
async fn confirm_delete(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match views::plugin(&state, &id) {
        Ok(plugin) => page_html(StatusCode::OK, delete_page(&ctx, &plugin, None)),
        Err(_) => not_found(&ctx),
    }
}

/// `POST {ui}/plugins/{id}/delete`: as `DELETE /plugin/{id}` (412 while instances exist).
async fn delete(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(_): UiForm<Empty>,
) -> PostResult {
    let host = state.clone();
    let plugin = id.clone();
    let result = detached(async move { host.plugins.delete_plugin(&plugin).await })
        .await
        .and_then(|r| r.map_err(ApiError::from));
    match result {
        Ok(()) => Ok(see_other(&ctx.href("plugins?ok=deleted"))),
        Err(err) => match views::plugin(&state, &id) {
            Ok(plugin) => Err(page_html(
                err.status(),
                delete_page(&ctx, &plugin, Some(&Alert::Error(err.message()))),
            )),
            Err(_) => Err(not_found(&ctx)),
        },
    }
}
