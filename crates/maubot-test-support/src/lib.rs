#![doc = include_str!("../README.md")]

pub mod postgres;
pub mod synapse;

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
