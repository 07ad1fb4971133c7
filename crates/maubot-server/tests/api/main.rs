//! Integration tests of the maubot-rs server over real HTTP, on SQLite and PostgreSQL, with a
//! real Synapse where Matrix is involved. One test binary for the crate.

mod support;

mod auth;
mod binary;
mod clients;
mod crash;
mod database;
mod deploy;
mod errors;
mod event_path;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod outage;
mod plugins;
mod scripted;
mod security;
mod sso;
mod standalone;
mod synapse;
mod ui;
mod wasm;
mod zoo;
mod zygote;
