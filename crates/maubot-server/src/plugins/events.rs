//! Bot events as the plugin runtimes take them: client-server API events with `room_id`.

use serde_json::{Value, json};

use crate::client::BotEvent;

/// The event as JSON, or `None` if it cannot be read.
pub fn to_json(event: &BotEvent, own_user_id: &str) -> Option<Value> {
    match event {
        BotEvent::Timeline { room_id, event } => {
            let mut value: Value = serde_json::from_str(event.json().get()).ok()?;
            value
                .as_object_mut()?
                .insert("room_id".to_owned(), json!(room_id));
            Some(value)
        }
        // The homeserver sends invites as stripped state without an event ID or timestamp;
        // plugins (through mautrix) expect a whole member event, so those are filled in.
        BotEvent::Invite { room_id, sender } => {
            let now = crate::sync::unix_millis();
            Some(json!({
                "type": "m.room.member",
                "room_id": room_id,
                "sender": sender,
                "state_key": own_user_id,
                "content": { "membership": "invite" },
                "event_id": format!("$maubot-rs-invite-{now}"),
                "origin_server_ts": now,
                "unsigned": {},
            }))
        }
    }
}
