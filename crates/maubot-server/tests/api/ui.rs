//! The web UI: its session (a cookie the API accepts only from the server's own origin), and the
//! whole operator's flow end to end in headless Chromium against the real server, Synapse and
//! the Python plugin host, with a screenshot of every main view at desktop and phone width under
//! `target/ui-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::FutureExt as _;
use maubot_test_support::browser::{self, Browser};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::json;

use crate::clients::unique;
use crate::plugins::{Room, mbp, python_server};
use crate::support::{ALICE_PASSWORD, Backend, TestServer, assert_error, decode};

fn ui(server: &TestServer, path: &str) -> String {
    format!("http://{}/_matrix/maubot/{path}", server.addr())
}

/// Logs alice in through the UI's form; the session cookie (`name=value`).
async fn ui_login(server: &TestServer, http: &reqwest::Client) -> String {
    let response = http
        .post(ui(server, "login"))
        .header(ORIGIN, format!("http://{}", server.addr()))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("username=alice&password={ALICE_PASSWORD}"))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/_matrix/maubot"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    cookie.split(';').next().expect("name=value").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_works_only_from_the_servers_own_origin() {
    let server = TestServer::start(Backend::Sqlite, "ui_session")
        .await
        .expect("sqlite");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let own = format!("http://{}", server.addr());

    // Pages need a session; a wrong password shows the API's message.
    let answer = http.get(ui(&server, "")).send().await.expect("page");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/_matrix/maubot/login");
    let answer = http
        .post(ui(&server, "login"))
        .header(ORIGIN, &own)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("username=alice&password=wrong")
        .send()
        .await
        .expect("login");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .text()
            .await
            .expect("page")
            .contains("Invalid username or password")
    );
    let cookie = ui_login(&server, &http).await;

    // The API takes the cookie for reads from anywhere, and for changes from its own origin only.
    let (status, clients) = server
        .send(
            server
                .http
                .get(server.api("/clients"))
                .header(COOKIE, &cookie),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{clients}");
    let change = |origin: Option<&str>| {
        let mut request = server
            .http
            .post(server.api("/client/new"))
            .header(COOKIE, &cookie)
            .body("{}");
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        server.send(request, None)
    };
    assert_error(
        &change(Some("http://evil.example")).await,
        StatusCode::FORBIDDEN,
        "cross_origin_request",
    );
    assert_error(
        &change(None).await,
        StatusCode::FORBIDDEN,
        "cross_origin_request",
    );
    // From its own origin the request gets through to the handler (which wants more).
    assert_error(
        &change(Some(&own)).await,
        StatusCode::BAD_REQUEST,
        "invalid_request_body",
    );

    // Form posts to the UI check the origin too, and logging out ends the cookie.
    let answer = http
        .post(ui(&server, "logout"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .expect("logout");
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let answer = http
        .post(ui(&server, "logout"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, &own)
        .send()
        .await
        .expect("logout");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let cleared = answer.headers()[SET_COOKIE].to_str().expect("cookie");
    assert!(
        cleared.starts_with("maubot_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // Every page says what may run on it.
    let answer = http.get(ui(&server, "login")).send().await.expect("page");
    let csp = answer.headers()["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let (status, _) = decode(
        http.get(format!("http://{}/_matrix/maubot", server.addr()))
            .send()
            .await
            .expect("bare path"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    server.stop().await;
}

/// An 8×8 PNG.
const AVATAR_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x08, 0x06, 0x00, 0x00, 0x00, 0xc4, 0x0f, 0xbe,
    0x8b, 0x00, 0x00, 0x00, 0x12, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x38, 0xa1, 0x11, 0xf5,
    0x1f, 0x1f, 0x66, 0x18, 0x19, 0x0a, 0x00, 0x53, 0x8d, 0x92, 0x41, 0xee, 0x8f, 0xbd, 0xd7, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The UI follows `server.ui_base_path`, also at the root, and its cookie reaches the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_lives_where_the_config_says() {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for (base, login, cookie_path) in [
        ("/admin", "/admin/login", "Path=/;"),
        ("/", "/login", "Path=/;"),
    ] {
        let server = TestServer::start_with(Backend::Sqlite, "ui_base", |config| {
            config.server.ui_base_path = base.into();
        })
        .await
        .expect("sqlite");
        let root = format!("http://{}", server.addr());
        let answer = http
            .get(format!("{root}{base}"))
            .send()
            .await
            .expect("page");
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{base}");
        let answer = http
            .get(format!("{root}{login}"))
            .send()
            .await
            .expect("page");
        assert_eq!(answer.status(), StatusCode::OK, "{base}");
        let answer = http
            .post(format!("{root}{login}"))
            .header(ORIGIN, &root)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("username=alice&password={ALICE_PASSWORD}"))
            .send()
            .await
            .expect("login");
        let cookie = answer.headers()[SET_COOKIE].to_str().expect("cookie");
        assert!(cookie.contains(cookie_path), "{cookie}");
        // The API is where it always is.
        let (status, _) = server
            .get("/version", Some(&server.root_token().await))
            .await;
        assert_eq!(status, StatusCode::OK);
        server.stop().await;
    }
}

/// Where the screenshots go.
fn screenshots() -> PathBuf {
    maubot_test_support::target_dir().join("ui-screenshots")
}

/// The steps of the flow, with the browser and the page.
struct Flow<'a> {
    server: &'a TestServer,
    browser: &'a Browser,
}

impl Flow<'_> {
    async fn open(&self, path: &str) {
        self.browser
            .goto(&ui(self.server, path))
            .await
            .expect("page");
    }

    async fn sees(&self, text: &str) {
        self.browser
            .wait_for_text(text, Duration::from_secs(60))
            .await
            .expect("text on the page");
    }

    /// A screenshot of the whole page at desktop and at phone width.
    async fn shoot(&self, name: &str) {
        let dir = screenshots();
        for (size, suffix) in [(browser::DESKTOP, "desktop"), (browser::PHONE, "phone")] {
            self.browser.resize(size).await.expect("resize");
            let height = self
                .browser
                .execute("return document.documentElement.scrollHeight;", json!([]))
                .await
                .expect("height")
                .as_u64()
                .unwrap_or(u64::from(size.1));
            let height = u32::try_from(height).unwrap_or(size.1).clamp(size.1, 3000);
            // The window's height is the page's, plus the browser's own frame.
            self.browser
                .resize((size.0, height + 100))
                .await
                .expect("resize");
            self.browser
                .screenshot(&dir, &format!("{name}-{suffix}"))
                .await
                .expect("screenshot");
        }
        self.browser.resize(browser::DESKTOP).await.expect("resize");
    }

    /// Waits (up to 60 s) until `script` returns true on the page.
    async fn wait_until(&self, what: &str, script: &str) {
        for _ in 0..300 {
            if self
                .browser
                .execute(script, json!([]))
                .await
                .expect("script")
                == json!(true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("never: {what}");
    }

    /// The text of the element matching `css` once `check` accepts it. A page that was just
    /// asked for may still be the old one, whose elements go stale under the read.
    async fn text_when(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..150 {
            if let Ok(text) = self.browser.text(css).await {
                if check(&text) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{css} never showed what was expected; last: {last:?}");
    }

    async fn submit(&self, css: &str) {
        self.browser.click(css).await.expect("click");
    }

    async fn fill(&self, css: &str, text: &str) {
        self.browser.type_into(css, text).await.expect("type");
    }

    /// Picks `value` in the `<select>` matching `css`.
    async fn select(&self, css: &str, value: &str) {
        let picked = self
            .browser
            .execute(
                "const s = document.querySelector(arguments[0]); s.value = arguments[1]; return s.value;",
                json!([css, value]),
            )
            .await
            .expect("select");
        assert_eq!(picked, value, "{css} has no option {value}");
    }

    /// Uploads a test plugin through the page's file picker.
    async fn upload(&self, dir: &std::path::Path, plugin: &str) {
        let path = dir.join(format!("{plugin}.mbp"));
        std::fs::write(&path, mbp(plugin)).expect("write mbp");
        let input = self
            .browser
            .find("[data-upload-input]")
            .await
            .expect("file input");
        self.browser
            .send_keys(&input, &path.display().to_string())
            .await
            .expect("pick the file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_everything_from_the_web_ui() {
    crate::logs::capture_logs();
    let (server, synapse) = python_server("web_ui").await;
    let browser = Browser::start()
        .await
        .expect("headless Chromium (scripts/test installs it)");
    let outcome = std::panic::AssertUnwindSafe(async {
        let flow = Flow {
            server: &server,
            browser: &browser,
        };
        operator_flow(&flow, synapse).await;
        let console = browser.console().await.expect("console");
        // Script errors and refused content; answers with an error status are expected.
        let problems: Vec<_> = console
            .iter()
            .filter(|(level, message)| {
                (level == "SEVERE" && !message.contains("Failed to load resource"))
                    || message.contains("Content Security Policy")
            })
            .collect();
        assert!(problems.is_empty(), "browser console: {problems:?}");
    })
    .catch_unwind()
    .await;
    browser.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    server.stop().await;
}

async fn operator_flow(flow: &Flow<'_>, synapse: &'static maubot_test_support::Synapse) {
    let files = tempfile::tempdir().expect("temp dir");
    let token = flow.server.root_token().await;

    // Log in.
    flow.open("").await;
    flow.sees("Log in with the server's secret").await;
    flow.shoot("login").await;
    flow.fill("#username", "alice").await;
    flow.fill("#password", ALICE_PASSWORD).await;
    flow.submit("button[type=submit]").await;
    flow.sees("No bots yet").await;
    flow.shoot("overview-empty").await;
    // The session outlives a reload.
    flow.open("").await;
    flow.sees("No bots yet").await;

    // Register a bot on the test Synapse.
    flow.open("new/bot").await;
    flow.shoot("bot-new").await;
    let username = unique("uibot");
    flow.select("#register-server", "localhost").await;
    flow.fill("#register-username", &username).await;
    flow.fill("#register-password", "bot-password").await;
    flow.submit("form:has(#register-server) button[type=submit]")
        .await;
    flow.sees("Created.").await;
    let bot = format!("@{username}:localhost");
    flow.sees(&bot).await;
    crate::clients::wait_for_client(flow.server, &token, &bot, "sync_ok", |c| {
        c["sync_ok"] == true
    })
    .await;
    let bot_path = format!("bots/{}", bot.replace('@', "%40").replace(':', "%3A"));
    flow.open(&bot_path).await;
    flow.sees("syncing").await;
    flow.sees("Fingerprint").await;
    // An avatar, uploaded as the bot through the API's proxy, then saved.
    let avatar = files.path().join("avatar.png");
    std::fs::write(&avatar, AVATAR_PNG).expect("write png");
    let picker = flow
        .browser
        .find("#avatar-file")
        .await
        .expect("avatar picker");
    flow.browser
        .send_keys(&picker, &avatar.display().to_string())
        .await
        .expect("pick the avatar");
    flow.sees("Uploaded. Save to make it the bot's avatar.")
        .await;
    flow.submit("form:has(#displayname) button[type=submit]")
        .await;
    flow.sees("Saved.").await;
    let bot_view = crate::clients::wait_for_client(flow.server, &token, &bot, "an avatar", |c| {
        c["remote_avatar_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("mxc://"))
    })
    .await;
    assert_eq!(bot_view["avatar_url"], bot_view["remote_avatar_url"]);
    flow.open(&bot_path).await;
    flow.wait_until(
        "the avatar shows",
        "const img = document.querySelector('img.avatar'); return !!img && img.complete && img.naturalWidth > 0;",
    )
    .await;
    // Cross-signing: a recovery key, shown once, then verifying with it (and with a wrong one).
    flow.submit("form[action$='/recovery-key'] button").await;
    flow.sees("The recovery key, shown only now").await;
    let recovery_key = flow.browser.text("code.secret").await.expect("the key");
    flow.fill("#recovery_key", "EsT1 not a key").await;
    flow.submit("form[action$='/verify'] button").await;
    flow.sees("Internal crypto error").await;
    flow.fill("#recovery_key", &recovery_key).await;
    flow.submit("form[action$='/verify'] button").await;
    flow.sees("The device is verified.").await;
    flow.sees("verified").await;
    flow.shoot("bot").await;
    flow.open("bots").await;
    flow.sees(&bot).await;
    flow.shoot("bots").await;

    // Upload the test plugins.
    flow.open("plugins").await;
    flow.sees("No plugins yet").await;
    flow.upload(files.path(), "configured").await;
    flow.sees("Uploaded.").await;
    flow.sees("mbrs_test_configured").await;
    flow.sees("AGPL-3.0-or-later").await;
    flow.shoot("plugin").await;
    flow.open("plugins").await;
    flow.upload(files.path(), "storage").await;
    flow.sees("xyz.maubot-rs.test.storage").await;
    flow.sees("asyncpg").await;
    // Uploading it again is a conflict the page explains.
    flow.open("plugins").await;
    flow.upload(files.path(), "storage").await;
    flow.sees("A plugin with the same ID as the uploaded plugin already exists")
        .await;
    flow.shoot("plugins").await;
    flow.submit(".upload-status button").await;
    flow.sees("Uploaded.").await;
    flow.submit("form[action$='/reload'] button").await;
    flow.sees("Reloaded.").await;

    // Create an instance of the configured plugin.
    flow.open("new/instance?plugin=xyz.maubot-rs.test.configured")
        .await;
    flow.fill("#id", "greeter").await;
    flow.select("#bot", &bot).await;
    flow.shoot("instance-new").await;
    flow.submit("form button[type=submit].primary").await;
    flow.sees("Created.").await;
    flow.sees("started").await;

    // A bad config shows its error at its line and is not saved; a good one takes effect.
    let room = Room::with_bot(synapse, &bot).await;
    room.expect_reply(&bot, "!greeting", "Hello").await;
    flow.open("instances/greeter").await;
    flow.sees("greeting: Hello").await;
    flow.fill("#config", "greeting: fine\nbroken: [unclosed\nmore: x\n")
        .await;
    flow.submit("form[action$='/config'] button[type=submit]")
        .await;
    flow.sees("The config is not valid YAML").await;
    let error_line = flow
        .browser
        .execute(
            "return document.querySelector('.gutter .err')?.textContent ?? '';",
            json!([]),
        )
        .await
        .expect("gutter");
    assert!(
        matches!(error_line.as_str(), Some("2" | "3" | "4")),
        "error line {error_line}"
    );
    flow.shoot("instance-config-error").await;
    let (_, stored) = flow.server.get("/instance/greeter", Some(&token)).await;
    assert!(
        !stored["config"]
            .as_str()
            .unwrap_or_default()
            .contains("broken"),
        "{stored}"
    );
    flow.fill("#config", "greeting: Hi from the web UI\n").await;
    flow.submit("form[action$='/config'] button[type=submit]")
        .await;
    flow.sees("Saved.").await;
    room.expect_reply(&bot, "!greeting", "Hi from the web UI")
        .await;
    flow.open("instances/greeter").await;
    flow.sees("Instance started").await;
    flow.shoot("instance").await;

    // A log line arrives live.
    flow.open("logs?logger=maubot.instance.greeter").await;
    flow.sees("Live.").await;
    let (status, _) =
        crate::plugins::put_instance(flow.server, &token, "greeter", json!({ "started": false }))
            .await;
    assert_eq!(status, StatusCode::OK);
    flow.sees("Instance stopped").await;
    crate::plugins::put_instance(flow.server, &token, "greeter", json!({ "started": true })).await;
    flow.shoot("logs").await;

    // Browse a database: an instance of the storage plugin, given a note.
    flow.open("new/instance?plugin=xyz.maubot-rs.test.storage")
        .await;
    flow.fill("#id", "notes").await;
    flow.select("#bot", &bot).await;
    flow.submit("form button[type=submit].primary").await;
    flow.sees("Created.").await;
    room.expect_reply(&bot, "!remember a note from the test", "noted")
        .await;
    room.expect_reply(&bot, "!remember another note", "noted")
        .await;
    flow.open("instances/notes").await;
    flow.submit("a[href$='/database']").await;
    flow.sees("Tables").await;
    flow.submit("nav.tables a[href$='table=note']").await;
    flow.sees("a note from the test").await;
    // Sorted by text, descending: "another note" comes after "a note..." ascending.
    flow.submit("th a[href*='order=text']").await;
    flow.submit("th a[href*='order=text%3Adesc']").await;
    flow.text_when("table.rows tbody tr:first-child", |row| {
        row.contains("another note")
    })
    .await;
    flow.fill("#query", "SELECT count(*) AS notes FROM note")
        .await;
    flow.submit("form[action$='/database'] button[type=submit]")
        .await;
    flow.sees("notes").await;
    flow.text_when("table.rows tbody td", |cell| cell == "2")
        .await;
    flow.shoot("database").await;
    // Renaming keeps the instance and its data.
    flow.open("instances/notes").await;
    flow.fill("#new-id", "memo").await;
    flow.submit("form[action$='/settings'] button").await;
    flow.sees("Saved.").await;
    assert!(
        flow.browser
            .url()
            .await
            .expect("url")
            .contains("/instances/memo")
    );
    room.expect_reply(&bot, "!recall", "latest: another note")
        .await;

    // An instance whose plugin fails to start: its page says why, and the overview lists it
    // first.
    flow.open("plugins").await;
    flow.upload(files.path(), "failstart").await;
    flow.sees("xyz.maubot-rs.test.failstart").await;
    flow.open("new/instance?plugin=xyz.maubot-rs.test.failstart")
        .await;
    flow.fill("#id", "broken").await;
    flow.select("#bot", &bot).await;
    flow.submit("form button[type=submit].primary").await;
    flow.sees("deliberate failure in start").await;
    flow.sees("Why it does not run").await;
    flow.shoot("instance-failed").await;

    // The overview, with things running and one failed.
    flow.open("").await;
    flow.sees("greeter").await;
    let first = flow
        .browser
        .text("#overview-instances tbody tr:first-child")
        .await
        .expect("first instance");
    assert!(
        first.contains("broken") && first.contains("failed"),
        "{first}"
    );
    flow.shoot("overview").await;
    flow.browser.dark_mode(true).await.expect("dark mode");
    flow.shoot("overview-dark").await;
    flow.open("instances/greeter").await;
    flow.shoot("instance-dark").await;
    flow.browser.dark_mode(false).await.expect("light mode");
    flow.open("instances").await;
    flow.shoot("instances").await;

    // Delete everything: the bot is used by instances, which the page says; then in order.
    flow.open(&format!(
        "bots/{}/delete",
        bot.replace('@', "%40").replace(':', "%3A")
    ))
    .await;
    flow.sees("This bot is used by instances broken, greeter, memo")
        .await;
    flow.shoot("bot-delete-blocked").await;
    for instance in ["greeter", "memo", "broken"] {
        flow.open(&format!("instances/{instance}/delete")).await;
        flow.submit("button.danger").await;
        flow.sees("Deleted.").await;
    }
    for plugin in [
        "xyz.maubot-rs.test.configured",
        "xyz.maubot-rs.test.storage",
        "xyz.maubot-rs.test.failstart",
    ] {
        flow.open(&format!("plugins/{plugin}/delete")).await;
        flow.submit("button.danger").await;
        flow.sees("Deleted.").await;
    }
    flow.open(&format!(
        "bots/{}/delete",
        bot.replace('@', "%40").replace(':', "%3A")
    ))
    .await;
    flow.submit("button.danger").await;
    flow.sees("Deleted.").await;
    for list in ["/clients", "/plugins", "/instances"] {
        assert_eq!(
            flow.server.get(list, Some(&token)).await.1,
            json!([]),
            "{list}"
        );
    }

    // Log out: the pages want a login again.
    flow.open("").await;
    flow.submit(".logout button").await;
    flow.sees("Log in with the server's secret").await;
    flow.open("bots").await;
    assert!(flow.browser.url().await.expect("url").ends_with("/login"));
}
