//! A throw-away PostgreSQL database per test.

use std::str::FromStr;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// Names the PostgreSQL server for tests, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub const ENV: &str = "TEST_POSTGRES_URL";

/// A database created for one test and dropped when this value is dropped.
#[derive(Debug)]
pub struct TestPostgres {
    admin_url: String,
    name: String,
    url: String,
}

impl TestPostgres {
    /// Creates a fresh database, or returns `None` (after saying so) when `TEST_POSTGRES_URL` is
    /// not set. Under CI a missing variable is an error, so PostgreSQL coverage cannot vanish
    /// silently.
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(ENV) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{ENV} is not set under CI: PostgreSQL tests would not run"
            );
            eprintln!("skipped: {test} on PostgreSQL ({ENV} is not set)");
            return None;
        };
        let name = format!("maubot_test_{:016x}", rand::random::<u64>());
        let mut conn = connect(&admin_url).await;
        // The name is ours (hex digits), not input.
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let options = PgConnectOptions::from_str(&admin_url).expect("valid TEST_POSTGRES_URL");
        let url = format!(
            "postgres://{}@{}:{}/{name}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        );
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to PostgreSQL at {ENV}: {err}"))
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Drop may run inside a runtime (or while unwinding); use a thread with its own.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                )))
                .execute(&mut conn)
                .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}
