//! The main database: schema, settings and the health route.

use reqwest::StatusCode;
use sqlx::Row as _;

use crate::support::{Backend, TestServer, on_both_databases};

on_both_databases!(has_maubots_tables, health_checks_the_database);

const CLIENT_COLUMNS: [&str; 12] = [
    "id",
    "homeserver",
    "access_token",
    "device_id",
    "enabled",
    "next_batch",
    "filter_id",
    "sync",
    "autojoin",
    "online",
    "displayname",
    "avatar_url",
];
const INSTANCE_COLUMNS: [&str; 6] = [
    "id",
    "type",
    "enabled",
    "primary_user",
    "config",
    "database_engine",
];

async fn has_maubots_tables(server: &TestServer) {
    let db = &server.running.state().db;
    for (table, expected) in [
        ("client", &CLIENT_COLUMNS[..]),
        ("instance", &INSTANCE_COLUMNS[..]),
    ] {
        let columns: Vec<String> = maubot_server::with_pool!(db, |pool| {
            let sql = match server.backend {
                Backend::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
                Backend::Postgres => {
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position"
                }
            };
            sqlx::query(sql)
                .bind(table)
                .fetch_all(pool)
                .await
                .expect("columns")
                .iter()
                .map(|r| r.get(0))
                .collect()
        });
        assert_eq!(columns, expected, "{table}");
    }

    // An instance must belong to an existing client (foreign keys are on, also on SQLite).
    let orphan = maubot_server::with_pool!(db, |pool| {
        sqlx::query("INSERT INTO instance (id, type, enabled, primary_user, config) VALUES ('i', 't', true, '@nobody:x', '')")
            .execute(pool)
            .await
            .map(drop)
    });
    assert!(orphan.is_err(), "an instance without a client was stored");

    if let maubot_server::db::Database::Sqlite(pool) = db {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .expect("pragma");
        assert_eq!(mode, "wal");
    }
}

async fn health_checks_the_database(server: &TestServer) {
    let (status, body) = server.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    // With the database gone, the health check says so instead of pretending.
    server.running.state().db.close().await;
    let (status, body) = server.get("/health", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["errcode"], "database_unavailable");
}
