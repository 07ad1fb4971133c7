//! `maubot standalone`: one bot running one plugin from its folder, with maubot's standalone
//! config, as a process, against Synapse: it answers, takes `plugin_config`, serves no
//! management API, and comes back after a restart.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use maubot_test_support::Synapse;

use crate::clients::unique;
use crate::plugins::Room;

/// The plugin folder: the test plugin `configured` (`!greeting` answers the configured
/// greeting), copied as a plugin author has it.
fn plugin_folder(root: &Path) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/configured");
    let folder = root.join("greeter");
    std::fs::create_dir_all(&folder).expect("folder");
    for entry in std::fs::read_dir(source).expect("plugin").flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), folder.join(entry.file_name())).expect("copy");
        }
    }
    folder
}

/// The standalone process, killed when the test ends.
struct Standalone(Child);

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `maubot standalone` (its log in `standalone.log`) and waits until it listens; its
/// address.
fn start(dir: &Path, plugin: &Path) -> (Standalone, String) {
    let log = std::fs::File::create(dir.join("standalone.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_maubot"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .args(["standalone", "-c", "standalone.yaml", "-m"])
        .arg(plugin.join("maubot.yaml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn maubot standalone");
    let mut process = Standalone(child);
    for _ in 0..600 {
        let log = log_of(dir);
        if let Some(addr) = log.split("Listening on http://").nth(1) {
            let addr = addr.lines().next().unwrap_or_default().trim().to_owned();
            return (process, addr);
        }
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("maubot standalone exited with {status}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("maubot standalone did not listen:\n{}", log_of(dir));
}

/// Waits until the plugin runs: events before that are not the plugin's.
async fn running(dir: &Path) {
    for _ in 0..600 {
        if log_of(dir).contains("Plugin running") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the plugin did not start:\n{}", log_of(dir));
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("standalone.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_bot_runs_its_plugin_without_a_management_api() {
    let synapse = tokio::task::spawn_blocking(Synapse::shared)
        .await
        .expect("synapse");
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = plugin_folder(dir.path());
    let bot = synapse
        .register(&unique("standalone"), "standalone-password", false)
        .await
        .expect("bot");
    std::fs::write(
        dir.path().join("standalone.yaml"),
        format!(
            "user:\n  credentials:\n    id: '{id}'\n    homeserver: {hs}\n    access_token: {token}\n    device_id: {device}\n\
             \x20 autojoin: true\n  displayname: Greeter\n\
             server:\n  hostname: 127.0.0.1\n  port: 0\n  public_url: http://127.0.0.1\n\
             database: sqlite:bot.db\n\
             plugin_config:\n  greeting: Hello from standalone\n\
             python_host:\n  venv: {venv}\n\
             logging:\n  root: {{level: INFO}}\n",
            id = bot.user_id,
            hs = synapse.base_url(),
            token = bot.access_token,
            device = bot.device_id,
            venv = maubot_test_support::python_host_venv().display(),
        ),
    )
    .expect("config");

    let (process, addr) = start(dir.path(), &plugin);
    running(dir.path()).await;
    let room = Room::with_bot(synapse, &bot.user_id).await;
    room.expect_reply(&bot.user_id, "!greeting", "Hello from standalone")
        .await;
    // No management API, no web UI.
    for path in [
        "/_matrix/maubot/v1/plugins",
        "/_matrix/maubot/v1/auth/login",
        "/_matrix/maubot/",
    ] {
        let status = reqwest::get(format!("http://{addr}{path}"))
            .await
            .expect("request")
            .status();
        assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{path}");
    }
    assert!(dir.path().join("bot.db").is_file());
    drop(process);

    // Again, from the same database, with a new greeting.
    let config = std::fs::read_to_string(dir.path().join("standalone.yaml")).expect("config");
    std::fs::write(
        dir.path().join("standalone.yaml"),
        config.replace("Hello from standalone", "Hello again"),
    )
    .expect("config");
    let (process, _) = start(dir.path(), &plugin);
    running(dir.path()).await;
    room.expect_reply(&bot.user_id, "!greeting", "Hello again")
        .await;
    drop(process);
}
