//! One instance's page: its state and failure, the actions, the config editor (the YAML is
//! checked on the server before it is saved, an error shown at its line, the plugin's base config
//! alongside), renaming it and moving it to another bot or plugin, the web app's link and its
//! recent log lines.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::instances::put;
use super::layout::{Alert, Nav, badge, instance_state, page};
use super::{
    Ctx, NoticeQuery, PostResult, Session, UiForm, html as page_html, notice, see_other, seg,
};
use crate::api::error::ApiError;
use crate::logs::{self, Filter};
use crate::plugins::InstanceRequest;
use crate::state::AppState;
use crate::views::{self, InstanceView};

/// How many of the instance's log lines its page shows.
const RECENT_LOG_LINES: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/instances/{id}", get(show))
        .route("/instances/{id}/config", post(save_config))
        .route("/instances/{id}/settings", post(save_settings))
}

pub fn not_found(ctx: &Ctx) -> Response {
    page_html(
        StatusCode::NOT_FOUND,
        page(
            ctx,
            "Not found",
            Nav::Instances,
            Some(&Alert::Error(ApiError::InstanceNotFound.message())),
            html! { p { a href=(ctx.href("instances")) { "All instances" } } },
        ),
    )
}

/// `GET {ui}/instances/{id}`
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
        None,
    )
    .await
}

/// A config that failed the check: the text as sent, and the line of the error.
#[derive(Debug)]
pub struct Draft {
    text: String,
    line: Option<u64>,
}

/// The page, with `alert` on top and, after a failed save, the `draft` in the editor.
pub async fn render(
    ctx: &Ctx,
    state: &AppState,
    id: &str,
    status: StatusCode,
    alert: Option<Alert>,
    draft: Option<Draft>,
) -> Response {
    let Ok(instance) = views::instance(state, &id.to_lowercase()) else {
        return not_found(ctx);
    };
    let mut bots: Vec<String> = state
        .clients
        .views()
        .await
        .into_iter()
        .map(|b| b.id)
        .collect();
    if !bots.contains(&instance.primary_user) {
        bots.push(instance.primary_user.clone());
    }
    bots.sort();
    let mut plugins: Vec<String> = state
        .plugins
        .plugins()
        .into_iter()
        .map(|p| p.file.meta.id.to_string())
        .collect();
    if !plugins.contains(&instance.plugin) {
        plugins.push(instance.plugin.clone());
    }
    page_html(
        status,
        page(
            ctx,
            &instance.id,
            Nav::Instances,
            alert.as_ref(),
            instance_page(ctx, state, &instance, &bots, &plugins, draft.as_ref()),
        ),
    )
}

fn instance_page(
    ctx: &Ctx,
    state: &AppState,
    instance: &InstanceView,
    bots: &[String],
    plugins: &[String],
    draft: Option<&Draft>,
) -> Markup {
    let base = ctx.href(&format!("instances/{}", seg(&instance.id)));
    let (state_badge, _) = instance_state(instance);
    let webapp = state
        .plugins
        .plugin_meta(&instance.plugin)
        .is_ok_and(|meta| meta.webapp);
    let action = |name: &str, label: &str| {
        html! {
            form.inline method="post" action={ (base) "/action" } {
                input type="hidden" name="action" value=(name);
                button type="submit" { (label) }
            }
        }
    };
    let config = draft.map_or(instance.config.as_str(), |d| d.text.as_str());
    let error_line = draft.and_then(|d| d.line);
    html! {
        div.section-head {
            div {
                h1 { (instance.id) }
                p.sub {
                    a href=(ctx.href(&format!("plugins/{}", seg(&instance.plugin)))) { (instance.plugin) }
                    " on "
                    a href=(ctx.href(&format!("bots/{}", seg(&instance.primary_user)))) { (instance.primary_user) }
                }
                p { (state_badge) }
            }
        }
        div.actions {
            @if instance.started { (action("stop", "Stop")) } @else if instance.enabled { (action("start", "Start")) }
            @if instance.enabled { (action("disable", "Disable")) } @else { (action("enable", "Enable")) }
            @if instance.database {
                a.button href={ (base) "/database" } { "Database" }
            }
            @if webapp {
                a.button href=(state.plugins.webapp_url(&instance.id)) target="_blank" rel="noopener" { "Open web app" }
            }
            a.button href=(ctx.href(&format!("logs?logger=maubot.instance.{}", seg(&instance.id)))) { "Live log" }
            a.button.danger href={ (base) "/delete" } { "Delete…" }
        }
        @if let Some(failure) = &instance.failure {
            section.card.failure {
                h2 { "Why it does not run" }
                pre.log { (failure) }
            }
        }
        section.card {
            h2 { "Config" }
            form method="post" action={ (base) "/config" } {
                div.editor-pair {
                    div.editor {
                        label for="config" { "This instance's config (YAML)" }
                        @if let Some(line) = error_line {
                            p.editor-error #config-error { "Line " (line) ": see the error above." }
                        }
                        div.code-editor {
                            pre.gutter aria-hidden="true" {}
                            textarea #config name="config" spellcheck="false" rows="14" wrap="off"
                                autocomplete="off" autocapitalize="off"
                                data-error-line=[error_line]
                                aria-describedby=[error_line.map(|_| "config-error")] { (config) }
                        }
                    }
                    div.editor {
                        @match &instance.base_config {
                            Some(base_config) => {
                                p.label { "The plugin's base config (defaults)" }
                                pre.code.base { (base_config) }
                            }
                            None => {
                                p.label { "The plugin's base config" }
                                p.hint { "Known once the instance has started; this plugin may have none." }
                            }
                        }
                    }
                }
                div.actions { button.primary type="submit" { "Save config" } }
            }
        }
        div.columns {
            section.card {
                h2 { "Settings" }
                form method="post" action={ (base) "/settings" } {
                    label for="new-id" { "Instance ID" }
                    input #new-id name="id" value=(instance.id) required autocomplete="off";
                    label for="primary_user" { "Bot" }
                    select #primary_user name="primary_user" {
                        @for bot in bots {
                            option value=(bot) selected[*bot == instance.primary_user] { (bot) }
                        }
                    }
                    label for="plugin" { "Plugin" }
                    select #plugin name="plugin" {
                        @for plugin in plugins {
                            option value=(plugin) selected[*plugin == instance.plugin] { (plugin) }
                        }
                    }
                    div.actions { button type="submit" { "Save settings" } }
                }
                dl {
                    dt { "Database" } dd {
                        @match (&instance.database_interface, &instance.database_engine) {
                            (Some(interface), Some(engine)) => { (interface) " on " (engine) }
                            (Some(interface), None) => { (interface) }
                            _ => { "none" }
                        }
                    }
                    @if webapp {
                        dt { "Web app" } dd { a href=(state.plugins.webapp_url(&instance.id)) { (state.plugins.webapp_url(&instance.id)) } }
                    }
                }
            }
            section.card {
                h2 { "Recent log lines" }
                (recent_logs(&instance.id))
            }
        }
    }
}

/// The instance's last log lines from the server's log history.
fn recent_logs(id: &str) -> Markup {
    let filter = Filter {
        level: None,
        logger: Some(format!("maubot.instance.{id}")),
    };
    let (history, _) = logs::hub().subscribe();
    let lines: Vec<&Value> = history
        .iter()
        .map(|r| &**r)
        .filter(|r| filter.accepts(r))
        .collect();
    let recent = &lines[lines.len().saturating_sub(RECENT_LOG_LINES)..];
    html! {
        @if recent.is_empty() {
            p.hint { "Nothing logged yet (or only below the log level of the config)." }
        } @else {
            div.scroll {
                table.log {
                    tbody {
                        @for record in recent {
                            @let level = record["levelname"].as_str().unwrap_or_default();
                            tr class={ "level-" (level.to_ascii_lowercase()) } {
                                td.time { (record["time"].as_str().unwrap_or_default().get(11..19).unwrap_or_default()) }
                                td { (level_badge(level)) }
                                td.msg {
                                    (record["msg"].as_str().unwrap_or_default())
                                    @if let Some(exc) = record["exc_info"].as_str() { pre.log { (exc) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn level_badge(level: &str) -> Markup {
    let kind = match level {
        "ERROR" | "CRITICAL" => "bad",
        "WARNING" => "warn",
        "INFO" => "ok",
        _ => "off",
    };
    badge(kind, level)
}

/// Checks a config before it is saved: YAML whose top level is a mapping (or empty). The error
/// names its line.
pub fn check_config(text: &str) -> Result<(), (Option<u64>, String)> {
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Object(_) | Value::Null) => Ok(()),
        Ok(_) => Err((
            Some(1),
            "The config must be a mapping of keys to values.".into(),
        )),
        Err(err) => {
            let line = err.location().map(|l| l.line());
            // The message ends with a snippet of the source; the editor shows the line.
            let message = err.to_string();
            let message = message.split("-->").next().unwrap_or_default().trim();
            let message = message.strip_prefix("error: ").unwrap_or(message);
            Err((
                line,
                format!(
                    "The config is not valid YAML: {}",
                    message.lines().next().unwrap_or(message)
                ),
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConfigForm {
    #[serde(default)]
    config: String,
}

/// `POST {ui}/instances/{id}/config`: checked, then as `PUT /instance/{id}` with `config`.
async fn save_config(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(form): UiForm<ConfigForm>,
) -> PostResult {
    // Browsers send text areas with CRLF line ends.
    let text = form.config.replace("\r\n", "\n");
    if let Err((line, message)) = check_config(&text) {
        return Err(render(
            &ctx,
            &state,
            &id,
            StatusCode::BAD_REQUEST,
            Some(Alert::Error(message)),
            Some(Draft { text, line }),
        )
        .await);
    }
    let request = InstanceRequest {
        config: Some(text.clone()),
        ..Default::default()
    };
    match put(&state, &id, request).await {
        Ok(view) => Ok(see_other(
            &ctx.href(&format!("instances/{}?ok=saved", seg(&view.id))),
        )),
        Err(err) => Err(render(
            &ctx,
            &state,
            &id,
            err.status(),
            Some(Alert::Error(err.message())),
            Some(Draft { text, line: None }),
        )
        .await),
    }
}

#[derive(Debug, Deserialize)]
struct SettingsForm {
    id: String,
    primary_user: String,
    #[serde(default)]
    plugin: String,
}

/// `POST {ui}/instances/{id}/settings`: as `PUT /instance/{id}` with `id` (a rename),
/// `primary_user` and `type`, each only if changed.
async fn save_settings(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(form): UiForm<SettingsForm>,
) -> PostResult {
    let id = id.to_lowercase();
    let Ok(current) = views::instance(&state, &id) else {
        return Err(not_found(&ctx));
    };
    let new_id = form.id.trim().to_lowercase();
    let new_user = form.primary_user.trim().to_owned();
    let request = InstanceRequest {
        id: (new_id != current.id).then_some(new_id),
        primary_user: (new_user != current.primary_user).then_some(new_user),
        plugin: (!form.plugin.is_empty() && form.plugin != current.plugin).then_some(form.plugin),
        ..Default::default()
    };
    match put(&state, &id, request).await {
        Ok(view) => Ok(see_other(
            &ctx.href(&format!("instances/{}?ok=saved", seg(&view.id))),
        )),
        Err(err) => Err(render(
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

#[cfg(test)]
mod tests {
    use super::check_config;

    #[test]
    fn config_errors_name_their_line() {
        assert!(check_config("").is_ok());
        assert!(check_config("greeting: Hi\nlist:\n- a\n").is_ok());
        assert_eq!(check_config("- a\n").map_err(|e| e.0), Err(Some(1)));
        let (line, message) =
            check_config("greeting: Hi\nbad: [unclosed\nmore: x\n").expect_err("bad YAML");
        assert!(line.is_some_and(|l| l >= 2), "{line:?} {message}");
        assert!(
            message.starts_with("The config is not valid YAML"),
            "{message}"
        );
    }
}
