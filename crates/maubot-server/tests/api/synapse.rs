//! The test homeserver itself: a real Synapse, registration by shared secret.

use maubot_test_support::Synapse;
use serde_json::Value;

#[tokio::test]
async fn synapse_registers_users_by_shared_secret() {
    let synapse = tokio::task::spawn_blocking(Synapse::shared)
        .await
        .expect("synapse");
    let user = synapse
        .register("smoke", "smoke-password", false)
        .await
        .expect("register");
    assert_eq!(user.user_id, "@smoke:localhost");

    let whoami: Value = reqwest::Client::new()
        .get(format!(
            "{}/_matrix/client/v3/account/whoami",
            synapse.base_url()
        ))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("json");
    assert_eq!(whoami["user_id"], "@smoke:localhost");
    assert_eq!(whoami["device_id"], user.device_id.as_str());

    // The same name cannot be registered twice.
    assert!(synapse.register("smoke", "other", false).await.is_err());
}

/// A test's own homeserver can be stopped and resumed with its data, as the client tests need
/// for "the homeserver went away and came back".
#[tokio::test]
async fn an_own_synapse_stops_and_resumes_with_its_data() {
    let synapse = tokio::task::spawn_blocking(Synapse::start)
        .await
        .expect("join")
        .expect("start");
    let user = synapse
        .register("survivor", "pw", false)
        .await
        .expect("register");
    let whoami = format!("{}/_matrix/client/v3/account/whoami", synapse.base_url());
    let http = reqwest::Client::new();

    let synapse = tokio::task::spawn_blocking(move || {
        synapse.stop();
        synapse
    })
    .await
    .expect("join");
    assert!(
        http.get(&whoami)
            .bearer_auth(&user.access_token)
            .send()
            .await
            .is_err(),
        "still answering after stop"
    );

    let synapse = tokio::task::spawn_blocking(move || synapse.resume().map(|()| synapse))
        .await
        .expect("join")
        .expect("resume");
    let response = http
        .get(&whoami)
        .bearer_auth(&user.access_token)
        .send()
        .await
        .expect("whoami");
    assert_eq!(
        response.status(),
        reqwest::StatusCode::OK,
        "the user and token survive a restart"
    );
    drop(synapse);
}
