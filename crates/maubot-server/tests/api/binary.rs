//! The `maubot` binary: first start without a config, restarts, bad configs.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::json;

/// Everything the server wrote to standard error, collected as it runs.
type Log = Arc<Mutex<Vec<String>>>;

/// The `maubot` binary, run in `dir`, with the caller's `RUST_LOG` left out so that log
/// assertions see the config's levels.
fn maubot(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_maubot"));
    command.current_dir(dir).env_remove("RUST_LOG");
    command
}

/// Runs a command that must exit by itself, like a server refusing its config. Kills it and fails
/// the test if it is still running after 30 s, instead of hanging the suite.
fn output_of_exiting(command: &mut Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn maubot");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("maubot kept running; it should have refused to start");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Starts the server in `dir` on a free port (by environment override) and returns it with the
/// address it reports and its standard error.
pub(crate) fn spawn(dir: &Path, extra_env: &[(&str, &str)]) -> (Child, String, Log) {
    let mut child = maubot(dir)
        .env("MAUBOT_SERVER__PORT", "0")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn maubot");
    let log = Log::default();
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "maubot exited before listening:\n{}",
                log.lock().expect("log").join("\n")
            );
        };
        let addr = line.split("Listening on http://").nth(1).map(str::to_owned);
        log.lock().expect("log").push(line);
        if let Some(addr) = addr {
            break addr;
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().expect("log").push(line);
        }
    });
    (child, addr, log)
}

pub(crate) fn terminate(mut child: Child) -> String {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "maubot exited with {status} after SIGTERM"
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout)
        .expect("stdout");
    stdout
}

/// maubot's default `logging` section: a rotating `./maubot.log` and the console, both in
/// maubot's line format (regression: the handlers were ignored, everything went to stderr).
#[tokio::test]
async fn logging_handlers_of_a_maubot_config_are_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.yaml"),
        "server:\n  unshared_secret: a-secret\n\
         logging:\n  version: 1\n  formatters:\n    colored:\n      (): maubot.lib.color_log.ColorFormatter\n\
         \x20     format: '[%(asctime)s] [%(levelname)s@%(name)s] %(message)s'\n\
         \x20   normal:\n      format: '[%(asctime)s] [%(levelname)s@%(name)s] %(message)s'\n\
         \x20 handlers:\n    file:\n      class: logging.handlers.RotatingFileHandler\n\
         \x20     formatter: normal\n      filename: ./maubot.log\n      maxBytes: 10485760\n      backupCount: 10\n\
         \x20   console:\n      class: logging.StreamHandler\n      formatter: colored\n\
         \x20 loggers:\n    maubot: {level: DEBUG}\n  root:\n    level: INFO\n    handlers: [file, console]\n",
    )
    .expect("config");
    let (child, _, log) = spawn(dir.path(), &[]);
    terminate(child);
    let file = std::fs::read_to_string(dir.path().join("maubot.log")).expect("maubot.log");
    let listening = file
        .lines()
        .find(|l| l.contains("Listening on http://"))
        .unwrap_or_else(|| panic!("no listening line in maubot.log:\n{file}"));
    assert!(listening.starts_with('['), "{listening}");
    assert!(
        listening.contains("] [INFO@maubot.server] Listening on"),
        "{listening}"
    );
    let stderr = log.lock().expect("log").join("\n");
    assert!(
        stderr.contains("[INFO@maubot.server] Listening on"),
        "{stderr}"
    );
}

#[tokio::test]
async fn first_start_writes_a_config_and_later_starts_leave_it_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, addr, _) = spawn(dir.path(), &[]);
    let http = reqwest::Client::new();
    let features = http
        .get(format!("http://{addr}/_matrix/maubot/v1/features"))
        .send()
        .await
        .expect("request");
    assert_eq!(features.status(), StatusCode::OK);
    assert_eq!(
        features.json::<serde_json::Value>().await.expect("json"),
        json!({ "login": true })
    );
    let stdout = terminate(child);

    // The secret is printed once, and it is the one in the new config.
    let config_path = dir.path().join("config.yaml");
    let config = std::fs::read_to_string(&config_path).expect("config written");
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Admin secret (shown only now): "))
        .unwrap_or_else(|| panic!("no secret in stdout:\n{stdout}"));
    assert_eq!(secret.len(), 64);
    assert!(
        !config.contains("mau.crypto"),
        "a new config gets its own pickle key, not maubot's default: {config}"
    );
    assert!(
        config.contains(&format!("unshared_secret: {secret}")),
        "{config}"
    );
    assert!(
        stdout.contains(&config_path.display().to_string()),
        "{stdout}"
    );
    assert!(config.contains("database: \"sqlite:maubot.db\""));
    assert!(dir.path().join("maubot.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&config_path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the config holds the secret; others must not read it"
        );
        // The database holds the bots' access tokens.
        let mode = std::fs::metadata(dir.path().join("maubot.db"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "maubot.db must be private");
    }

    // Second start: the secret works, nothing is printed, the file is untouched even though the
    // environment overrides a key.
    let (child, addr, log) = spawn(
        dir.path(),
        &[
            ("MAUBOT_ADMINS__DAVE", "plaintext-pw"),
            ("RUST_LOG", "debug"),
        ],
    );
    let login = http
        .post(format!("http://{addr}/_matrix/maubot/v1/auth/login"))
        .body(json!({ "secret": secret }).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(login.status(), StatusCode::OK);
    let login = http
        .post(format!("http://{addr}/_matrix/maubot/v1/auth/login"))
        .body(json!({ "username": "dave", "password": "plaintext-pw" }).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(login.status(), StatusCode::OK, "admin from the environment");
    let token = login.json::<serde_json::Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let version = http
        .get(format!(
            "http://{addr}/_matrix/maubot/v1/version?access_token={token}"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(version.status(), StatusCode::OK);
    let stdout = terminate(child);

    // One access log line per request, and no secret in the log, even at debug level.
    let log = log.lock().expect("log").join("\n");
    assert!(
        log.contains(
            "[INFO@maubot.server.access] 127.0.0.1 \"POST /_matrix/maubot/v1/auth/login 200"
        ),
        "{log}"
    );
    assert!(
        log.contains("\"GET /_matrix/maubot/v1/version 200"),
        "{log}"
    );
    for secret in [secret, "plaintext-pw", token.as_str()] {
        assert!(!log.contains(secret), "`{secret}` was logged:\n{log}");
    }
    assert!(log.contains("admins.dave is a plaintext password"), "{log}");
    assert!(!stdout.contains(secret), "the secret was printed again");
    assert_eq!(
        std::fs::read_to_string(&config_path).expect("config"),
        config,
        "the config was rewritten"
    );
}

#[test]
fn a_bad_config_is_one_line_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("server:\n  port: seventy\n", "`server.port`"),
        ("database: mysql://localhost/maubot\n", "`database`"),
        ("admins: [alice]\n", "`admins`"),
        ("server: {port: 1\n", "not valid YAML"),
    ];
    for (yaml, expected) in cases {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).expect("write");
        let output = output_of_exiting(maubot(dir.path()).arg("-c").arg(&path));
        assert_eq!(output.status.code(), Some(2), "{yaml}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "{yaml} → {stderr}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("config"),
            yaml,
            "the bad config was rewritten"
        );
    }
}

#[test]
fn unknown_keys_warn_and_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.yaml"),
        "server:\n  hostname: 127.0.0.1\n  colour: blue\n",
    )
    .expect("write");
    let (child, _, log) = spawn(dir.path(), &[]);
    terminate(child);
    let lines = log.lock().expect("log");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARNING@maubot.server") && l.contains("server.colour")),
        "{lines:?}"
    );
}

#[test]
fn hash_password_prints_a_usable_hash() {
    let mut child = maubot(&std::env::temp_dir())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"s3cret\n").expect("write");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).expect("utf-8");
    assert!(bcrypt::verify("s3cret", hash.trim()).expect("a bcrypt hash"));
}

#[test]
fn an_unreachable_database_is_one_line_without_the_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = output_of_exiting(maubot(dir.path()).env("MAUBOT_SERVER__PORT", "0").env(
        "MAUBOT_DATABASE",
        "postgres://maubot:hunter2@127.0.0.1:1/maubot",
    ));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        error.contains(
            "cannot open the postgres database postgres://maubot:[redacted]@127.0.0.1:1/maubot"
        ),
        "{error}"
    );
    assert!(error.contains("refused"), "the cause is named: {error}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
