//! The plugin host driven through failures a real plugin cannot be made to produce on cue: the
//! server runs its plugins in a scripted runtime that records what it is asked, fails the starts
//! of chosen versions, and crashes and recovers instances when the test says. Rollback of a
//! replacement, renames and recovery after a crash are checked against what the API did
//! meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use maubot_server::runtime::{
    InstanceStart, LoadedPlugin, PluginCode, PluginRuntime, RuntimeError, RuntimeHost, Started,
    WebRequest, WebResponse,
};
use maubot_test_support::Synapse;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::unique;
use crate::plugins::{create_instance, put_instance, upload, wait_for_instance, zip_of};
use crate::support::{Backend, TestServer, assert_error};

const SCRIPTED: &str = "xyz.maubot-rs.test.scripted";

#[derive(Debug, Default)]
struct Script {
    /// Versions whose instances fail to start.
    failing: BTreeSet<String>,
    /// Instances whose starts wait until they are taken out.
    held: BTreeSet<String>,
    /// What the runtime was asked, in order: `load 1.0.0`, `start i1 1.0.0`, `stop i1 1.0.0`,
    /// `unload 1.0.0`.
    calls: Vec<String>,
    /// Each version's way back into the plugin host.
    hosts: BTreeMap<String, Arc<dyn RuntimeHost>>,
}

#[derive(Debug, Clone, Default)]
struct ScriptedRuntime(Arc<Mutex<Script>>);

impl ScriptedRuntime {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().expect("script")
    }

    fn fail_starts_of(&self, version: &str) {
        self.script().failing.insert(version.to_owned());
    }

    fn hold_starts_of(&self, instance: &str) {
        self.script().held.insert(instance.to_owned());
    }

    fn release_starts_of(&self, instance: &str) {
        self.script().held.remove(instance);
    }

    fn calls(&self) -> Vec<String> {
        self.script().calls.clone()
    }

    fn host(&self, version: &str) -> Arc<dyn RuntimeHost> {
        Arc::clone(self.script().hosts.get(version).expect("prepared version"))
    }

    /// The instance's worker dies, as a crash would report it.
    fn crash(&self, version: &str, instance: &str) {
        self.host(version)
            .instance_failed(instance, "scripted crash".into());
    }

    /// The runtime could not bring the instance back.
    fn give_up(&self, version: &str, instance: &str) {
        self.host(version).instance_gave_up(
            instance,
            RuntimeError::Plugin {
                message: "scripted restart failure".into(),
                detail: None,
            },
        );
    }

    /// The runtime brought the instance back by itself.
    fn recover(&self, version: &str, instance: &str) {
        self.host(version)
            .instance_recovered(instance, Started::default());
    }
}

impl PluginRuntime for ScriptedRuntime {
    fn prepare(&self, code: PluginCode, host: Arc<dyn RuntimeHost>) -> Arc<dyn LoadedPlugin> {
        let version = code.meta.version.normalized();
        self.script().hosts.insert(version.clone(), host);
        Arc::new(ScriptedPlugin {
            version,
            script: self.clone(),
        })
    }
}

#[derive(Debug)]
struct ScriptedPlugin {
    version: String,
    script: ScriptedRuntime,
}

impl ScriptedPlugin {
    fn record(&self, call: String) {
        self.script.script().calls.push(call);
    }
}

#[async_trait]
impl LoadedPlugin for ScriptedPlugin {
    async fn load(&self) -> Result<(), RuntimeError> {
        self.record(format!("load {}", self.version));
        Ok(())
    }

    async fn start(&self, instance: InstanceStart) -> Result<Started, RuntimeError> {
        self.record(format!("start {} {}", instance.instance_id, self.version));
        while self.script.script().held.contains(&instance.instance_id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.script.script().failing.contains(&self.version) {
            return Err(RuntimeError::Plugin {
                message: "scripted start failure".into(),
                detail: None,
            });
        }
        Ok(Started::default())
    }

    async fn stop(&self, instance_id: &str) {
        self.record(format!("stop {instance_id} {}", self.version));
    }

    fn deliver(&self, _: &str, _: Arc<Value>) {}

    async fn web_request(&self, _: &str, _: WebRequest) -> Result<WebResponse, RuntimeError> {
        Err(RuntimeError::Unavailable("no web app".into()))
    }

    async fn config_updated(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn unload(&self) {
        self.record(format!("unload {}", self.version));
    }
}

/// The scripted plugin's archive at `version`, with a database.
fn scripted_mbp(version: &str) -> Vec<u8> {
    let meta = format!(
        "maubot: 0.3.0\nid: {SCRIPTED}\nversion: {version}\nlicense: MIT\nmodules: [scripted]\n\
         main_class: Scripted\ndatabase: true\n"
    );
    zip_of(&[
        ("maubot.yaml", meta.as_bytes()),
        ("scripted.py", b"class Scripted: pass\n"),
    ])
}

/// A server on the scripted runtime, with a (non-syncing) client to run instances on.
async fn scripted_server(test: &str) -> (TestServer, ScriptedRuntime, String, String) {
    let runtime = ScriptedRuntime::default();
    let server = TestServer::start_on(
        Backend::Sqlite,
        test,
        |_| {},
        Some(Arc::new(runtime.clone()) as Arc<dyn PluginRuntime>),
    )
    .await
    .expect("sqlite");
    let token = server.root_token().await;
    let synapse = tokio::task::spawn_blocking(Synapse::shared)
        .await
        .expect("synapse");
    let user = synapse
        .register(&unique("scripted"), "scripted-password", false)
        .await
        .expect("user");
    let (status, client) = server
        .post_json(
            "/client/new",
            Some(&token),
            json!({
                "homeserver": synapse.base_url(),
                "access_token": user.access_token,
                "device_id": user.device_id,
                "sync": false,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    (server, runtime, token, user.user_id)
}

async fn start_instance(server: &TestServer, token: &str, id: &str, bot: &str) {
    let view = create_instance(server, token, id, SCRIPTED, bot).await;
    assert_eq!(view["started"], true, "{view}");
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A new version whose instances fail to start: the old code runs again, the answer is maubot's
/// `plugin_reload_fail`, and the new archive goes to the trash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_that_fails_to_start_rolls_back_to_the_old_code() {
    let (server, runtime, token, bot) = scripted_server("scripted_rollback").await;
    let (status, plugin) = upload(&server, &token, scripted_mbp("1.0.0"), "").await;
    assert!(status.is_success(), "{plugin}");
    start_instance(&server, &token, "i1", &bot).await;
    start_instance(&server, &token, "i2", &bot).await;

    runtime.fail_starts_of("2.0.0");
    let before = runtime.calls().len();
    let answer = upload(
        &server,
        &token,
        scripted_mbp("2.0.0"),
        "?allow_override=true",
    )
    .await;
    assert_error(
        &answer,
        StatusCode::INTERNAL_SERVER_ERROR,
        "plugin_reload_fail",
    );
    let calls = runtime.calls()[before..].to_vec();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("load 2.0.0"),
        "{calls:?}"
    );
    for instance in ["i1", "i2"] {
        let last_start = calls
            .iter()
            .rev()
            .find(|c| c.starts_with(&format!("start {instance} ")));
        assert_eq!(
            last_start.map(String::as_str),
            Some(format!("start {instance} 1.0.0").as_str()),
            "{calls:?}"
        );
        let view = server
            .get(&format!("/instance/{instance}"), Some(&token))
            .await
            .1;
        assert_eq!(view["started"], true, "{view}");
        assert_eq!(view["enabled"], true, "{view}");
        assert_eq!(view["failure"], Value::Null, "{view}");
    }
    let plugin = server
        .get(&format!("/plugin/{SCRIPTED}"), Some(&token))
        .await
        .1;
    assert_eq!(plugin["version"], "1.0.0", "{plugin}");
    let archives: Vec<String> = files_in(&server.dir().join("plugins"))
        .into_iter()
        .filter(|f| f.ends_with(".mbp"))
        .collect();
    assert_eq!(archives, [format!("{SCRIPTED}-v1.0.0.mbp")]);
    assert!(
        files_in(&server.dir().join("trash"))
            .iter()
            .any(|f| f.contains("failed_update") && f.contains("2.0.0")),
        "{:?}",
        files_in(&server.dir().join("trash"))
    );
    server.stop().await;
}

/// A rename moves the database with the instance; one that cannot (the new ID's file exists)
/// leaves the instance under its old name, running, with its database, and the stranger's file
/// untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_move_the_database_or_change_nothing() {
    let (server, runtime, token, bot) = scripted_server("scripted_rename").await;
    upload(&server, &token, scripted_mbp("1.0.0"), "").await;
    start_instance(&server, &token, "i1", &bot).await;
    let dbs = server.dir().join("dbs");
    std::fs::write(dbs.join("i1.db"), b"i1's data").expect("write");
    std::fs::write(dbs.join("taken.db"), b"a stranger's data").expect("write");

    let answer = put_instance(&server, &token, "i1", json!({ "id": "taken" })).await;
    assert!(answer.0.is_server_error(), "{answer:?}");
    let view = server.get("/instance/i1", Some(&token)).await.1;
    assert_eq!(view["started"], true, "{view}");
    assert_eq!(
        server.get("/instance/taken", Some(&token)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        std::fs::read(dbs.join("i1.db")).expect("i1.db"),
        b"i1's data"
    );
    assert_eq!(
        std::fs::read(dbs.join("taken.db")).expect("taken.db"),
        b"a stranger's data"
    );
    assert!(
        !files_in(&dbs)
            .iter()
            .any(|f| f.starts_with(".instance-change"))
    );

    let before = runtime.calls().len();
    let (status, view) = put_instance(&server, &token, "i1", json!({ "id": "moved" })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["id"], "moved");
    assert_eq!(view["started"], true, "{view}");
    assert_eq!(
        std::fs::read(dbs.join("moved.db")).expect("moved.db"),
        b"i1's data"
    );
    assert!(!dbs.join("i1.db").exists());
    let calls = runtime.calls()[before..].to_vec();
    assert_eq!(calls, ["stop i1 1.0.0", "start moved 1.0.0"]);
    server.stop().await;
}

/// After a crash the runtime brings an instance back by itself, unless the API stopped or
/// deleted it meanwhile: then it is told to stop, and stays stopped (or gone). A restart that
/// fails disables the instance, unless the API stopped it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_after_a_crash_yields_to_what_the_api_did_meanwhile() {
    let (server, runtime, token, bot) = scripted_server("scripted_recovery").await;
    upload(&server, &token, scripted_mbp("1.0.0"), "").await;
    start_instance(&server, &token, "i1", &bot).await;

    // Crashed, then back.
    runtime.crash("1.0.0", "i1");
    wait_for_instance(&server, &token, "i1", "failed", |v| {
        v["started"] == false && v["failure"] == "scripted crash"
    })
    .await;
    runtime.recover("1.0.0", "i1");
    wait_for_instance(&server, &token, "i1", "started again", |v| {
        v["started"] == true && v["failure"].is_null()
    })
    .await;

    // Crashed, stopped through the API, then "recovered": it must not run.
    runtime.crash("1.0.0", "i1");
    wait_for_instance(&server, &token, "i1", "failed", |v| v["started"] == false).await;
    let (status, view) = put_instance(&server, &token, "i1", json!({ "started": false })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let before = runtime.calls().len();
    runtime.recover("1.0.0", "i1");
    // The runtime is told to stop what it brought back.
    for _ in 0..100 {
        if runtime.calls()[before..]
            .iter()
            .any(|c| c == "stop i1 1.0.0")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(runtime.calls()[before..], ["stop i1 1.0.0"]);
    let view = server.get("/instance/i1", Some(&token)).await.1;
    assert_eq!(view["started"], false, "{view}");
    assert_eq!(view["failure"], Value::Null, "{view}");

    // Started again, crashed, deleted, then "recovered": it stays gone.
    let (status, view) = put_instance(&server, &token, "i1", json!({ "started": true })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["started"], true, "{view}");
    runtime.crash("1.0.0", "i1");
    let (status, _) = server
        .send(server.http.delete(server.api("/instance/i1")), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    runtime.recover("1.0.0", "i1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        server.get("/instance/i1", Some(&token)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(server.get("/instances", Some(&token)).await.1, json!([]));

    // Crashed, stopped through the API, then the restart failed: nothing changes.
    start_instance(&server, &token, "i2", &bot).await;
    runtime.crash("1.0.0", "i2");
    wait_for_instance(&server, &token, "i2", "failed", |v| v["started"] == false).await;
    let (status, view) = put_instance(&server, &token, "i2", json!({ "started": false })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    runtime.give_up("1.0.0", "i2");
    // Ordered after the report: a change through the API answers once the report was taken.
    let (status, view) = put_instance(&server, &token, "i2", json!({ "config": "a: 1" })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["enabled"], true, "{view}");
    assert_eq!(view["failure"], Value::Null, "{view}");

    // Crashed, then the restart failed: disabled, with the reason, as a failed start is.
    let (status, view) = put_instance(&server, &token, "i2", json!({ "started": true })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    runtime.crash("1.0.0", "i2");
    runtime.give_up("1.0.0", "i2");
    let view =
        wait_for_instance(&server, &token, "i2", "given up", |v| v["enabled"] == false).await;
    assert_eq!(view["started"], false, "{view}");
    assert_eq!(view["failure"], "scripted restart failure", "{view}");
    server.stop().await;
}

/// An instance whose start takes long holds up no change of another instance, and the API
/// still answers for the slow one meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_start_holds_up_no_other_instance() {
    let (server, runtime, token, bot) = scripted_server("scripted_slow_start").await;
    upload(&server, &token, scripted_mbp("1.0.0"), "").await;
    start_instance(&server, &token, "slow", &bot).await;
    start_instance(&server, &token, "quick", &bot).await;
    let (status, view) = put_instance(&server, &token, "slow", json!({ "started": false })).await;
    assert_eq!(status, StatusCode::OK, "{view}");

    runtime.hold_starts_of("slow");
    let before = runtime.calls().len();
    let mut slow_start = Box::pin(put_instance(
        &server,
        &token,
        "slow",
        json!({ "started": true }),
    ));
    let started_slowly = async {
        while !runtime.calls()[before..].contains(&"start slow 1.0.0".to_owned()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        answer = &mut slow_start => panic!("the held start answered: {answer:?}"),
        () = started_slowly => {}
    }

    let quick_change = put_instance(
        &server,
        &token,
        "quick",
        json!({ "started": false, "config": "answer: 42" }),
    );
    let (status, view) = tokio::time::timeout(Duration::from_secs(5), quick_change)
        .await
        .expect("another instance's change waited for the slow start");
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["started"], false, "{view}");
    assert_eq!(view["config"], "answer: 42", "{view}");
    let (status, view) = server.get("/instance/slow", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["started"], false, "{view}");

    runtime.release_starts_of("slow");
    let (status, view) = slow_start.await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["started"], true, "{view}");
    server.stop().await;
}
