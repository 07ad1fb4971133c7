//! The instance's bot, in the rooms it has joined.
//!
//! Everything goes out as the instance's bot, encrypted in encrypted rooms. The server limits
//! how fast an instance may send ([`Error::RateLimited`](crate::Error::RateLimited)) and refuses
//! rooms the bot has not joined ([`Error::Forbidden`](crate::Error::Forbidden)).

use serde_json::Value;

use crate::Result;
use crate::bindings::maubot::plugin::matrix as wit;

/// How the text of a message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// As it is.
    Plain,
    /// Markdown, rendered to HTML by the server for `formatted_body`.
    Markdown,
    /// HTML, with a plain-text `body` derived from it.
    Html,
}

impl From<Format> for wit::TextFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Plain => wit::TextFormat::Plain,
            Format::Markdown => wit::TextFormat::Markdown,
            Format::Html => wit::TextFormat::Html,
        }
    }
}

/// Sends a text message (`m.text`, or `m.notice` with `notice`); its event ID.
pub fn send(room_id: &str, text: &str, format: Format, notice: bool) -> Result<String> {
    Ok(wit::send_text(room_id, text, format.into(), notice)?)
}

/// Sends an `m.text` message written in Markdown.
pub fn send_text(room_id: &str, text: &str) -> Result<String> {
    send(room_id, text, Format::Markdown, false)
}

/// Sends an `m.notice` message written in Markdown (what bots send, so that other bots ignore
/// it).
pub fn send_notice(room_id: &str, text: &str) -> Result<String> {
    send(room_id, text, Format::Markdown, true)
}

/// Replies to an event: a rich reply, `m.notice`, Markdown (maubot's `evt.reply`).
pub fn reply(room_id: &str, event_id: &str, text: &str) -> Result<String> {
    reply_with(room_id, event_id, text, Format::Markdown, true)
}

/// Replies to an event, choosing the format and whether it is a notice.
pub fn reply_with(
    room_id: &str,
    event_id: &str,
    text: &str,
    format: Format,
    notice: bool,
) -> Result<String> {
    Ok(wit::reply(room_id, event_id, text, format.into(), notice)?)
}

/// Replaces the text of a message the bot sent (Markdown); the edit's event ID.
pub fn edit(room_id: &str, event_id: &str, text: &str) -> Result<String> {
    edit_with(room_id, event_id, text, Format::Markdown)
}

/// Replaces the text of a message the bot sent, in the given format.
pub fn edit_with(room_id: &str, event_id: &str, text: &str, format: Format) -> Result<String> {
    Ok(wit::edit(room_id, event_id, text, format.into())?)
}

/// Reacts to an event with `key` (an emoji, usually).
pub fn react(room_id: &str, event_id: &str, key: &str) -> Result<String> {
    Ok(wit::react(room_id, event_id, key)?)
}

/// Redacts an event.
pub fn redact(room_id: &str, event_id: &str, reason: Option<&str>) -> Result<String> {
    Ok(wit::redact(room_id, event_id, reason)?)
}

/// Sends any message event with `content`; its event ID.
pub fn send_event(room_id: &str, event_type: &str, content: &Value) -> Result<String> {
    Ok(wit::send_event(room_id, event_type, &content.to_string())?)
}

/// The content of a state event, if the room has it.
pub fn get_state(room_id: &str, event_type: &str, state_key: &str) -> Result<Option<Value>> {
    match wit::get_state(room_id, event_type, state_key)? {
        Some(json) => Ok(Some(serde_json::from_str(&json)?)),
        None => Ok(None),
    }
}

/// The user IDs of the room's joined members.
pub fn members(room_id: &str) -> Result<Vec<String>> {
    Ok(wit::members(room_id)?)
}

/// The rooms the bot has joined.
pub fn joined_rooms() -> Vec<String> {
    wit::joined_rooms()
}
