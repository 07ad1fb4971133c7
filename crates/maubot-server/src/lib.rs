#![doc = include_str!("../README.md")]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config_file;
pub mod db;
pub mod fault;
pub mod homeserver_auth;
pub mod http;
pub mod listener;
pub mod log_handlers;
pub mod logging;
pub mod logs;
pub mod matrix_path;
pub mod metrics;
pub mod plugin_web;
pub mod plugins;
pub mod process;
pub mod runtime;
pub mod server;
pub mod standalone;
pub mod state;
pub mod sync;
pub mod ui;
pub mod views;

pub use http::app;
pub use server::{Running, start, start_with_runtime};
