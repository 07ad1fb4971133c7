//! The plugin boundary, tried from the inside: a hostile test plugin (`tests/plugins/hostile`)
//! running in the real Python plugin host attempts every crossing a security review found, and
//! each must be refused, logged, and leave nothing changed.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::{syncing_bot, unique};
use crate::plugins::{Room, create_instance, put_instance, python_server, upload_plugin};

const HOSTILE: &str = "xyz.maubot-rs.test.hostile";
const STORAGE: &str = "xyz.maubot-rs.test.storage";

/// The first regular file below `dir`.
fn some_file_below(dir: &Path) -> PathBuf {
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                return path;
            }
        }
    }
    panic!("no file below {}", dir.display());
}

/// Whether this kernel confines processes with Landlock (the file-system part of the sandbox).
fn landlock_available() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .map(|lsms| lsms.split(',').any(|l| l.trim() == "landlock"))
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_plugin_is_refused_at_every_boundary() {
    crate::logs::capture_logs();
    let (server, synapse) = python_server("hostile_plugin").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let (victim_bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    let (mut log, _) = crate::logs::authenticated(&server, "?logger=maubot").await;

    // The victim: another plugin's instance, with a database and a config of its own.
    let storage = upload_plugin(&server, &token, "storage").await;
    let victim = unique("victim");
    let victim_config = "owner: the victim\n";
    let (status, body) = put_instance(
        &server,
        &token,
        &victim,
        json!({ "type": STORAGE, "primary_user": victim_bot, "config": victim_config }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let dir = server.dir();
    std::fs::write(
        dir.join("config.yaml"),
        "server:\n  unshared_secret: hunter2\n",
    )
    .expect("a config file");
    // Bots keep their keys in the main database now, but a server upgraded from an older
    // version still has its per-bot store folders, which hold keys until they are imported.
    let legacy_store = dir.join("crypto-stores").join("legacy-bot");
    std::fs::create_dir_all(&legacy_store).expect("a legacy store folder");
    std::fs::write(legacy_store.join("matrix-sdk-crypto.sqlite3"), "olm keys")
        .expect("a legacy store file");
    let store = some_file_below(&dir.join("crypto-stores"));
    let archive = storage["path"].as_str().expect("archive path").to_owned();
    let victim_db = dir.join("dbs").join(format!("{victim}.db"));
    assert!(victim_db.exists(), "the victim's database");
    let show = |path: &Path| path.display().to_string();
    let hostile_config = json!({
        "server_pid": std::process::id(),
        "victim_instance": victim,
        "forbidden_reads": [
            show(&dir.join("config.yaml")),
            show(&dir.join("maubot.db")),
            show(&store),
            archive,
            show(&victim_db),
        ],
        "forbidden_writes": [archive, show(&victim_db), show(&dir.join("maubot.db"))],
        "forbidden_listings": [
            show(dir),
            show(&dir.join("crypto-stores")),
            show(&dir.join("plugins")),
            show(&dir.join("dbs")),
        ],
    });
    upload_plugin(&server, &token, "hostile").await;
    let hostile = unique("hostile");
    create_instance(&server, &token, &hostile, HOSTILE, &bot).await;
    // YAML is a superset of JSON.
    let (status, body) = put_instance(
        &server,
        &token,
        &hostile,
        json!({ "config": hostile_config.to_string() }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["started"], true, "{body}");

    let reply = room.expect_reply(&bot, "!attack", "").await;
    let report = reply["content"]["body"].as_str().unwrap_or_default();
    eprintln!("The hostile plugin's report:\n{report}");
    let lines: Vec<&str> = report
        .lines()
        .filter(|l| l.contains(": refused") || l.contains(": BREACH"))
        .collect();
    assert!(lines.len() >= 30, "too few attempts reported:\n{report}");
    let landlock = landlock_available();
    for line in &lines {
        let file_access = line.starts_with("read ")
            || line.starts_with("write ")
            || line.starts_with("list ")
            || line.starts_with("signal ");
        if file_access && !landlock {
            eprintln!("note: no Landlock on this kernel, not checked: {line}");
            continue;
        }
        assert!(
            line.contains(": refused"),
            "{line}\n\nthe whole report:\n{report}"
        );
    }

    // What the plugin may do still works: its bot (not logged out), its database, its home.
    let own = room.say("!own").await;
    let own = room
        .message_from(&bot, "the answer to !own", |e| {
            e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == own.as_str()
        })
        .await;
    let own = own["content"]["body"].as_str().unwrap_or_default();
    assert!(own.contains(&format!("own: {bot} rows=1 ")), "{own}");
    // Forked by the zygote, not started by the server itself.
    assert!(
        !own.ends_with(&format!("parent={}", std::process::id())),
        "{own}"
    );

    // Nothing changed: the victim's config, the victim's bot.
    let (_, instance) = server
        .get(&format!("/instance/{victim}"), Some(&token))
        .await;
    assert_eq!(instance["config"], victim_config, "{instance}");
    let (status, whoami) = server
        .send(
            server.http.get(server.api(&format!(
                "/proxy/{victim_bot}/_matrix/client/v3/account/whoami"
            ))),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    assert_eq!(whoami["user_id"], victim_bot.as_str());
    for client in [&bot, &victim_bot] {
        let (_, view) = server.get(&format!("/client/{client}"), Some(&token)).await;
        assert_eq!(view["enabled"], true, "{view}");
    }

    // Logged: the refusals under maubot.security, and the forged record under the instance.
    let security = crate::logs::record_where(&mut log, |r| {
        r["name"] == "maubot.security" && r["what"] == "matrix" && r["plugin"] == HOSTILE
    })
    .await;
    assert_eq!(security["levelname"], "WARNING", "{security}");
    let forged = crate::logs::record_where(&mut log, |r: &Value| {
        r["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("hostile: forged"))
    })
    .await;
    assert_eq!(
        forged["name"],
        format!("maubot.instance.{hostile}"),
        "{forged}"
    );
    assert_eq!(forged["python_logger"], "maubot.server", "{forged}");
    server.stop().await;
}
