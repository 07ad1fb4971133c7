//! Homeserver paths that come from outside (a plugin's Matrix request, the client proxy), parsed
//! once and checked, and sent on from the checked form only.
//!
//! What the homeserver's HTTP stack does with a path is not what a `split('/')` sees: URL
//! parsers read `\` as `/` and drop tabs and newlines, and `%2F` or dot segments move a request
//! to another endpoint after it was checked. So a path is split into segments, each decoded and
//! refused if it holds anything that could end up as a separator or a dot segment, and the URL
//! is built again from those segments, each percent-encoded afresh.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// What is percent-encoded when a segment is written again: everything but unreserved
/// characters and those Matrix IDs are made of (`!room:server`, `$event`, `@user:server`, `+`
/// and `=` of base64).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'/')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A path below `/_matrix/`, as decoded segments (without the `_matrix` one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixPath {
    segments: Vec<String>,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not below /_matrix/")]
    NotMatrix,
    #[error("the path holds a character that is not allowed in it")]
    BadCharacter,
    #[error("a segment of the path is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error("a segment of the path would be a separator or a dot segment once decoded")]
    HiddenSegment,
}

impl MatrixPath {
    /// Parses a path as sent on the wire: `/_matrix/...`, percent-encoded.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let rest = raw.strip_prefix("/_matrix/").ok_or(PathError::NotMatrix)?;
        // A query or fragment belongs in its own field; a backslash or a control character is
        // read differently by different URL parsers.
        if raw
            .chars()
            .any(|c| c.is_control() || matches!(c, '\\' | '?' | '#' | ' '))
        {
            return Err(PathError::BadCharacter);
        }
        let segments = rest
            .split('/')
            .map(|raw| {
                let segment = percent_decode_str(raw)
                    .decode_utf8()
                    .map_err(|_| PathError::NotUtf8)?;
                if segment == "." || segment == ".." {
                    return Err(PathError::HiddenSegment);
                }
                if segment
                    .chars()
                    .any(|c| c.is_control() || matches!(c, '/' | '\\'))
                {
                    return Err(PathError::HiddenSegment);
                }
                Ok(segment.into_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { segments })
    }

    /// The decoded segments after `_matrix`.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path to send: `/_matrix/` and every segment encoded again.
    pub fn to_wire(&self) -> String {
        let mut path = String::from("/_matrix");
        for segment in &self.segments {
            path.push('/');
            path.extend(utf8_percent_encode(segment, SEGMENT));
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_a_url_parser_would_read_as_another_path() {
        for raw in [
            "/_matrix/client/v3/x\\..\\sync",
            "/_matrix/client/v3/x/\t../sync",
            "/_matrix/client/v3/x/.\n./sync",
            "/_matrix/client/v3/rooms/../logout/all",
            "/_matrix/client/v3/rooms/%2e%2e/logout",
            "/_matrix/client/v3/rooms/%2E./logout",
            "/_matrix/client/v3/rooms/a%2F..%2F..%2Flogout",
            "/_matrix/client/v3/rooms/a%5C..%5Clogout",
            "/_matrix/client/v3/rooms/a%0A",
            "/_matrix/client/v3/sync?since=x",
            "/_matrix/client/v3/profile/x#/../../logout",
            "/_matrix/client/v3/rooms/%FF",
        ] {
            assert!(MatrixPath::parse(raw).is_err(), "{raw:?}");
        }
        assert_eq!(
            MatrixPath::parse("/_synapse/admin/v1/users"),
            Err(PathError::NotMatrix)
        );
        assert_eq!(
            MatrixPath::parse("/_matrix/../_synapse/admin"),
            Err(PathError::HiddenSegment)
        );
    }

    #[test]
    fn keeps_ids_and_encodes_again_what_needs_it() {
        let path = MatrixPath::parse(
            "/_matrix/client/v3/rooms/%21abc%3Ahs.test/state/m.room.name/a%20b%25c%3Fd",
        )
        .expect("valid");
        assert_eq!(
            path.segments(),
            [
                "client",
                "v3",
                "rooms",
                "!abc:hs.test",
                "state",
                "m.room.name",
                "a b%c?d"
            ]
        );
        assert_eq!(
            path.to_wire(),
            "/_matrix/client/v3/rooms/!abc:hs.test/state/m.room.name/a%20b%25c%3Fd"
        );
        // An empty state key: the trailing empty segment stays.
        let path = MatrixPath::parse("/_matrix/client/v3/rooms/!a:b/state/m.room.power_levels/")
            .expect("valid");
        assert_eq!(
            path.to_wire(),
            "/_matrix/client/v3/rooms/!a:b/state/m.room.power_levels/"
        );
    }
}
