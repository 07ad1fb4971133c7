//! Property tests of the parsers that read what others write: plugin archives and their
//! `maubot.yaml` (from anyone with an admin token, and from plugin authors), API tokens (from
//! anyone), and config files. Whatever the input, a parser answers with a value or an error; it
//! never panics, and a token nobody signed is never accepted. `PROPTEST_CASES=100000` runs more
//! cases than the default 256.

use std::io::Write as _;

use maubot_types::config;
use maubot_types::plugin::{ArchiveLimits, PluginArchive, PluginMeta, Version};
use maubot_types::secret::Secret;
use maubot_types::token;
use proptest::prelude::*;

const META: &str = "maubot: 0.3.0\nid: xyz.maubot-rs.fuzz\nversion: 1.0.0\nlicense: MIT\n\
                    modules: [fuzz]\nmain_class: FuzzBot\ndatabase: true\nconfig: true\n";

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    for (name, data) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("entry");
        zip.write_all(data).expect("write");
    }
    zip.finish().expect("finish");
    out.into_inner()
}

fn valid_archive() -> Vec<u8> {
    zip_of(&[
        ("maubot.yaml", META.as_bytes()),
        ("fuzz.py", b"class FuzzBot: pass\n"),
        ("base-config.yaml", b"greeting: hi\n"),
    ])
}

/// Lines of YAML made of `maubot.yaml`'s keys and values of every shape.
fn meta_like() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "maubot",
        "id",
        "version",
        "license",
        "modules",
        "main_class",
        "database",
        "database_type",
        "config",
        "webapp",
        "extra_files",
        "dependencies",
        "soft_dependencies",
        "runtime",
        "component",
    ]);
    let value = prop_oneof![
        Just("0.3.0".to_owned()),
        Just("[a, b]".to_owned()),
        Just("true".to_owned()),
        Just("12".to_owned()),
        Just("null".to_owned()),
        Just("{x: 1}".to_owned()),
        "[ -~]{0,40}",
    ];
    prop::collection::vec((key, value), 0..14).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect()
    })
}

/// Config text made of real keys, nested one level, with values of every shape.
fn config_like() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "database",
        "server",
        "admins",
        "homeservers",
        "plugin_directories",
        "plugin_databases",
        "python_host",
        "wasm_host",
        "logging",
        "api_features",
        "crypto_database",
        "crypto_db_pickle_key",
    ]);
    let key = prop::sample::select(vec![
        "port",
        "hostname",
        "public_url",
        "unshared_secret",
        "upload",
        "load",
        "trash",
        "sqlite",
        "postgres",
        "root",
        "url",
        "secret",
        "level",
        "max_body_size",
        "venv",
    ]);
    let value = prop_oneof![
        Just("8080".to_owned()),
        Just("-1".to_owned()),
        Just("[x]".to_owned()),
        Just("true".to_owned()),
        Just("~".to_owned()),
        Just("generate".to_owned()),
        "[ -~]{0,30}",
    ];
    prop::collection::vec((section, prop::collection::vec((key, value), 0..4)), 0..8).prop_map(
        |sections| {
            sections
                .into_iter()
                .map(|(s, keys)| {
                    let body: String = keys.iter().map(|(k, v)| format!("  {k}: {v}\n")).collect();
                    if body.is_empty() {
                        format!("{s}: 1\n")
                    } else {
                        format!("{s}:\n{body}")
                    }
                })
                .collect()
        },
    )
}

proptest! {
    #[test]
    fn archives_of_any_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = PluginArchive::read(&bytes, &ArchiveLimits::default());
    }

    #[test]
    fn damaged_archives_are_read_or_refused(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = valid_archive();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = PluginArchive::read(&bytes, &ArchiveLimits::default());
        bytes.truncate(cut.index(bytes.len()));
        let _ = PluginArchive::read(&bytes, &ArchiveLimits::default());
    }

    #[test]
    fn archives_with_any_definition_are_read_or_refused(meta in meta_like(), extra in "[ -~]{0,30}") {
        let bytes = zip_of(&[("maubot.yaml", meta.as_bytes()), (extra.as_str(), b"x")]);
        let _ = PluginArchive::read(&bytes, &ArchiveLimits::default());
        let _ = PluginMeta::parse(&meta);
    }

    #[test]
    fn any_text_as_a_definition_is_parsed_or_refused(text in "\\PC{0,400}") {
        let _ = PluginMeta::parse(&text);
    }

    #[test]
    fn any_text_as_a_version_is_parsed_or_refused(text in "[0-9a-z.!+_-]{0,40}") {
        if let Ok(version) = Version::parse(&text) {
            // What a version prints reads back as the same version.
            prop_assert_eq!(Version::parse(&version.normalized()).ok(), Some(version));
        }
    }

    #[test]
    fn any_text_as_a_token_is_refused(text in "\\PC{0,200}") {
        let secret = Secret::new("fuzz-secret");
        prop_assert!(token::verify(&secret, &text).is_err());
    }

    #[test]
    fn a_changed_token_never_claims_anything_new(
        user in "[a-z]{1,12}",
        created in 0i64..4_000_000_000,
        edits in prop::collection::vec((any::<prop::sample::Index>(), "[A-Za-z0-9_=:-]"), 1..4),
    ) {
        let secret = Secret::new("fuzz-secret");
        let signed = token::sign(&secret, &user, created);
        let mut chars: Vec<char> = signed.chars().collect();
        for (at, replacement) in &edits {
            let i = at.index(chars.len());
            chars[i] = replacement.chars().next().unwrap_or('A');
        }
        let changed: String = chars.into_iter().collect();
        if let Ok(claims) = token::verify(&secret, &changed) {
            prop_assert_eq!(claims.user_id, user);
            prop_assert_eq!(claims.created_at, Some(created));
        }
        // Signed with another secret, it never passes.
        prop_assert!(token::verify(&Secret::new("another-secret"), &signed).is_err());
    }

    #[test]
    fn any_text_as_a_config_is_parsed_or_refused(text in "\\PC{0,400}") {
        let _ = config::parse(&text);
    }

    #[test]
    fn config_shaped_text_is_parsed_or_refused(text in config_like()) {
        let _ = config::parse(&text);
    }

    #[test]
    fn environment_overrides_of_any_shape_are_applied_or_refused(
        key in "MAUBOT_[A-Z_]{0,30}",
        value in "[ -~]{0,30}",
    ) {
        let _ = config::parse_with_env("server:\n  port: 1\n", [(key, value)]);
    }
}
