//! The overview: every bot and every instance with its state, what needs attention first. The
//! lists refresh themselves (the script fetches the page again and swaps them).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{Nav, empty, page};
use super::{NoticeQuery, Session, bots, html as page_html, instances, notice};
use crate::state::AppState;
use crate::views;

/// `GET {ui}/`
pub async fn page_handler(
    Session(ctx): Session,
    State(state): State<AppState>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let mut bots = state.clients.views().await;
    let instances = views::instances(&state);
    let plugins = views::plugins(&state);
    bots::sort_attention_first(&mut bots);
    let mut sorted_instances = instances.clone();
    instances::sort_attention_first(&mut sorted_instances);
    let syncing = bots.iter().filter(|b| b.sync_ok).count();
    let started = instances.iter().filter(|i| i.started).count();
    let bot_attention = bots
        .iter()
        .filter(|b| super::layout::bot_state(b).1)
        .count();
    let instance_attention = instances
        .iter()
        .filter(|i| super::layout::instance_state(i).1)
        .count();
    let content = html! {
        h1 { "Overview" }
        div #overview-live data-live="5" {
            ul.summary {
                li { a href=(ctx.href("bots")) { strong { (bots.len()) } " bots" } ", " (syncing) " syncing" }
                li { a href=(ctx.href("instances")) { strong { (instances.len()) } " instances" } ", " (started) " started" }
                li { a href=(ctx.href("plugins")) { strong { (plugins.len()) } " plugins" } }
            }
            @if bot_attention + instance_attention > 0 {
                p.alert.warn role="status" {
                    @if bot_attention + instance_attention == 1 {
                        "1 needs attention: it is listed first."
                    } @else {
                        (bot_attention + instance_attention) " need attention: they are listed first."
                    }
                }
            }
            section {
                div.section-head {
                    h2 { "Bots" }
                    a.button href=(ctx.href("new/bot")) { "Add a bot" }
                }
                @if bots.is_empty() {
                    (empty("No bots yet. A bot is a Matrix account that plugin instances run on.",
                        html! { a.button.primary href=(ctx.href("new/bot")) { "Add the first bot" } }))
                } @else {
                    (bots::table(&ctx, &bots, &instances))
                }
            }
            section #overview-instances {
                div.section-head {
                    h2 { "Instances" }
                    a.button href=(ctx.href("new/instance")) { "Create an instance" }
                }
                @if sorted_instances.is_empty() {
                    @if plugins.is_empty() {
                        (empty("No instances yet. Upload a plugin first, then create an instance of it on a bot.",
                            html! { a.button.primary href=(ctx.href("plugins")) { "Upload a plugin" } }))
                    } @else {
                        (empty("No instances yet. An instance runs a plugin on a bot.",
                            html! { a.button.primary href=(ctx.href("new/instance")) { "Create an instance" } }))
                    }
                } @else {
                    (instances::table(&ctx, &sorted_instances))
                }
            }
        }
    };
    page_html(
        StatusCode::OK,
        page(
            &ctx,
            "Overview",
            Nav::Overview,
            notice(query.ok.as_deref()).as_ref(),
            content,
        ),
    )
}
