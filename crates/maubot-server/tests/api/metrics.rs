//! Prometheus metrics: off by default; when on, served on their own listener, with bots and
//! instances by state, each bot's syncs, each instance's events, the workers, and the API's
//! requests.

use std::time::Duration;

use crate::clients::server_with_synapse_and;
use crate::plugins::{ECHO, echo_bot};
use crate::support::{Backend, TestServer};

async fn scrape(server: &TestServer) -> String {
    let addr = server.metrics_addr().expect("metrics are on");
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.expect("body")
}

/// The value of the sample `series` (name and labels, as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default() {
    let server = TestServer::start(Backend::Sqlite, "metrics_off")
        .await
        .expect("sqlite");
    assert_eq!(server.metrics_addr(), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_bots_instances_events_workers_and_requests() {
    let (server, synapse) = server_with_synapse_and(Backend::Sqlite, "metrics_on", |config| {
        config.metrics.enabled = true;
        config.metrics.port = 0;
    })
    .await
    .expect("sqlite");
    let (_, bot, _room) = echo_bot(&server, synapse, "metrics-echo").await;
    assert_eq!(
        server.get("/instances", None).await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );

    // The handled count follows the answer; give the counters a moment.
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&server).await;
        if sample(
            &text,
            "maubot_instance_events_handled_total{instance=\"metrics-echo\"}",
        )
        .is_some_and(|n| n >= 1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = format!("client=\"{bot}\"");
    for (series, at_least) in [
        ("maubot_bots{state=\"syncing\"}".to_owned(), 1.0),
        (format!("maubot_bot_sync_ok{{{client}}}"), 1.0),
        (
            format!("maubot_bot_syncs_total{{{client},outcome=\"ok\"}}"),
            1.0,
        ),
        (format!("maubot_bot_sync_seconds_count{{{client}}}"), 1.0),
        ("maubot_instances{state=\"running\"}".to_owned(), 1.0),
        (
            "maubot_instance_events_delivered_total{instance=\"metrics-echo\"}".to_owned(),
            1.0,
        ),
        (
            "maubot_instance_events_handled_total{instance=\"metrics-echo\"}".to_owned(),
            1.0,
        ),
        (
            "maubot_instance_events_dropped_total{instance=\"metrics-echo\"}".to_owned(),
            0.0,
        ),
        (
            "maubot_instance_handler_errors_total{instance=\"metrics-echo\"}".to_owned(),
            0.0,
        ),
    ] {
        let value = sample(&text, &series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        assert!(value >= at_least, "{series} = {value}\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            "maubot_instance_events_dropped_total{instance=\"metrics-echo\"}"
        ),
        Some(0.0)
    );
    let worker = text
        .lines()
        .find(|l| l.starts_with(&format!("maubot_worker_resident_bytes{{plugin=\"{ECHO}\"")))
        .unwrap_or_else(|| panic!("no worker memory in:\n{text}"));
    let bytes: f64 = worker
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(bytes > 1e6, "{worker}");
    for request in [
        "route=\"/_matrix/maubot/v1/instance/{id}\",method=\"PUT\",status=\"201\"",
        "route=\"/_matrix/maubot/v1/instances\",method=\"GET\",status=\"401\"",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("maubot_api_requests_total{") && l.contains(request)),
            "no {request} in:\n{text}"
        );
    }
    server.stop().await;
}
