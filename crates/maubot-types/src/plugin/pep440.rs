//! PEP 440 versions, as Python's `packaging.version.Version` reads and orders them. maubot parses
//! a plugin's `version` and its minimum `maubot` version this way.
//!
//! Accepted: an optional `v`, an epoch (`1!`), a release (`1.2.3`), a pre-release (`a`, `b`,
//! `rc`, spelt also `alpha`, `beta`, `c`, `pre`, `preview`), a post-release (`.post1`, `-1`,
//! `rev1`, `r1`), a development release (`.dev1`) and a local part (`+ubuntu.1`), in any case,
//! with the optional separators `-`, `_` and `.` that `packaging` allows, and surrounding
//! whitespace.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PEP 440 version. `Display` shows the text it was parsed from (trimmed);
/// [`Version::normalized`] gives `packaging`'s canonical spelling, which is what maubot writes
/// back (`str(Version)`). Equality and order are PEP 440's: `1.0` == `1.0.0` == `v1.0`.
#[derive(Clone)]
pub struct Version {
    original: String,
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(PreKind, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<LocalSegment>,
}

/// The kind of a pre-release, in PEP 440 order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreKind {
    /// `a`, `alpha`
    Alpha,
    /// `b`, `beta`
    Beta,
    /// `rc`, `c`, `pre`, `preview`
    ReleaseCandidate,
}

impl PreKind {
    fn as_str(self) -> &'static str {
        match self {
            PreKind::Alpha => "a",
            PreKind::Beta => "b",
            PreKind::ReleaseCandidate => "rc",
        }
    }
}

/// One dot-separated part of a local version label. Numbers sort after strings, as in
/// `packaging`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum LocalSegment {
    Text(String),
    Number(u64),
}

impl fmt::Display for LocalSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalSegment::Text(text) => f.write_str(text),
            LocalSegment::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Why a text is not a PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a PEP 440 version ({reason}), e.g. `1.0.2` or `2.0.0rc1`")]
pub struct VersionError {
    text: String,
    reason: &'static str,
}

impl Version {
    /// Parses a version as `packaging.version.Version` does.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let trimmed = text.trim();
        let fail = |reason| VersionError {
            text: trimmed.to_owned(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        if !trimmed.is_ascii() {
            return Err(fail("it contains characters other than ASCII"));
        }
        let lower = trimmed.to_ascii_lowercase();
        let mut cur = Cursor::new(&lower);
        cur.eat("v");

        // Epoch: digits followed by `!`; otherwise those digits start the release.
        let mut epoch = 0;
        let save = cur.pos;
        if let Some(n) = cur.number().map_err(fail)? {
            if cur.eat("!") {
                epoch = n;
            } else {
                cur.pos = save;
            }
        }

        let mut release = vec![
            cur.number()
                .map_err(fail)?
                .ok_or(fail("the release part must start with a number"))?,
        ];
        loop {
            let save = cur.pos;
            if !cur.eat(".") {
                break;
            }
            match cur.number().map_err(fail)? {
                Some(n) => release.push(n),
                None => {
                    cur.pos = save;
                    break;
                }
            }
        }

        let pre = match cur.labelled(&["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"]) {
            Some((label, number)) => {
                let kind = match label {
                    "alpha" | "a" => PreKind::Alpha,
                    "beta" | "b" => PreKind::Beta,
                    _ => PreKind::ReleaseCandidate,
                };
                Some((kind, number.map_err(fail)?.unwrap_or(0)))
            }
            None => None,
        };

        // `-N` is an implicit post-release; otherwise a labelled one.
        let save = cur.pos;
        let mut post = None;
        if cur.eat("-") {
            match cur.number().map_err(fail)? {
                Some(n) => post = Some(n),
                None => cur.pos = save,
            }
        }
        if post.is_none()
            && let Some((_, number)) = cur.labelled(&["post", "rev", "r"])
        {
            post = Some(number.map_err(fail)?.unwrap_or(0));
        }

        let dev = match cur.labelled(&["dev"]) {
            Some((_, number)) => Some(number.map_err(fail)?.unwrap_or(0)),
            None => None,
        };

        let mut local = Vec::new();
        if cur.eat("+") {
            let label = cur.rest();
            cur.pos = cur.text.len();
            for part in label.split(['-', '_', '.']) {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(fail(
                        "the local part after `+` must be letters and digits separated by `.`",
                    ));
                }
                let segment = if part.bytes().all(|b| b.is_ascii_digit()) {
                    LocalSegment::Number(part.parse().map_err(|_| fail("a number is too large"))?)
                } else {
                    LocalSegment::Text(part.to_owned())
                };
                local.push(segment);
            }
        }

        if !cur.rest().is_empty() {
            return Err(fail("unexpected text after the version"));
        }
        Ok(Version {
            original: trimmed.to_owned(),
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// The canonical spelling, as `str(packaging.version.Version(...))`: `V1.0-Alpha` →
    /// `1.0a0`, `1.0-1` → `1.0.post1`.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        if self.epoch != 0 {
            out.push_str(&format!("{}!", self.epoch));
        }
        let release: Vec<String> = self.release.iter().map(u64::to_string).collect();
        out.push_str(&release.join("."));
        if let Some((kind, n)) = self.pre {
            out.push_str(&format!("{}{n}", kind.as_str()));
        }
        if let Some(n) = self.post {
            out.push_str(&format!(".post{n}"));
        }
        if let Some(n) = self.dev {
            out.push_str(&format!(".dev{n}"));
        }
        if !self.local.is_empty() {
            let local: Vec<String> = self.local.iter().map(ToString::to_string).collect();
            out.push('+');
            out.push_str(&local.join("."));
        }
        out
    }

    /// The text this version was parsed from, without surrounding whitespace.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The release numbers (`[1, 2, 3]` for `1.2.3rc1`).
    pub fn release(&self) -> &[u64] {
        &self.release
    }

    /// Whether this is a pre-release or a development release.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// The key that orders versions, as `packaging` builds it: trailing zeros of the release
    /// do not count; a development release of a final version comes before its pre-releases.
    fn key(&self) -> SortKey<'_> {
        let mut release = self.release.as_slice();
        while let [rest @ .., 0] = release {
            release = rest;
        }
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => Bound::Below,
            (None, _, _) => Bound::Above,
            (Some(pre), _, _) => Bound::Value(pre),
        };
        let post = match self.post {
            None => Bound::Below,
            Some(n) => Bound::Value(n),
        };
        let dev = match self.dev {
            None => Bound::Above,
            Some(n) => Bound::Value(n),
        };
        (self.epoch, release, pre, post, dev, &self.local)
    }
}

type SortKey<'a> = (
    u64,
    &'a [u64],
    Bound<(PreKind, u64)>,
    Bound<u64>,
    Bound<u64>,
    &'a [LocalSegment],
);

/// A value with stand-ins for "less than any" and "greater than any" (packaging's infinities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Bound<T> {
    Below,
    Value(T),
    Above,
}

/// Reads the grammar over lower-cased ASCII text.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn eat(&mut self, s: &str) -> bool {
        let found = self.rest().starts_with(s);
        if found {
            self.pos += s.len();
        }
        found
    }

    fn eat_separator(&mut self) -> bool {
        self.eat("-") || self.eat("_") || self.eat(".")
    }

    /// Digits, if any, as a number.
    fn number(&mut self) -> Result<Option<u64>, &'static str> {
        let digits = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Ok(None);
        }
        let text = &self.rest()[..digits];
        self.pos += digits;
        text.parse().map(Some).map_err(|_| "a number is too large")
    }

    /// `[sep] label [sep] [digits]`, the shape of the pre, post and dev parts. Returns the label
    /// and the number (None if absent). A separator is only taken if what follows it fits.
    #[allow(clippy::type_complexity)]
    fn labelled(
        &mut self,
        labels: &[&'static str],
    ) -> Option<(&'static str, Result<Option<u64>, &'static str>)> {
        let start = self.pos;
        self.eat_separator();
        let Some(label) = labels.iter().copied().find(|l| self.rest().starts_with(l)) else {
            self.pos = start;
            return None;
        };
        self.pos += label.len();
        let before_sep = self.pos;
        self.eat_separator();
        match self.number() {
            Ok(None) => {
                self.pos = before_sep;
                Some((label, Ok(None)))
            }
            number => Some((label, number)),
        }
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", self.original)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// Serialises as the normalised spelling, as maubot does (`str(Version)`).
impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.normalized())
    }
}

/// Only strings are versions: a YAML `1.0` is a number and is refused, as in maubot.
impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Version;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a PEP 440 version string (quote numbers like '1.0')")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Version, E> {
                Version::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn normalises_spellings_like_packaging() {
        let table = [
            ("1.0", "1.0"),
            ("v1.0", "1.0"),
            ("V1.0", "1.0"),
            ("  1.0.2\n", "1.0.2"),
            ("01.002", "1.2"),
            ("1!2.0", "1!2.0"),
            ("0!1.0", "1.0"),
            ("1.0-alpha1", "1.0a1"),
            ("1.0.alpha.1", "1.0a1"),
            ("1.0a", "1.0a0"),
            ("1.0_BETA_2", "1.0b2"),
            ("1.0c1", "1.0rc1"),
            ("1.0pre1", "1.0rc1"),
            ("1.0-preview-3", "1.0rc3"),
            ("1.0RC1", "1.0rc1"),
            ("1.0-1", "1.0.post1"),
            ("1.0post", "1.0.post0"),
            ("1.0.rev2", "1.0.post2"),
            ("1.0r3", "1.0.post3"),
            ("1.0-post-4", "1.0.post4"),
            ("1.0dev", "1.0.dev0"),
            ("1.0-dev.5", "1.0.dev5"),
            ("1.0a1.post2.dev3", "1.0a1.post2.dev3"),
            ("1.0a.post", "1.0a0.post0"),
            ("1.0+Ubuntu-1_x", "1.0+ubuntu.1.x"),
            ("1.0+007", "1.0+7"),
        ];
        for (text, normal) in table {
            let version = v(text);
            assert_eq!(version.normalized(), normal, "{text}");
            assert_eq!(version.to_string(), text.trim(), "Display keeps the text");
            assert_eq!(v(normal), version, "{text} == {normal}");
        }
    }

    #[test]
    fn refuses_what_packaging_refuses() {
        for text in [
            "",
            "   ",
            "1.0.",
            ".1",
            "a1",
            "1.0-",
            "1.0+",
            "1.0+a..b",
            "1..0",
            "1.0 beta",
            "1.0.x",
            "1.0-foo",
            "1.0dev1a1",
            "1.0.post1a1",
            "1,0",
            "1.0ü",
            "latest",
            "1.0-dev-",
            "v",
            "1!",
            "1.0+a+b",
        ] {
            assert!(Version::parse(text).is_err(), "{text:?} should be refused");
        }
        let err = Version::parse("1.0.x").expect_err("invalid");
        assert!(
            err.to_string()
                .starts_with("`1.0.x` is not a PEP 440 version")
        );
    }

    #[test]
    fn orders_per_pep_440() {
        // Each strictly greater than the one before.
        let ascending = [
            "0.1",
            "0.9",
            "1.0.dev0",
            "1.0.dev1",
            "1.0a1.dev1",
            "1.0a1",
            "1.0a1.post1.dev1",
            "1.0a1.post1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+abc",
            "1.0+abc.5",
            "1.0+1",
            "1.0.post1.dev1",
            "1.0.post1",
            "1.0.post2",
            "1.0.1",
            "1.1.dev0",
            "1.1",
            "1.10",
            "2.0",
            "1!0.1",
        ];
        for pair in ascending.windows(2) {
            let (a, b) = (v(pair[0]), v(pair[1]));
            assert!(a < b, "{a} < {b}");
            assert!(b > a, "{b} > {a}");
        }
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0.0").cmp(&v("1")), Ordering::Equal);
        assert_ne!(v("1.0"), v("1.0+local"));
    }

    #[test]
    fn serde_takes_strings_only() {
        let version: Version = serde_json::from_value(serde_json::json!("v1.0-1")).expect("str");
        assert_eq!(serde_json::to_value(&version).expect("ser"), "1.0.post1");
        let err = serde_json::from_value::<Version>(serde_json::json!(1.0)).expect_err("number");
        assert!(err.to_string().contains("PEP 440"), "{err}");
    }
}
