//! The OpenAPI document at `/openapi.json`: every route, a superset of maubot's own spec, valid
//! to an OpenAPI validator, and the API fuzzed from it (schemathesis): no 5xx, no hang.

use std::collections::BTreeSet;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Backend, TestServer};

/// maubot 0.6's spec (`maubot/management/api/spec.yaml`): its operations and the statuses it
/// lists for each. The document must have them all.
const MAUBOT_SPEC: &[(&str, &str, &[u16])] = &[
    ("post", "/auth/login", &[200, 401]),
    ("post", "/auth/ping", &[200, 401]),
    ("get", "/plugins", &[200, 401]),
    ("post", "/plugins/upload", &[200, 201, 400, 401, 409]),
    ("get", "/plugin/{id}", &[200, 401, 404]),
    ("delete", "/plugin/{id}", &[204, 401, 404, 412]),
    ("put", "/plugin/{id}", &[200, 201, 400, 401]),
    ("post", "/plugin/{id}/reload", &[200, 401, 404]),
    ("get", "/instances", &[200, 401]),
    ("get", "/instance/{id}", &[200, 401, 404]),
    ("delete", "/instance/{id}", &[204, 401, 404]),
    ("put", "/instance/{id}", &[200, 201, 400, 401, 404]),
    ("get", "/clients", &[200, 401]),
    ("post", "/client/new", &[201, 400, 401, 404, 409]),
    ("get", "/client/{id}", &[200, 401, 404]),
    ("put", "/client/{id}", &[201, 202, 400, 401]),
    ("delete", "/client/{id}", &[204, 401, 404, 412]),
    ("put", "/client/{id}/clearcache", &[200, 401, 404]),
    ("get", "/client/auth/servers", &[200, 401]),
    (
        "post",
        "/client/auth/{server}/register",
        &[200, 201, 401, 409, 500],
    ),
    (
        "post",
        "/client/auth/{server}/login",
        &[200, 201, 202, 401, 500],
    ),
];

/// Every operation the server has with all features on, beyond maubot's spec.
const BEYOND_THE_SPEC: &[(&str, &str)] = &[
    ("get", "/features"),
    ("get", "/version"),
    ("get", "/health"),
    ("get", "/debug/open"),
    ("post", "/client/{id}/clearcache"),
    ("post", "/client/{id}/verify"),
    ("post", "/client/{id}/generate_recovery_key"),
    ("post", "/client/auth/{server}/sso/{id}/wait"),
    ("get", "/client/auth_external_sso/complete/{id}"),
    ("get", "/instance/{id}/database"),
    ("get", "/instance/{id}/database/{table}"),
    ("post", "/instance/{id}/database/query"),
    ("get", "/logs"),
    ("get", "/proxy/{id}/{path}"),
    ("post", "/proxy/{id}/{path}"),
    ("put", "/proxy/{id}/{path}"),
    ("delete", "/proxy/{id}/{path}"),
];

async fn document(server: &TestServer) -> Value {
    // Public: it describes, it reveals nothing.
    let (status, document) = server.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    document
}

fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                operations.insert((method.to_owned(), path.clone()));
            }
        }
    }
    operations
}

/// Runs the tool `name` (installed on first use) with `args`; fails the test with its output
/// unless it succeeds.
async fn run_tool(name: &'static str, args: Vec<String>) {
    let output = tokio::task::spawn_blocking(move || {
        let venv = maubot_test_support::python_tools::venv(
            "api-tools",
            &["schemathesis==4.32.5", "openapi-spec-validator==0.9.0"],
        )
        .expect("the API test tools");
        // schemathesis keeps a cache in its working folder: not in the checkout.
        let scratch = tempfile::tempdir()?;
        Command::new(venv.join("bin").join(name))
            .args(args)
            .current_dir(scratch.path())
            .output()
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        output.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_has_every_route_and_maubots_spec_and_is_valid() {
    let server = TestServer::start(Backend::Sqlite, "openapi")
        .await
        .expect("sqlite");
    let document = document(&server).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        document["openapi"]
    );
    assert_eq!(document["servers"][0]["url"], "/_matrix/maubot/v1");

    let have = operations(&document);
    let expected: BTreeSet<(String, String)> = MAUBOT_SPEC
        .iter()
        .map(|(m, p, _)| (*m, *p))
        .chain(BEYOND_THE_SPEC.iter().copied())
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(have, expected, "the document's operations");
    for (method, path, statuses) in MAUBOT_SPEC {
        let responses = &document["paths"][path][method]["responses"];
        for status in *statuses {
            assert!(
                responses.get(status.to_string()).is_some(),
                "{method} {path} lacks {status}: {responses}"
            );
        }
    }
    let ids: Vec<&str> = have
        .iter()
        .filter_map(|(m, p)| document["paths"][p][m]["operationId"].as_str())
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        have.len(),
        "unique operation IDs: {ids:?}"
    );

    let file = server.dir().join("openapi.json");
    std::fs::write(&file, document.to_string()).expect("write");
    run_tool("openapi-spec-validator", vec![file.display().to_string()]).await;
    server.stop().await;
}

/// A feature turned off takes its routes out of the document too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_features_are_not_described() {
    let server = TestServer::start_with(Backend::Sqlite, "openapi_features", |config| {
        config.api_features.instance_database = false;
        config.api_features.client_proxy = false;
        config.api_features.log = false;
    })
    .await
    .expect("sqlite");
    let have = operations(&document(&server).await);
    assert!(
        !have
            .iter()
            .any(|(_, p)| p.contains("/database") || p.starts_with("/proxy/") || p == "/logs"),
        "{have:?}"
    );
    assert!(have.contains(&("get".to_owned(), "/instance/{id}".to_owned())));
    server.stop().await;
}

/// schemathesis sends what the document allows and what it does not, to every operation:
/// never a 5xx, never a hang. Left out: the operations that make the server contact a
/// homeserver URL taken from the body (the tests reach only loopback), and the uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_fuzzed_from_its_document_answers_without_server_errors() {
    let server = TestServer::start_with(Backend::Sqlite, "openapi_fuzz", |config| {
        config.homeservers.clear();
    })
    .await
    .expect("sqlite");
    let token = server.root_token().await;
    let url = server.api("/openapi.json");
    let mut args: Vec<String> = [
        "run",
        &url,
        "--checks",
        "not_a_server_error",
        "--max-response-time",
        "10",
        "--request-timeout",
        "20",
        "--max-examples",
        "25",
        "--seed",
        "1",
        "--workers",
        "1",
        "-H",
        &format!("Authorization: Bearer {token}"),
    ]
    .map(str::to_owned)
    .into();
    // Client creation and update contact the homeserver URL of the body; schemathesis cannot
    // make `application/zip` bodies (the archive parser has property tests of its own).
    for excluded in [
        "post_client_new",
        "put_client_id",
        "post_plugins_upload",
        "put_plugin_id",
    ] {
        args.extend(["--exclude-operation-id".to_owned(), excluded.to_owned()]);
    }
    run_tool("schemathesis", args).await;
    server.stop().await;
}
