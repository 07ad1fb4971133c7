//! The database browser of instances with a database: the tables and their columns, a table's
//! rows sorted by any column, and a query box. The same operations as the
//! `/instance/{id}/database*` routes.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{Alert, Nav, empty, page};
use super::{Ctx, Session, UiForm, html as page_html, seg};
use crate::api::error::ApiError;
use crate::api::instance_database::{rows_of, run_query, tables_of};
use crate::state::AppState;

/// Rows shown of a table.
const ROWS: u64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/instances/{id}/database", get(show).post(query))
}

#[derive(Debug, Default, Deserialize)]
struct Browse {
    table: Option<String>,
    /// `column` or `column:desc`.
    order: Option<String>,
}

/// `GET {ui}/instances/{id}/database[?table=&order=]`
async fn show(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(browse): Query<Browse>,
) -> Response {
    let id = id.to_lowercase();
    let result = match &browse.table {
        Some(table) => {
            let order: Vec<(String, bool)> = browse
                .order
                .as_deref()
                .map(|o| {
                    let (column, dir) = o.split_once(':').unwrap_or((o, "asc"));
                    vec![(column.to_owned(), dir == "desc")]
                })
                .unwrap_or_default();
            rows_of(&state, &id, table, &order, ROWS).await.map(Some)
        }
        None => Ok(None),
    };
    render(&ctx, &state, &id, &browse, result, "").await
}

#[derive(Debug, Deserialize)]
struct QueryForm {
    #[serde(default)]
    query: String,
}

/// `POST {ui}/instances/{id}/database`: as `POST /instance/{id}/database/query`.
async fn query(
    Session(ctx): Session,
    State(state): State<AppState>,
    Path(id): Path<String>,
    UiForm(form): UiForm<QueryForm>,
) -> Response {
    let id = id.to_lowercase();
    let sql = form.query.trim().to_owned();
    let result = run_query(&state, &id, &sql, false).await.map(Some);
    render(&ctx, &state, &id, &Browse::default(), result, &sql).await
}

async fn render(
    ctx: &Ctx,
    state: &AppState,
    id: &str,
    browse: &Browse,
    result: Result<Option<Value>, ApiError>,
    sql: &str,
) -> Response {
    let tables = if crate::views::database_routes(state) {
        tables_of(state, id).await
    } else {
        Err(ApiError::NotFound)
    };
    let tables = match tables {
        Ok(tables) => tables,
        Err(err) => {
            let status = err.status();
            let content = html! {
                h1 { "Database of " (id) }
                p { a href=(ctx.href(&format!("instances/{}", seg(id)))) { "Back to the instance" } }
            };
            return page_html(
                status,
                page(
                    ctx,
                    "Database",
                    Nav::Instances,
                    Some(&Alert::Error(err.message())),
                    content,
                ),
            );
        }
    };
    let (status, alert, answer) = match result {
        Ok(answer) => (StatusCode::OK, None, answer),
        Err(err) => (err.status(), Some(Alert::Error(err.message())), None),
    };
    let base = ctx.href(&format!("instances/{}/database", seg(id)));
    let names: Vec<&String> = tables
        .as_object()
        .map(|t| t.keys().collect())
        .unwrap_or_default();
    let content = html! {
        div.section-head {
            h1 { "Database of " a href=(ctx.href(&format!("instances/{}", seg(id)))) { (id) } }
        }
        div.db {
            nav.tables aria-label="Tables" {
                h2 { "Tables" }
                @if names.is_empty() {
                    p.hint { "No tables yet: the plugin creates them when it starts." }
                }
                ul.plain {
                    @for name in &names {
                        li {
                            a href={ (base) "?table=" (seg(name)) }
                                aria-current=[(browse.table.as_deref() == Some(name.as_str())).then_some("page")] { (name) }
                        }
                    }
                }
            }
            div.db-main {
                @if let Some(table) = &browse.table {
                    @if let Some(columns) = tables[table.as_str()]["columns"].as_object() {
                        h2 { (table) }
                        p.hint.columns {
                            @for (name, column) in columns {
                                span.column { code { (name) } " " (column["type"].as_str().unwrap_or_default())
                                    @if column["primary"] == true { " (primary key)" } }
                            }
                        }
                    }
                }
                @if let Some(answer) = &answer {
                    (result_table(answer, browse, &base))
                } @else if browse.table.is_none() && sql.is_empty() {
                    p.hint { "Pick a table, or run a query." }
                }
                section.card {
                    form method="post" action=(base) {
                        label for="query" { "SQL query" }
                        textarea #query.code name="query" rows="3" spellcheck="false" placeholder="SELECT * FROM …" { (sql) }
                        div.actions { button.primary type="submit" { "Run" } }
                    }
                }
            }
        }
    };
    page_html(
        status,
        page(ctx, "Database", Nav::Instances, alert.as_ref(), content),
    )
}

fn cell(value: &Value) -> Markup {
    match value {
        Value::Null => html! { span.null { "NULL" } },
        Value::String(text) => html! { (text) },
        other => html! { (other.to_string()) },
    }
}

/// A query's answer: its rows (with sorting links when they are a table's), or what it changed.
fn result_table(answer: &Value, browse: &Browse, base: &str) -> Markup {
    let rows = answer["rows"].as_array();
    let columns: Vec<&str> = answer["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let sorted_by = browse.order.as_deref().unwrap_or_default();
    html! {
        @match rows {
            Some(rows) if rows.is_empty() => { (empty("No rows.", html! {})) }
            Some(rows) => {
                div.scroll {
                    table.list.rows {
                        thead { tr {
                            @for column in &columns {
                                @if let Some(table) = &browse.table {
                                    @let ascending = sorted_by == *column;
                                    @let next = if ascending { format!("{column}:desc") } else { (*column).to_owned() };
                                    @let mark = if ascending { " ▲" } else if sorted_by == format!("{column}:desc") { " ▼" } else { "" };
                                    th { a href={ (base) "?table=" (seg(table)) "&order=" (seg(&next)) } { (column) (mark) } }
                                } @else {
                                    th { (column) }
                                }
                            }
                        } }
                        tbody {
                            @for row in rows {
                                tr { @for value in row.as_array().into_iter().flatten() { td { (cell(value)) } } }
                            }
                        }
                    }
                }
                @if rows.len() as u64 == ROWS && browse.table.is_some() { p.hint { "The first " (ROWS) " rows." } }
            }
            None => {
                p.alert.ok role="status" {
                    @if let Some(count) = answer["rowcount"].as_i64() { (count) " rows changed." }
                    @else if let Some(status) = answer["status_msg"].as_str() { (status) }
                    @else { "Done." }
                }
            }
        }
    }
}
