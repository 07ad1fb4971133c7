//! matrix-sdk's own test suite for crypto stores, run against ours (on SQLite; the end-to-end
//! encryption tests cover PostgreSQL).

// The suite's expansion names cfgs of matrix-sdk-crypto's own features.
#![allow(unexpected_cfgs)]

use std::path::PathBuf;
use std::sync::OnceLock;

use maubot_types::config::{DatabaseOpts, DatabaseUrl};

use super::BotCryptoStore;
use crate::db::Database;

/// One database file per test process, its schema created once (tests run in parallel, and
/// concurrent first migrations would race); each test's store is the bot named after it.
fn database_url() -> DatabaseUrl {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let path = DIR
            .get_or_init(|| tempfile::tempdir().expect("temp dir"))
            .path()
            .join("crypto.db");
        let url = DatabaseUrl::Sqlite(path.display().to_string());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                Database::open(&url, &DatabaseOpts::default())
                    .await
                    .expect("create the test database")
                    .close()
                    .await;
            });
        })
        .join()
        .expect("create the test database");
        path
    });
    DatabaseUrl::Sqlite(path.display().to_string())
}

/// The suite's factory: the store of bot `name`, emptied first if `clear_data`. A pool per call,
/// as each test runs in a runtime of its own.
async fn get_store(name: &str, passphrase: Option<&str>, clear_data: bool) -> BotCryptoStore {
    let db = Database::open(&database_url(), &DatabaseOpts::default())
        .await
        .expect("open the test database");
    if clear_data {
        BotCryptoStore::delete(db.clone(), name)
            .await
            .expect("clear the store");
    }
    let key = {
        use sha2::Digest as _;
        sha2::Sha256::digest(passphrase.unwrap_or_default().as_bytes()).into()
    };
    BotCryptoStore::new(db, name, &key)
}

matrix_sdk_crypto::cryptostore_integration_tests!();
matrix_sdk_crypto::cryptostore_integration_tests_time!();
