//! Which Matrix endpoints a plugin may use as its bot: an allow-list of the client-server and
//! media APIs plugins need (rooms, profiles, account data, media, ...). Everything else is
//! refused, above all what would let a plugin take over the bot's session or keys: `/sync`,
//! `/keys/*`, `/sendToDevice`, `/login`, `/logout`, `/devices`, key backups, the bot's E2EE
//! account data, and any API of the homeserver's own (`/_synapse/admin`).

use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, OwnedTransactionId};

use crate::matrix_path::MatrixPath;

/// What a request is, as far as the server treats it specially.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Not on the allow-list.
    Refused,
    /// A room send: through matrix-sdk, which encrypts it in encrypted rooms.
    Send {
        room: OwnedRoomId,
        event_type: String,
        txn: OwnedTransactionId,
    },
    /// One event: answered decrypted when the SDK can.
    GetEvent {
        room: OwnedRoomId,
        event: OwnedEventId,
    },
    /// Sent on to the homeserver as it is.
    Forward,
}

/// Endpoints below `/_matrix/client/<version>/rooms/<room>/`.
const ROOM_ENDPOINTS: &[&str] = &[
    "aliases",
    "ban",
    "context",
    "event",
    "forget",
    "hierarchy",
    "initialSync",
    "invite",
    "join",
    "joined_members",
    "kick",
    "leave",
    "members",
    "messages",
    "read_markers",
    "receipt",
    "redact",
    "relations",
    "report",
    "send",
    "state",
    "threads",
    "timestamp_to_event",
    "typing",
    "unban",
    "upgrade",
];

/// Account data that holds the bot's end-to-end encryption secrets (encrypted, but a plugin
/// could still overwrite or delete them).
const E2EE_ACCOUNT_DATA: &[&str] = &["m.secret_storage.", "m.cross_signing.", "m.megolm_backup."];

const CLIENT_VERSIONS: &[&str] = &["r0", "v1", "v3", "unstable"];
const MEDIA_VERSIONS: &[&str] = &["r0", "v1", "v3"];
const MEDIA_ENDPOINTS: &[&str] = &[
    "config",
    "create",
    "download",
    "preview_url",
    "thumbnail",
    "upload",
];

/// Classifies a checked path.
pub fn route(method: &str, path: &MatrixPath) -> Route {
    let segments: Vec<&str> = path.segments().iter().map(String::as_str).collect();
    let allowed = match segments.as_slice() {
        ["client", "versions"] => true,
        ["client", version, rest @ ..] if CLIENT_VERSIONS.contains(version) => {
            match client_route(method, rest) {
                Some(route) => return route,
                None => false,
            }
        }
        ["media", version, endpoint, ..] => {
            MEDIA_VERSIONS.contains(version) && MEDIA_ENDPOINTS.contains(endpoint)
        }
        _ => false,
    };
    if allowed {
        Route::Forward
    } else {
        Route::Refused
    }
}

/// A client API path after its version; `None` when it is not allowed.
fn client_route(method: &str, rest: &[&str]) -> Option<Route> {
    let allowed = match rest {
        ["rooms", room, "send", event_type, txn] if method == "PUT" => {
            return Some(match OwnedRoomId::try_from(*room) {
                Ok(room) => Route::Send {
                    room,
                    event_type: (*event_type).to_owned(),
                    txn: (*txn).into(),
                },
                Err(_) => Route::Forward,
            });
        }
        ["rooms", room, "event", event] if method == "GET" => {
            return Some(
                match (OwnedRoomId::try_from(*room), OwnedEventId::try_from(*event)) {
                    (Ok(room), Ok(event)) => Route::GetEvent { room, event },
                    _ => Route::Forward,
                },
            );
        }
        ["rooms", _, endpoint, ..] => ROOM_ENDPOINTS.contains(endpoint),
        ["account", "whoami"]
        | ["capabilities"]
        | ["createRoom"]
        | ["join", _]
        | ["knock", _]
        | ["joined_rooms"]
        | ["publicRooms"]
        | ["directory", "room", _]
        | ["directory", "list", "room", _]
        | ["profile", _]
        | ["profile", _, _]
        | ["user", _, "rooms", _, "account_data", _]
        | ["user", _, "rooms", _, "tags"]
        | ["user", _, "rooms", _, "tags", _]
        | ["user", _, "filter"]
        | ["user", _, "filter", _]
        | ["user_directory", "search"]
        | ["presence", _, "status"]
        | ["pushrules", ..]
        | ["notifications"]
        | ["search"]
        | ["voip", "turnServer"]
        | ["thirdparty", ..] => true,
        ["user", _, "account_data", kind] => !E2EE_ACCOUNT_DATA
            .iter()
            .any(|prefix| kind.starts_with(prefix)),
        // Authenticated media (client API v1).
        ["media", endpoint, ..] => MEDIA_ENDPOINTS.contains(endpoint),
        _ => false,
    };
    allowed.then_some(Route::Forward)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(method: &str, raw: &str) -> Route {
        route(method, &MatrixPath::parse(raw).expect("a well-formed path"))
    }

    #[test]
    fn refuses_session_key_and_admin_endpoints() {
        for path in [
            "/_matrix/client/v3/sync",
            "/_matrix/client/unstable/org.matrix.msc3575/sync",
            "/_matrix/client/v3/keys/upload",
            "/_matrix/client/v3/keys/query",
            "/_matrix/client/r0/login",
            "/_matrix/client/v3/logout",
            "/_matrix/client/v3/logout/all",
            "/_matrix/client/v3/register",
            "/_matrix/client/v3/refresh",
            "/_matrix/client/v3/sendToDevice/m.room.encrypted/1",
            "/_matrix/client/v3/account/password",
            "/_matrix/client/v3/account/deactivate",
            "/_matrix/client/v3/devices",
            "/_matrix/client/v3/devices/ABC",
            "/_matrix/client/v3/delete_devices",
            "/_matrix/client/v3/room_keys/keys",
            "/_matrix/client/v3/pushers/set",
            "/_matrix/client/v3/user/@bot:hs/openid/request_token",
            "/_matrix/client/v3/user/@bot:hs/account_data/m.secret_storage.default_key",
            "/_matrix/client/v3/user/@bot:hs/account_data/m.cross_signing.master",
            "/_matrix/client/v3/user/@bot:hs/account_data/m.megolm_backup.v1",
            "/_matrix/client/v3/admin/whois/@x:hs",
            "/_matrix/client/v3/events",
            "/_matrix/client/v3/initialSync",
            "/_matrix/client/v3/rooms/!a:hs/unknown",
            "/_matrix/federation/v1/version",
            "/_matrix/key/v2/server",
            "/_matrix/media/v3/unknown",
        ] {
            assert_eq!(classify("POST", path), Route::Refused, "{path}");
        }
    }

    #[test]
    fn forwards_what_plugins_use() {
        for (method, path) in [
            ("GET", "/_matrix/client/v3/account/whoami"),
            ("GET", "/_matrix/client/versions"),
            ("GET", "/_matrix/client/v3/joined_rooms"),
            ("POST", "/_matrix/client/v3/join/%23room%3Ahs"),
            ("POST", "/_matrix/client/v3/createRoom"),
            (
                "GET",
                "/_matrix/client/v3/rooms/!a:hs/state/m.room.power_levels/",
            ),
            ("GET", "/_matrix/client/v3/rooms/!a:hs/messages"),
            ("POST", "/_matrix/client/v3/rooms/!a:hs/receipt/m.read/$e"),
            ("PUT", "/_matrix/client/v3/rooms/!a:hs/redact/$e/txn"),
            ("PUT", "/_matrix/client/v3/profile/@bot:hs/displayname"),
            (
                "PUT",
                "/_matrix/client/v3/user/@bot:hs/account_data/m.direct",
            ),
            ("GET", "/_matrix/client/v1/media/download/hs/abc"),
            ("POST", "/_matrix/media/v3/upload"),
            ("GET", "/_matrix/media/r0/thumbnail/hs/abc"),
        ] {
            assert_eq!(classify(method, path), Route::Forward, "{method} {path}");
        }
    }

    #[test]
    fn recognises_sends_and_event_fetches_with_encoded_ids() {
        assert_eq!(
            classify(
                "PUT",
                "/_matrix/client/v3/rooms/%21abc%3Ahs.test/send/m.room.message/txn1"
            ),
            Route::Send {
                room: OwnedRoomId::try_from("!abc:hs.test").expect("room id"),
                event_type: "m.room.message".into(),
                txn: "txn1".into(),
            }
        );
        assert!(matches!(
            classify("GET", "/_matrix/client/v3/rooms/!abc:hs.test/event/$ev"),
            Route::GetEvent { .. }
        ));
    }
}
