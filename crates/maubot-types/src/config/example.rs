//! The commented example config, generated from [`Config`]'s doc comments and default values so
//! that it cannot drift from the type.

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::Config;

/// `config` as commented YAML: each key preceded by its documentation.
pub fn example_yaml(config: &Config) -> String {
    let schema = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<Config>();
    let values = serde_json::to_value(config).unwrap_or_else(|_| unreachable!("config serialises"));
    let mut out = String::from(
        "# maubot-rs configuration. Keys and meanings follow maubot 0.6; maubot-rs never rewrites\n\
         # this file. Any key can be overridden by an environment variable: MAUBOT_SERVER__PORT=8080\n\
         # sets server.port (`__` separates levels).\n",
    );
    write_map(&mut out, &values, Some(schema.as_value()), 0);
    out
}

fn write_map(out: &mut String, map: &Value, schema: Option<&Value>, depth: usize) {
    let Value::Object(entries) = map else { return };
    let indent = "  ".repeat(depth);
    for (key, value) in entries {
        let (field, declared) = match schema.and_then(|s| property(s, key)) {
            Some((field, declared)) => (Some(field), declared),
            None => (None, false),
        };
        if depth == 0 {
            out.push('\n');
        }
        // Entries of maps keyed by name (`matrix.org:`) would only repeat their type's doc.
        let doc = field
            .filter(|_| declared)
            .and_then(|f| f.get("description"));
        if let Some(doc) = doc.and_then(Value::as_str) {
            for line in doc.lines() {
                out.push_str(&format!("{indent}# {line}\n").replace(" \n", "\n"));
            }
        }
        let key = yaml_key(key);
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push_str(&format!("{indent}{key}:\n"));
                write_map(out, value, field, depth + 1);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str(&format!("{indent}{key}:\n"));
                for item in items {
                    out.push_str(&format!("{indent}  - {}\n", flow(item)));
                }
            }
            _ => out.push_str(&format!("{indent}{key}: {}\n", flow(value))),
        }
    }
}

/// The schema of property `key` and whether it is a declared property (rather than an entry of
/// a map keyed by name, like `homeservers`), looking inside `anyOf` (how schemars writes `Option`).
fn property<'a>(schema: &'a Value, key: &str) -> Option<(&'a Value, bool)> {
    if let Some(p) = schema.get("properties").and_then(|p| p.get(key)) {
        return Some((p, true));
    }
    if let Some(entry) = schema.get("additionalProperties").filter(|e| e.is_object()) {
        return Some((entry, false));
    }
    schema
        .get("anyOf")?
        .as_array()?
        .iter()
        .find_map(|s| property(s, key))
}

/// A value in YAML flow style. JSON is valid YAML, so scalars and small collections are written
/// as JSON.
fn flow(value: &Value) -> String {
    match value {
        Value::String(s) if is_plain(s) => s.clone(),
        _ => value.to_string(),
    }
}

fn yaml_key(key: &str) -> String {
    if is_plain(key) {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// Whether a string can be written unquoted and read back as the same string.
fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && s.parse::<f64>().is_err()
        && !s.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn documents_every_key_and_reads_back_as_itself() {
        let config = Config::generated();
        let yaml = example_yaml(&config);
        let loaded = parse(&yaml).expect("the example parses");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        assert_eq!(
            serde_json::to_value(&loaded.config).expect("serialises"),
            serde_json::to_value(&config).expect("serialises"),
        );
        for key in [
            "database:",
            "  unshared_secret:",
            "  port: 29316",
            "    url:",
            "  plugin_upload: true",
        ] {
            assert!(yaml.contains(key), "{key} missing from\n{yaml}");
        }
        // Every key line is preceded by a comment, nested ones included.
        let lines: Vec<&str> = yaml.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
                continue;
            }
            let key = trimmed.split(':').next().unwrap_or_default();
            // Map entries keyed by name (`matrix.org`, `root`, logger names) have no doc of their own.
            if ["matrix.org", "root", "maubot", "mau", "aiohttp"].contains(&key) {
                continue;
            }
            assert!(
                lines[i - 1].trim_start().starts_with('#'),
                "`{line}` has no comment in\n{yaml}"
            );
        }
    }
}
