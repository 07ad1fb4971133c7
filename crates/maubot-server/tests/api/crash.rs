//! The server killed (`SIGKILL`) at a random moment while the API changes plugins, instances and
//! clients: after a restart, every object is either fully there or fully absent, and files and
//! rows agree. A few tries run with the tests; `MAUBOT_CRASH_TRIES=100` makes it the soak of the
//! README ("Fault tests").

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use maubot_test_support::Synapse;
use maubot_test_support::synapse::REGISTRATION_SECRET;
use rand::Rng as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::binary::spawn;
use crate::clients::unique;
use crate::plugins::mbp;

const SECRET: &str = "crash-test-secret";
const STORAGE: &str = "xyz.maubot-rs.test.storage";

/// Each try's way to die: a kill at a random moment, or at a fault point (see the server's
/// `fault` module) between two steps of a change, where a random kill almost never lands.
const FAULT_POINTS: [Option<&str>; 6] = [
    None,
    Some("plugin.replace.new_file_written"),
    Some("instance.create.row_inserted"),
    Some("instance.rename.database_moved"),
    Some("instance.delete.row_deleted"),
    Some("client.create.row_saved"),
];

/// A server process of the test's: killed when the test ends, also by a failed assertion.
struct Owned(Option<std::process::Child>);

impl std::ops::Deref for Owned {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("running")
    }
}

impl std::ops::DerefMut for Owned {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the API confirmed before the kill: what must have survived it.
#[derive(Debug, Default)]
struct Confirmed {
    /// Instances (by the ID they were created with) whose database got a marker row.
    marked: BTreeSet<String>,
    /// Of those, the ones renamed to `<id>-r`.
    renamed: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// Deletes sent, confirmed or not.
    deleting: BTreeSet<String>,
    clients: BTreeSet<String>,
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(addr: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://{addr}/_matrix/maubot/v1");
        let login: Value = http
            .post(format!("{base}/auth/login"))
            .body(json!({ "secret": SECRET }).to_string())
            .send()
            .await?
            .json()
            .await?;
        let token = login["token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no token: {login}"))?
            .to_owned();
        Ok(Api { http, base, token })
    }

    /// A request that must succeed; the error otherwise (a refused connection once killed).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(method, path, Some(body.to_string().into_bytes()))
            .await
    }
}

/// One try's changes, in order; each confirmed step is recorded before the next begins.
async fn changes(
    api: &Api,
    synapse: &Synapse,
    n: usize,
    confirmed: &mut Confirmed,
) -> anyhow::Result<()> {
    let version = if n.is_multiple_of(2) {
        "reminder"
    } else {
        "reminder-v2"
    };
    api.call(
        Method::POST,
        "/plugins/upload?allow_override=true",
        Some(mbp(version)),
    )
    .await?;
    let id = format!("t{n}");
    api.json(
        Method::PUT,
        &format!("/instance/{id}"),
        json!({ "type": STORAGE, "primary_user": bot_of(confirmed)? }),
    )
    .await?;
    api.json(
        Method::POST,
        &format!("/instance/{id}/database/query"),
        json!({ "query": "CREATE TABLE marker (v TEXT)" }),
    )
    .await?;
    api.json(
        Method::POST,
        &format!("/instance/{id}/database/query"),
        json!({ "query": format!("INSERT INTO marker (v) VALUES ('{id}')") }),
    )
    .await?;
    confirmed.marked.insert(id.clone());
    api.json(
        Method::PUT,
        &format!("/instance/{id}"),
        json!({ "id": format!("{id}-r") }),
    )
    .await?;
    confirmed.renamed.insert(id.clone());
    api.json(
        Method::PUT,
        &format!("/instance/{id}-r"),
        json!({ "config": format!("try: {n}\n") }),
    )
    .await?;
    if n > 0 {
        let old = format!("t{}", n - 1);
        // A rename the kill cut off may have happened or not.
        let renamed = format!("{old}-r");
        let current = match api
            .call(Method::GET, &format!("/instance/{renamed}"), None)
            .await
        {
            Ok(_) => renamed,
            Err(_) => old.clone(),
        };
        if confirmed.marked.contains(&old) {
            confirmed.deleting.insert(old.clone());
            api.call(Method::DELETE, &format!("/instance/{current}"), None)
                .await?;
            confirmed.deleted.insert(old);
        }
    }
    let user = synapse
        .register(&unique("crashbot"), "crash-password", false)
        .await?;
    api.json(
        Method::POST,
        "/client/new",
        json!({
            "homeserver": synapse.base_url(),
            "access_token": user.access_token,
            "device_id": user.device_id,
            "sync": false,
        }),
    )
    .await?;
    confirmed.clients.insert(user.user_id.clone());
    api.json(
        Method::PUT,
        &format!("/client/{}", user.user_id),
        json!({ "displayname": format!("try {n}") }),
    )
    .await?;
    Ok(())
}

fn bot_of(confirmed: &Confirmed) -> anyhow::Result<String> {
    confirmed
        .clients
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no client yet"))
}

/// Instances start in the background after a restart; the database routes need a started one.
async fn wait_started(api: &Api, id: &str) {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = api
            .call(Method::GET, &format!("/instance/{id}"), None)
            .await
            .expect("instance");
        if last["started"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{id} did not start again: {last}");
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// After a restart: files and rows agree, and what was confirmed is there.
async fn check(api: &Api, dir: &Path, confirmed: &Confirmed) {
    let plugins = api
        .call(Method::GET, "/plugins", None)
        .await
        .expect("plugins");
    let plugins = plugins.as_array().expect("plugin list");
    let files = names_in(&dir.join("plugins"));
    assert!(
        files.iter().all(|f| !f.ends_with(".uploading")),
        "an unfinished upload was left: {files:?}"
    );
    let archives: Vec<&String> = files.iter().filter(|f| f.ends_with(".mbp")).collect();
    assert_eq!(
        archives.len(),
        plugins.len(),
        "one archive per plugin: {archives:?} for {plugins:?}"
    );
    for plugin in plugins {
        let path = plugin["path"].as_str().unwrap_or_default();
        assert!(Path::new(path).is_file(), "{plugin}");
    }

    let instances = api
        .call(Method::GET, "/instances", None)
        .await
        .expect("instances");
    let ids: BTreeSet<String> = instances
        .as_array()
        .expect("instance list")
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let databases = names_in(&dir.join("dbs"));
    assert!(
        !databases.iter().any(|f| f == ".instance-change.json"),
        "an interrupted change was not finished: {databases:?}"
    );
    for file in databases.iter().filter(|f| f.ends_with(".db")) {
        let id = file.trim_end_matches(".db");
        assert!(
            ids.contains(id),
            "{file} belongs to no instance (instances: {ids:?})"
        );
    }
    for created in &confirmed.marked {
        let renamed = format!("{created}-r");
        let deleted = confirmed.deleted.contains(created);
        let present: Vec<&String> = [created, &renamed]
            .into_iter()
            .filter(|id| ids.contains(*id))
            .collect();
        if deleted {
            assert!(present.is_empty(), "{created} was deleted: {present:?}");
            continue;
        }
        if present.is_empty() && confirmed.deleting.contains(created) {
            continue;
        }
        assert_eq!(present.len(), 1, "{created}: {present:?} of {ids:?}");
        if confirmed.renamed.contains(created) {
            assert_eq!(present, [&renamed]);
        }
        let id = present[0];
        wait_started(api, id).await;
        let rows = api
            .json(
                Method::POST,
                &format!("/instance/{id}/database/query"),
                json!({ "query": "SELECT v FROM marker" }),
            )
            .await
            .unwrap_or_else(|e| panic!("{id} lost its database: {e}"));
        assert_eq!(rows["rows"], json!([[created]]), "{id}");
    }

    let clients = api
        .call(Method::GET, "/clients", None)
        .await
        .expect("clients");
    let client_ids: BTreeSet<&str> = clients
        .as_array()
        .expect("client list")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default())
        .collect();
    for client in &confirmed.clients {
        assert!(client_ids.contains(client.as_str()), "{client} is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_the_server_leaves_whole_objects() {
    let tries: usize = std::env::var("MAUBOT_CRASH_TRIES")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(FAULT_POINTS.len());
    let synapse = tokio::task::spawn_blocking(Synapse::shared)
        .await
        .expect("synapse");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "database: sqlite:maubot.db\n\
             server:\n  unshared_secret: {SECRET}\n\
             plugin_directories:\n  upload: ./plugins\n  load: [./plugins]\n  trash: ./trash\n\
             plugin_databases:\n  sqlite: ./dbs\n\
             homeservers:\n  localhost:\n    url: {url}\n    secret: {REGISTRATION_SECRET}\n\
             python_host:\n  venv: {venv}\n\
             logging:\n  root: {{level: WARNING}}\n",
            url = synapse.base_url(),
            venv = maubot_test_support::python_host_venv().display(),
        ),
    )
    .expect("config");
    let mut confirmed = Confirmed::default();
    // The first bot and the instances' plugin, before any kill.
    {
        let (child, addr, _) = spawn(dir.path(), &[]);
        let mut child = Owned(Some(child));
        let api = Api::login(&addr).await.expect("login");
        let user = synapse
            .register(&unique("crashbot"), "crash-password", false)
            .await
            .expect("user");
        api.json(
            Method::POST,
            "/client/new",
            json!({ "homeserver": synapse.base_url(), "access_token": user.access_token, "sync": false }),
        )
        .await
        .expect("first client");
        confirmed.clients.insert(user.user_id);
        api.call(Method::POST, "/plugins/upload", Some(mbp("storage")))
            .await
            .expect("storage plugin");
        child.kill().expect("kill");
        child.wait().expect("wait");
    }
    for n in 0..tries {
        let point = FAULT_POINTS[n % FAULT_POINTS.len()];
        let env: Vec<(&str, &str)> = point
            .map(|p| ("MAUBOT_FAULT_POINT", p))
            .into_iter()
            .collect();
        let (child, addr, log) = spawn(dir.path(), &env);
        let mut child = Owned(Some(child));
        let api = Api::login(&addr).await.expect("login");
        check(&api, dir.path(), &confirmed).await;
        let mut working = confirmed;
        let task = tokio::spawn(async move {
            let outcome = changes(&api, synapse, n, &mut working).await;
            (working, outcome)
        });
        let log = || log.lock().expect("log").join("\n");
        let (working, outcome) = match point {
            // The server dies at the point, in the middle of a change.
            Some(point) => {
                let joined = tokio::time::timeout(Duration::from_secs(120), task)
                    .await
                    .unwrap_or_else(|_| panic!("try {n}: the changes hang\n{}", log()))
                    .expect("join");
                let status = child.wait().expect("wait");
                assert_eq!(
                    std::os::unix::process::ExitStatusExt::signal(&status),
                    Some(libc::SIGABRT),
                    "try {n}: the server did not die at {point}: {status}\n{}",
                    log()
                );
                (joined.0, Ok(()))
            }
            // Killed at a random moment. The requests go on while the server dies: dropping
            // them first would let the server cancel the work instead.
            None => {
                let kill_after = Duration::from_millis(rand::rng().random_range(0..4000));
                tokio::time::sleep(kill_after).await;
                let finished_first = task.is_finished();
                let _ = child.kill();
                child.wait().expect("wait");
                let (working, outcome) = task.await.expect("join");
                (working, outcome.map_err(|e| (finished_first, e)))
            }
        };
        confirmed = working;
        if let Err((true, err)) = outcome {
            // Refused or failed while the server ran: a bug, not the kill.
            panic!("try {n}: a change failed before the kill: {err}\n{}", log());
        }
    }
    let (child, addr, _) = spawn(dir.path(), &[]);
    let mut child = Owned(Some(child));
    let api = Api::login(&addr).await.expect("login");
    check(&api, dir.path(), &confirmed).await;
    crate::binary::terminate(child.0.take().expect("running"));
}
