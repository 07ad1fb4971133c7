#![doc = include_str!("../README.md")]

pub mod browser;
pub mod partition;
pub mod postgres;
pub mod python_tools;
pub mod synapse;
pub mod wasm;

pub use partition::Partition;
pub use postgres::TestPostgres;
pub use synapse::{RegisteredUser, Synapse};

/// A free TCP port on 127.0.0.1. (Another process could take it before it is used; the window is
/// small and the callers retry by failing loudly.)
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The Python environment the servers under test share for the Python plugin host (the server
/// prepares it itself on first need; sharing it means that happens once per clone).
/// `PYTHON_HOST_TEST_VENV` overrides the place.
pub fn python_host_venv() -> std::path::PathBuf {
    match std::env::var_os("PYTHON_HOST_TEST_VENV") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => target_dir().join("python-host-venv"),
    }
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, or `target/` at the workspace root).
pub fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}
