//! The `maubot:plugin` worlds the runtime links, one module per version. A plugin built
//! against 0.1.0 keeps working when 0.2.0 comes: the runtime picks the bindings by the version
//! the component exports.

/// `maubot:plugin@0.1.0`.
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });

    pub use maubot::plugin::{config, database, http, kv, logging, matrix, timers, types};

    use serde_json::Value;

    impl types::RoomEvent {
        /// The record of a client-server event (with `room_id`) as the server hands it to
        /// plugins; `None` for what is not a room event.
        pub fn from_json(event: &Value) -> Option<Self> {
            let text = |key: &str| event.get(key).and_then(Value::as_str).map(str::to_owned);
            let content = event.get("content");
            let content_text = |key: &str| {
                content
                    .and_then(|c| c.get(key))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            Some(Self {
                event_id: text("event_id").unwrap_or_default(),
                room_id: text("room_id")?,
                sender: text("sender")?,
                event_type: text("type")?,
                state_key: text("state_key"),
                origin_server_ts: event
                    .get("origin_server_ts")
                    .and_then(Value::as_u64)
                    .unwrap_or_default(),
                msgtype: content_text("msgtype"),
                body: content_text("body"),
                json: event.to_string(),
            })
        }
    }
}
