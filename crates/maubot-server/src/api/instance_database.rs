//! `/instance/{id}/database*`: an instance's database for the web UI's browser (feature
//! `instance_database`). maubot answers "no database" and "no such table" with HTTP 200 and an
//! errcode; no client depends on that status (maubot's UI treats the body as an error either
//! way), so maubot-rs answers 404.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::openapi::ErrorBody;
use crate::plugins::database::{Engine, Flavor, SqlError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tables))
        .routes(routes!(query))
        .routes(routes!(table))
}

/// The instance (lower-cased, as maubot) and where its open database is.
fn database_of(state: &AppState, id: &str) -> ApiResult<(String, Engine, Flavor)> {
    let id = id.to_lowercase();
    let (engine, flavor) = state
        .plugins
        .database_of(&id)?
        .ok_or(ApiError::PluginHasNoDatabase)?;
    Ok((id, engine, flavor))
}

/// `GET /_matrix/maubot/v1/instance/{id}/database`: tables and their columns.
#[utoipa::path(get, path = "/instance/{id}/database", tag = "instance databases", params(("id" = String, Path, description = "The instance's ID (lower-cased)")), responses(
    (status = 200, description = "The tables and their columns", body = serde_json::Value),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`instance_not_found`, `plugin_has_no_database`", body = ErrorBody),
))]
async fn tables(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    tables_of(&state, &id).await.map(Json)
}

/// The tables of an instance's database and their columns (also for the web UI).
pub(crate) async fn tables_of(state: &AppState, id: &str) -> ApiResult<Value> {
    let (id, engine, flavor) = database_of(state, id)?;
    state
        .plugins
        .databases()
        .tables(&id, engine, flavor)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))
}

/// `GET /_matrix/maubot/v1/instance/{id}/database/{table}?order=col[:asc|:desc]&limit=100`:
/// the table's rows (maubot implements this only for legacy SQLAlchemy databases).
#[utoipa::path(get, path = "/instance/{id}/database/{table}", tag = "instance databases",
    params(("id" = String, Path, description = "The instance's ID (lower-cased)"), ("table" = String, Path, description = "A table"),
        ("order" = Option<String>, Query, description = "`column:asc` or `column:desc`, repeatable"),
        ("limit" = Option<u32>, Query, description = "Rows at most (100)")),
    responses(
    (status = 200, description = "Rows", body = serde_json::Value),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`instance_not_found`, `plugin_has_no_database`, `table_not_found`", body = ErrorBody),
))]
async fn table(
    State(state): State<AppState>,
    Path((id, table)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let mut order = Vec::new();
    let mut limit = 100u64;
    for (key, value) in params {
        match key.as_str() {
            "order" => {
                let (column, direction) = value.split_once(':').unwrap_or((&value, "asc"));
                order.push((column.to_owned(), direction.eq_ignore_ascii_case("desc")));
            }
            "limit" => limit = value.parse().unwrap_or(limit),
            _ => {}
        }
    }
    rows_of(&state, &id, &table, &order, limit).await.map(Json)
}

/// Up to `limit` rows of a table, ordered by `(column, descending)`s (unknown columns ignored,
/// as in maubot), in the shape of a query's answer (also for the web UI).
pub(crate) async fn rows_of(
    state: &AppState,
    id: &str,
    table: &str,
    order_by: &[(String, bool)],
    limit: u64,
) -> ApiResult<Value> {
    let (id, engine, flavor) = database_of(state, id)?;
    let columns = state
        .plugins
        .databases()
        .columns(&id, engine, table)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
        .ok_or(ApiError::TableNotFound)?;
    // Unknown columns are ignored, as in maubot; known ones are quoted.
    let order: Vec<String> = order_by
        .iter()
        .filter(|(column, _)| columns.iter().any(|c| c == column))
        .map(|(column, desc)| format!("{} {}", quote(column), if *desc { "DESC" } else { "ASC" }))
        .collect();
    let mut sql = format!("SELECT * FROM {}", quote(table));
    if !order.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&order.join(", "));
    }
    sql.push_str(&format!(" LIMIT {limit}"));
    run(state, &id, engine, flavor, &sql, false).await
}

#[derive(Debug, Deserialize, ToSchema)]
struct QueryRequest {
    query: Option<String>,
    #[serde(default)]
    rows_as_dict: bool,
}

/// `POST /_matrix/maubot/v1/instance/{id}/database/query`
#[utoipa::path(post, path = "/instance/{id}/database/query", tag = "instance databases", params(("id" = String, Path, description = "The instance's ID (lower-cased)")), request_body = QueryRequest, responses(
    (status = 200, description = "Rows, or the affected row count", body = serde_json::Value),
    (status = 400, description = "`query_missing`, `sql_error`", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`instance_not_found`, `plugin_has_no_database`", body = ErrorBody),
))]
async fn query(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<QueryRequest>,
) -> ApiResult<Json<Value>> {
    let sql = request.query.unwrap_or_default();
    run_query(&state, &id, &sql, request.rows_as_dict)
        .await
        .map(Json)
}

/// Runs one SQL statement on an instance's database (also for the web UI).
pub(crate) async fn run_query(
    state: &AppState,
    id: &str,
    sql: &str,
    rows_as_dict: bool,
) -> ApiResult<Value> {
    let (id, engine, flavor) = database_of(state, id)?;
    if sql.is_empty() {
        return Err(ApiError::QueryMissing);
    }
    run(state, &id, engine, flavor, sql, rows_as_dict).await
}

async fn run(
    state: &AppState,
    id: &str,
    engine: Engine,
    flavor: Flavor,
    sql: &str,
    rows_as_dict: bool,
) -> ApiResult<Value> {
    let answer = state
        .plugins
        .databases()
        .query(id, engine, flavor, sql, rows_as_dict)
        .await;
    answer.map_err(|err: SqlError| {
        // SQLAlchemy tells constraint violations from other errors, asyncpg and aiosqlite do not.
        let errcode = match (flavor, err.constraint) {
            (Flavor::Asyncpg, _) => "sql_error",
            (Flavor::Sqlalchemy, true) => "sql_integrity_error",
            (Flavor::Sqlalchemy, false) => "sql_operational_error",
        };
        ApiError::SqlError {
            errcode,
            query: sql.to_owned(),
            error: err.message,
        }
    })
}

/// An SQL identifier in double quotes.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
