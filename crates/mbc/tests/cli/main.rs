//! `mbc` as a user runs it: the real binary, without a terminal, against a real maubot-rs
//! server started in this process (and a real Synapse for `mbc auth`).

mod auth;
mod build;
mod init;
mod login;
mod logs;
mod support;
mod terminal;
mod upload;
mod wasm;

/// Every test starts its own server on a loopback port.
macro_rules! server_test {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let server = $crate::support::TestServer::start().await;
            let mbc = $crate::support::Mbc::new();
            super::$name(&server, &mbc).await;
            server.stop().await;
        }
    )*};
}
pub(crate) use server_test;
