//! Room events as the bot receives them, with maubot's message helpers.

use serde_json::Value;

use crate::Result;
use crate::bindings::maubot::plugin::types::RoomEvent;
use crate::matrix::{self, Format};

/// A room event, decrypted, as the instance's bot received it.
///
/// A `!command` is an `m.room.message` whose body starts with `!`; [`crate::Handlers`] routes
/// those, and every event also reaches [`crate::Plugin::on_event`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    /// `m.room.message`, `m.reaction`, `m.room.member`, ...
    pub event_type: String,
    /// Set for state events (an empty state key is a state key).
    pub state_key: Option<String>,
    /// Milliseconds since the epoch, as the sender's server stamped the event.
    pub origin_server_ts: u64,
    /// The `msgtype` of an `m.room.message` (`m.text`, `m.notice`, `m.emote`, ...).
    pub msgtype: Option<String>,
    /// The `body` of an `m.room.message`.
    pub body: Option<String>,
    /// The whole event as JSON.
    pub json: String,
}

impl From<RoomEvent> for Event {
    fn from(event: RoomEvent) -> Self {
        Event {
            event_id: event.event_id,
            room_id: event.room_id,
            sender: event.sender,
            event_type: event.event_type,
            state_key: event.state_key,
            origin_server_ts: event.origin_server_ts,
            msgtype: event.msgtype,
            body: event.body,
            json: event.json,
        }
    }
}

impl Event {
    /// Whether this is an `m.room.message` of that `msgtype` (`m.text`, `m.notice`, ...).
    pub fn is_message(&self, msgtype: &str) -> bool {
        self.event_type == "m.room.message" && self.msgtype.as_deref() == Some(msgtype)
    }

    /// The event's `content`, parsed (`Value::Null` if it has none).
    pub fn content(&self) -> Result<Value> {
        let mut event: Value = serde_json::from_str(&self.json)?;
        Ok(event
            .get_mut("content")
            .map(Value::take)
            .unwrap_or_default())
    }

    /// Replies to the event (a rich reply, `m.notice`, Markdown), as maubot's `evt.reply`;
    /// the reply's event ID.
    pub fn reply(&self, text: &str) -> Result<String> {
        matrix::reply(&self.room_id, &self.event_id, text)
    }

    /// Sends `text` into the event's room (`m.notice`, Markdown, not a reply), as maubot's
    /// `evt.respond`.
    pub fn respond(&self, text: &str) -> Result<String> {
        matrix::send(&self.room_id, text, Format::Markdown, true)
    }

    /// Reacts to the event with `key` (an emoji, usually).
    pub fn react(&self, key: &str) -> Result<String> {
        matrix::react(&self.room_id, &self.event_id, key)
    }

    /// Redacts the event.
    pub fn redact(&self, reason: Option<&str>) -> Result<String> {
        matrix::redact(&self.room_id, &self.event_id, reason)
    }
}
