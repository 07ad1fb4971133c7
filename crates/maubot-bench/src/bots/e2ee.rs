//! A tester with end-to-end encryption (matrix-sdk, keys in memory) in an encrypted room with
//! one bot: whether the bot decrypts a `!ping` and answers it encrypted, and how fast.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::EncryptionInfo;
use matrix_sdk::ruma::api::client::room::create_room::v3::{Request as CreateRoom, RoomPreset};
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::ruma::events::room::message::{
    OriginalSyncRoomMessageEvent, RoomMessageEventContent,
};
use matrix_sdk::ruma::{OwnedUserId, assign};
use maubot_test_support::RegisteredUser;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What the tester received: sender, body, whether it came encrypted.
type Received = (String, String, bool);

pub struct Tester {
    client: matrix_sdk::Client,
    room: matrix_sdk::Room,
    received: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
}

/// One encrypted `!ping`.
#[derive(Debug, Clone)]
pub struct SecretPing {
    /// From the send until the answer was in the tester's sync, if it came.
    pub answered_after: Option<Duration>,
    /// Whether the answer came encrypted.
    pub encrypted: bool,
    pub error: Option<String>,
}

impl SecretPing {
    pub fn to_json(&self) -> Value {
        json!({
            "answered_after_seconds": self.answered_after.map(|d| d.as_secs_f64()),
            "encrypted": self.encrypted, "error": self.error,
        })
    }
}

fn quick() -> SyncSettings {
    SyncSettings::default().timeout(Duration::from_millis(500))
}

impl Tester {
    /// Logs `user` in, creates an encrypted room inviting `bot`, waits until it joined, and
    /// pings it once so that the Olm sessions exist, as they do between a user and a bot in use.
    pub async fn with_room(
        homeserver: &str,
        user: &RegisteredUser,
        bot: &str,
    ) -> anyhow::Result<Tester> {
        let client = matrix_sdk::Client::builder()
            .homeserver_url(homeserver)
            .build()
            .await?;
        let localpart = user
            .user_id
            .trim_start_matches('@')
            .split(':')
            .next()
            .context("user ID")?;
        client
            .matrix_auth()
            .login_username(localpart, "bench-password")
            .send()
            .await?;
        client.sync_once(quick()).await?;
        let (tx, received) = mpsc::unbounded_channel();
        client.add_event_handler(
            move |event: OriginalSyncRoomMessageEvent, encryption: Option<EncryptionInfo>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((
                        event.sender.to_string(),
                        event.content.body().to_owned(),
                        encryption.is_some(),
                    ));
                }
            },
        );
        let bot_user: OwnedUserId = bot.parse()?;
        let request = assign!(CreateRoom::new(), {
            invite: vec![bot_user.clone()],
            preset: Some(RoomPreset::PrivateChat),
            initial_state: vec![
                InitialStateEvent::with_empty_state_key(
                    RoomEncryptionEventContent::with_recommended_defaults(),
                )
                .to_raw_any(),
            ],
        });
        let room = client.create_room(request).await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            client.sync_once(quick()).await?;
            let member = room.get_member_no_sync(&bot_user).await?;
            if member.is_some_and(|m| *m.membership() == MembershipState::Join) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{bot} did not join the encrypted room");
            }
        }
        let tester = Tester {
            client,
            room,
            received: tokio::sync::Mutex::new(received),
        };
        let first = tester.ping(bot, Duration::from_secs(120)).await;
        if first.answered_after.is_none() || !first.encrypted {
            bail!("the encrypted !ping before the restart failed: {first:?}");
        }
        Ok(tester)
    }

    /// Sends `!ping` (encrypted) and waits up to `limit` for `bot`'s `pong`.
    pub async fn ping(&self, bot: &str, limit: Duration) -> SecretPing {
        let started = Instant::now();
        let failed = |error: String| SecretPing {
            answered_after: None,
            encrypted: false,
            error: Some(error),
        };
        match self
            .room
            .send(RoomMessageEventContent::text_plain("!ping"))
            .await
        {
            Ok(sent) if sent.encryption_info.is_none() => {
                return failed("the tester's !ping went out unencrypted".into());
            }
            Ok(_) => {}
            Err(err) => return failed(format!("send: {err}")),
        }
        let mut received = self.received.lock().await;
        while started.elapsed() < limit {
            if let Err(err) = self.client.sync_once(quick()).await {
                return failed(format!("sync: {err}"));
            }
            while let Ok((sender, body, encrypted)) = received.try_recv() {
                if sender == bot && body.ends_with("pong") {
                    return SecretPing {
                        answered_after: Some(started.elapsed()),
                        encrypted,
                        error: None,
                    };
                }
            }
        }
        failed(format!("no answer within {limit:?}"))
    }
}
