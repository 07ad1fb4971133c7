//! What clients without a token can do to the server: huge bodies, requests that never finish,
//! too many connections, and password guesses. Each is bounded and answered.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Backend, SECRET, TestServer, assert_error};

/// The peak resident memory of a process, in KiB (`VmHWM`).
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Sends `body` (any size) as a chunked POST and returns the status line of the answer.
fn post_chunked(addr: &str, path: &str, token: Option<&str>, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .expect("send head");
    // The server answers and closes as soon as the limit is passed: later writes may fail.
    for chunk in body.chunks(64 * 1024) {
        if write!(stream, "{:x}\r\n", chunk.len()).is_err()
            || stream.write_all(chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_owned()
}

/// Regression: a 50 MB JSON array to `/auth/login` grew the server by 1.85 GB before it was
/// answered 400 (it was parsed whole into a `serde_json::Value`).
#[tokio::test]
async fn huge_and_hostile_bodies_cost_the_server_little_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.yaml"),
        format!("server:\n  unshared_secret: {SECRET}\n"),
    )
    .expect("config");
    let (child, addr, _) = crate::binary::spawn(dir.path(), &[]);
    let pid = child.id();
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("http://{addr}/_matrix/maubot/v1/auth/login"))
        .body(json!({ "secret": SECRET }).to_string())
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token").to_owned();
    let before = peak_kib(pid);

    let array = {
        let mut array = b"[1".to_vec();
        array.extend(std::iter::repeat_n(b",1".as_slice(), 25_000_000).flatten());
        array.push(b']');
        array
    };
    let answers = std::thread::scope(|scope| {
        let logins: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| post_chunked(&addr, "/_matrix/maubot/v1/auth/login", None, &array))
            })
            .collect();
        logins
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect::<Vec<_>>()
    });
    for answer in answers {
        assert!(answer.contains(" 413"), "{answer}");
    }
    // Just under the JSON limit of routes behind a token: parsed, and refused as not an object,
    // without being built in memory.
    let nearly_a_mebibyte = &array[..1024 * 1024 - 2];
    let mut body = nearly_a_mebibyte.to_vec();
    body.push(b']');
    for _ in 0..20 {
        let answer = post_chunked(&addr, "/_matrix/maubot/v1/client/new", Some(&token), &body);
        assert!(answer.contains(" 400"), "{answer}");
    }
    let grown_mib = peak_kib(pid).saturating_sub(before) / 1024;
    crate::binary::terminate(child);
    assert!(
        grown_mib < 32,
        "the server's peak memory grew by {grown_mib} MiB"
    );
}

async fn server_with_timeouts(test: &str, max_connections: usize) -> TestServer {
    TestServer::start_with(Backend::Sqlite, test, |config| {
        config.server.request_header_timeout = 1.0;
        config.server.request_body_timeout = 1.0;
        config.server.max_connections = max_connections;
    })
    .await
    .expect("sqlite")
}

/// Waits until the server closes `stream`, and returns how long that took.
fn time_until_closed(mut stream: TcpStream) -> Duration {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                return started.elapsed();
            }
            Err(err) => panic!("the server kept the connection open: {err}"),
        }
    }
}

/// Regression: a connection that sent half a request line stayed open for good, and 20,000 of
/// them exhausted the server's descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_idle_connections_are_closed() {
    let server = server_with_timeouts("half_sent", 512).await;
    let addr = server.addr();
    let waited = tokio::task::spawn_blocking(move || {
        // Half a request line.
        let mut half = TcpStream::connect(addr).expect("connect");
        half.write_all(b"GET /_matrix/maubot/v1/hea").expect("send");
        let half = time_until_closed(half);

        // A finished request on a keep-alive connection, then nothing.
        let mut idle = TcpStream::connect(addr).expect("connect");
        idle.write_all(b"GET /_matrix/maubot/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let idle = time_until_closed(idle);

        // Headers, then a body that stops halfway: 408.
        let mut stalled = TcpStream::connect(addr).expect("connect");
        stalled
            .write_all(
                b"POST /_matrix/maubot/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"secret\":",
            )
            .expect("send");
        stalled
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = stalled.read_to_string(&mut answer);
        (half, idle, answer)
    })
    .await
    .expect("client");
    let (half, idle, stalled) = waited;
    assert!(half < Duration::from_secs(5), "half a request: {half:?}");
    assert!(
        idle < Duration::from_secs(5),
        "an idle connection: {idle:?}"
    );
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    assert!(stalled.contains("request_timeout"), "{stalled}");
    server.stop().await;
}

/// Connections over `server.max_connections` wait until one closes, and then are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_their_turn() {
    let server = server_with_timeouts("connection_cap", 2).await;
    let addr = server.addr();
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream
                .write_all(b"GET /_matrix/maubot/v1/he")
                .expect("send");
            stream
        })
        .collect();
    // Accepted only once a slot is free: the holders are cut off by the 1 s header timeout.
    let started = Instant::now();
    let (status, _) = server.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "served at once although both connections were taken: {:?}",
        started.elapsed()
    );
    holders.clear();
    server.stop().await;
}

/// Regression: bcrypt ran for every password login at once, so 16 parallel guesses slowed
/// `/health` to over a second. One check runs at a time; more than 8 waiting are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guesses_queue_and_overflow_without_starving_the_server() {
    let hash = bcrypt::hash("the real password", 12).expect("hash");
    let server = TestServer::start_with(Backend::Sqlite, "login_flood", |config| {
        let password = serde_json::from_value(json!(hash)).expect("a bcrypt hash");
        config.admins.insert("dave".into(), password);
    })
    .await
    .expect("sqlite");
    let guesses: Vec<_> = (0..24)
        .map(|i| {
            let http = server.http.clone();
            let url = server.api("/auth/login");
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .body(
                        json!({ "username": "dave", "password": format!("guess {i}") }).to_string(),
                    )
                    .send()
                    .await
                    .expect("login");
                let status = response.status();
                (
                    status,
                    response.json::<serde_json::Value>().await.expect("json"),
                )
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, _) = server.get("/health", None).await;
    let health = started.elapsed();
    let mut refused = 0;
    for guess in guesses {
        let answer = guess.await.expect("task");
        if answer.0 == StatusCode::TOO_MANY_REQUESTS {
            assert_error(
                &answer,
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_login_attempts",
            );
            refused += 1;
        } else {
            assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_auth");
        }
    }
    assert_eq!(status, StatusCode::OK);
    assert!(
        health < Duration::from_millis(500),
        "/health took {health:?}"
    );
    assert!(refused >= 10, "only {refused} of 24 guesses were refused");
    // The real password still works once the flood is over.
    let (status, body) = server
        .post_json(
            "/auth/login",
            None,
            json!({ "username": "dave", "password": "the real password" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}
