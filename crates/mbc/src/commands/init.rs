//! `mbc init`: a new plugin in the current folder — `maubot.yaml`, a package with a Plugin
//! class answering `!ping`, optionally a config, and the licence. With `--wasm`, a WebAssembly
//! plugin instead: a Rust crate (`Cargo.toml`, `src/lib.rs`) on the `maubot-plugin` SDK,
//! which it depends on by path (the SDK is not on crates.io).

use std::path::{Path, PathBuf};

use maubot_types::plugin::{MetaError, PluginMeta};

use crate::cli::InitArgs;
use crate::error::{Context as _, Failure, Result};
use crate::term::Term;

const DEFAULT_VERSION: &str = "0.1.0";
const DEFAULT_LICENSE: &str = "AGPL-3.0-or-later";
/// The SDK of the checkout mbc was built from, the default of `--sdk-path`.
const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../maubot-plugin");

/// Licence texts mbc can write, by SPDX identifier (matched without regard to case).
const LICENSES: &[(&[&str], &str)] = &[
    (
        &["AGPL-3.0-or-later", "AGPL-3.0-only", "AGPL-3.0"],
        include_str!("../../../../LICENSE"),
    ),
    (
        &["GPL-3.0-or-later", "GPL-3.0-only", "GPL-3.0"],
        include_str!("../../licenses/GPL-3.0.txt"),
    ),
    (
        &["Apache-2.0"],
        include_str!("../../licenses/Apache-2.0.txt"),
    ),
    (&["MPL-2.0"], include_str!("../../licenses/MPL-2.0.txt")),
    (&["MIT"], MIT),
];

const MIT: &str = "\
MIT License

Copyright (c) {year} {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the \"Software\"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
";

/// What the new plugin is.
#[derive(Debug)]
struct Plan {
    name: String,
    id: String,
    version: String,
    license: String,
    config: bool,
    /// A WebAssembly plugin's SDK dependency, as its `Cargo.toml` names the path.
    sdk: Option<String>,
}

impl Plan {
    fn class(&self) -> String {
        let mut class: String = self
            .name
            .split(['_', '-'])
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut chars = part.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_uppercase().chain(chars).collect()
                })
            })
            .collect();
        if class.is_empty() || class.starts_with(|c: char| c.is_ascii_digit()) {
            class.insert(0, 'P');
        }
        if !class.ends_with("Bot") {
            class.push_str("Bot");
        }
        class
    }

    fn maubot_yaml(&self) -> String {
        let extra_files = if self.config {
            "extra_files:\n- base-config.yaml\n"
        } else {
            "extra_files: []\n"
        };
        if self.sdk.is_some() {
            return format!(
                "# The plugin definition, read by maubot-rs and by `mbc build`.\n\
                 maubot: 0.1.0\n\
                 id: {id}\n\
                 version: {version}\n\
                 license: {license}\n\
                 # A WebAssembly plugin: `mbc build` builds the crate for wasm32-wasip2 and packs\n\
                 # the component as this file.\n\
                 runtime: wasm\n\
                 wasm: {name}.wasm\n\
                 # Whether the plugin has a config (base-config.yaml, Plugin::Config).\n\
                 config: {config}\n\
                 # true gives each instance a database (maubot_plugin::db and maubot_plugin::kv).\n\
                 database: false\n\
                 # true gives each instance a web app (Plugin::web_request) under the server's plugin path.\n\
                 webapp: false\n\
                 # Further files for the archive (globs, relative to this folder).\n\
                 {extra_files}",
                id = yaml_string(&self.id),
                version = yaml_string(&self.version),
                license = yaml_string(&self.license),
                name = self.name,
                config = self.config,
            );
        }
        format!(
            "# The plugin definition, read by maubot and by `mbc build`.\n\
             maubot: 0.1.0\n\
             id: {id}\n\
             version: {version}\n\
             license: {license}\n\
             modules:\n\
             - {name}\n\
             main_class: {class}\n\
             # Whether the plugin has a config (base-config.yaml and a Config class).\n\
             config: {config}\n\
             # true gives each instance a database (self.database); asyncpg is mautrix's Database.\n\
             database: false\n\
             database_type: asyncpg\n\
             # true gives each instance a web app (self.webapp) under the server's plugin path.\n\
             webapp: false\n\
             # Further files for the archive (globs, relative to this folder).\n\
             {extra_files}",
            id = yaml_string(&self.id),
            version = yaml_string(&self.version),
            license = yaml_string(&self.license),
            name = self.name,
            class = self.class(),
            config = self.config,
        )
    }

    fn module(&self) -> String {
        let class = self.class();
        if !self.config {
            return format!(
                "\"\"\"A maubot plugin: !ping answers \"pong\".\"\"\"\n\
                 \n\
                 from maubot import Plugin, MessageEvent\n\
                 from maubot.handlers import command\n\
                 \n\
                 \n\
                 class {class}(Plugin):\n\
                 \x20   @command.new(\"ping\", help=\"Answer with pong\")\n\
                 \x20   async def ping(self, evt: MessageEvent) -> None:\n\
                 \x20       await evt.reply(\"pong\")\n"
            );
        }
        format!(
            "\"\"\"A maubot plugin: !ping answers with the reply from its config.\"\"\"\n\
             \n\
             from typing import Type\n\
             \n\
             from mautrix.util.config import BaseProxyConfig, ConfigUpdateHelper\n\
             \n\
             from maubot import Plugin, MessageEvent\n\
             from maubot.handlers import command\n\
             \n\
             \n\
             class Config(BaseProxyConfig):\n\
             \x20   def do_update(self, helper: ConfigUpdateHelper) -> None:\n\
             \x20       helper.copy(\"reply\")\n\
             \n\
             \n\
             class {class}(Plugin):\n\
             \x20   @classmethod\n\
             \x20   def get_config_class(cls) -> Type[BaseProxyConfig]:\n\
             \x20       return Config\n\
             \n\
             \x20   async def start(self) -> None:\n\
             \x20       self.config.load_and_update()\n\
             \n\
             \x20   @command.new(\"ping\", help=\"Answer with the configured reply\")\n\
             \x20   async def ping(self, evt: MessageEvent) -> None:\n\
             \x20       await evt.reply(self.config[\"reply\"])\n"
        )
    }

    /// A WebAssembly plugin's `Cargo.toml`.
    fn cargo_toml(&self, sdk: &str) -> String {
        // Cargo wants SemVer; the plugin's own version (PEP 440) is maubot.yaml's.
        let semver = self.version.split('.').count() == 3
            && self
                .version
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
        let version = if semver { &self.version } else { "0.1.0" };
        let license = if self.license.is_empty() {
            String::new()
        } else {
            format!("license = {}\n", toml_string(&self.license))
        };
        let serde = if self.config {
            "serde = { version = \"1\", features = [\"derive\"] }\n"
        } else {
            ""
        };
        format!(
            "[package]\n\
             name = \"{name}\"\n\
             # The plugin's version is maubot.yaml's.\n\
             version = \"{version}\"\n\
             edition = \"2024\"\n\
             {license}\
             publish = false\n\
             \n\
             # A WebAssembly component: `mbc build` runs `cargo build --target wasm32-wasip2 --release`.\n\
             [lib]\n\
             crate-type = [\"cdylib\"]\n\
             \n\
             [dependencies]\n\
             # maubot-rs's plugin SDK, from a maubot-rs checkout (it is not on crates.io).\n\
             maubot-plugin = {{ path = {sdk} }}\n\
             {serde}\
             \n\
             # A workspace of its own, also inside another project's folder.\n\
             [workspace]\n\
             \n\
             # Small components: each instance loads the plugin's.\n\
             [profile.release]\n\
             opt-level = \"s\"\n\
             lto = true\n\
             codegen-units = 1\n\
             strip = true\n\
             panic = \"abort\"\n",
            name = self.name,
            sdk = toml_string(sdk),
        )
    }

    /// A WebAssembly plugin's `src/lib.rs`.
    fn lib_rs(&self) -> String {
        let class = self.class();
        if !self.config {
            return format!(
                "//! {id}: a maubot-rs WebAssembly plugin. `!ping` answers \"pong\".\n\
                 \n\
                 use maubot_plugin::{{Args, Event, Handlers, Instance, NoConfig, Plugin, Result}};\n\
                 \n\
                 struct {class};\n\
                 \n\
                 impl Plugin for {class} {{\n\
                 \x20   type Config = NoConfig;\n\
                 \n\
                 \x20   fn start(_instance: &Instance, _config: NoConfig) -> Result<Self> {{\n\
                 \x20       Ok({class})\n\
                 \x20   }}\n\
                 \n\
                 \x20   fn handlers() -> Handlers<Self> {{\n\
                 \x20       Handlers::new().command(\"ping\", \"Answer with pong\", Self::ping)\n\
                 \x20   }}\n\
                 }}\n\
                 \n\
                 impl {class} {{\n\
                 \x20   fn ping(&mut self, event: &Event, _args: &Args) -> Result<()> {{\n\
                 \x20       event.reply(\"pong\")?;\n\
                 \x20       Ok(())\n\
                 \x20   }}\n\
                 }}\n\
                 \n\
                 maubot_plugin::export_plugin!({class});\n",
                id = self.id,
            );
        }
        format!(
            "//! {id}: a maubot-rs WebAssembly plugin. `!ping` answers with the reply from its config.\n\
             \n\
             use maubot_plugin::{{Args, Event, Handlers, Instance, Plugin, Result}};\n\
             use serde::Deserialize;\n\
             \n\
             /// The instance's config; base-config.yaml is where new instances start.\n\
             #[derive(Debug, Deserialize)]\n\
             struct Config {{\n\
             \x20   /// What the bot answers to !ping.\n\
             \x20   reply: String,\n\
             }}\n\
             \n\
             struct {class} {{\n\
             \x20   config: Config,\n\
             }}\n\
             \n\
             impl Plugin for {class} {{\n\
             \x20   type Config = Config;\n\
             \n\
             \x20   fn start(_instance: &Instance, config: Config) -> Result<Self> {{\n\
             \x20       Ok({class} {{ config }})\n\
             \x20   }}\n\
             \n\
             \x20   fn handlers() -> Handlers<Self> {{\n\
             \x20       Handlers::new().command(\"ping\", \"Answer with the configured reply\", Self::ping)\n\
             \x20   }}\n\
             \n\
             \x20   fn config_updated(&mut self, config: Config) -> Result<()> {{\n\
             \x20       self.config = config;\n\
             \x20       Ok(())\n\
             \x20   }}\n\
             }}\n\
             \n\
             impl {class} {{\n\
             \x20   fn ping(&mut self, event: &Event, _args: &Args) -> Result<()> {{\n\
             \x20       event.reply(&self.config.reply)?;\n\
             \x20       Ok(())\n\
             \x20   }}\n\
             }}\n\
             \n\
             maubot_plugin::export_plugin!({class});\n",
            id = self.id,
        )
    }

    fn base_config(&self) -> &'static str {
        "# The default config of new instances; each instance can change it.\n\
         # What the bot answers to !ping.\n\
         reply: pong\n"
    }

    /// The licence text, if mbc has it.
    fn license_text(&self) -> Option<String> {
        let (_, text) = LICENSES
            .iter()
            .find(|(ids, _)| ids.iter().any(|id| id.eq_ignore_ascii_case(&self.license)))?;
        Some(
            text.replace("{year}", &current_year().to_string())
                .replace("{holder}", &format!("The {} authors", self.name)),
        )
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A YAML scalar that reads back as the string `text` (one line, checked before): plain when
/// that is safe, else single-quoted.
fn yaml_string(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        && !text.starts_with(['.', '-', '+'])
        && text.parse::<f64>().is_err()
        && !lower.starts_with("0x")
        && !lower.starts_with("0o")
        && !matches!(
            lower.as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

pub fn init(args: InitArgs, term: &Term) -> Result<()> {
    let cwd = std::env::current_dir().context("cannot find the current folder")?;
    let folder = cwd
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned);
    let sdk = if args.wasm {
        Some(sdk_dependency(args.sdk_path.as_deref())?)
    } else {
        None
    };
    let plan = Plan {
        name: term.value(args.name, "Plugin name", folder.as_deref(), "--name")?,
        id: term.value(args.id, "Plugin ID (e.g. com.example.hello)", None, "--id")?,
        version: term.value(args.version, "Version", Some(DEFAULT_VERSION), "--version")?,
        license: term.value(
            args.license,
            "License (SPDX identifier)",
            Some(DEFAULT_LICENSE),
            "--license",
        )?,
        config: args.config
            || (term.interactive() && term.confirm("Should the plugin have a config?", false)?),
        sdk,
    };
    check(&plan)?;

    let mut files: Vec<(PathBuf, String)> = vec![(cwd.join("maubot.yaml"), plan.maubot_yaml())];
    match &plan.sdk {
        Some(sdk) => {
            files.push((cwd.join("Cargo.toml"), plan.cargo_toml(sdk)));
            files.push((cwd.join("src").join("lib.rs"), plan.lib_rs()));
        }
        None => files.push((cwd.join(&plan.name).join("__init__.py"), plan.module())),
    }
    if plan.config {
        files.push((cwd.join("base-config.yaml"), plan.base_config().to_owned()));
    }
    let license = plan.license_text();
    if let Some(text) = &license {
        files.push((cwd.join("LICENSE"), text.clone()));
    }
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, _)| relative(&cwd, path))
        .collect();
    if !existing.is_empty() {
        return Err(
            Failure::new(format!("not overwriting {}", existing.join(", ")))
                .hint("run mbc init in an empty folder, or move those files away"),
        );
    }

    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        term.out(&format!("Created {}", relative(&cwd, path)));
    }
    if license.is_none() && !plan.license.is_empty() {
        term.note(&format!(
            "mbc has no text of the licence {}: maubot.yaml names it; add its text as LICENSE yourself",
            plan.license
        ));
    }
    if plan.sdk.is_some() {
        term.note(&format!(
            "Plugin {} is ready: build it with `mbc build` (after `rustup target add wasm32-wasip2` once), or build and upload with `mbc build -u`",
            plan.id
        ));
    } else {
        term.note(&format!(
            "Plugin {} is ready: build it with `mbc build`, or build and upload with `mbc build -u`",
            plan.id
        ));
    }
    Ok(())
}

/// The SDK path a WebAssembly plugin's `Cargo.toml` names: `--sdk-path` as given (a relative
/// path is relative to the current folder, where `Cargo.toml` goes), else the SDK of the
/// checkout mbc was built from.
fn sdk_dependency(given: Option<&Path>) -> Result<String> {
    let Some(given) = given else {
        let sdk = Path::new(DEFAULT_SDK).canonicalize().map_err(|err| {
            Failure::new(format!("the maubot-plugin SDK is not at {DEFAULT_SDK}"))
                .caused_by(&err)
                .hint("mbc looks for it in the maubot-rs checkout it was built from; give the folder crates/maubot-plugin of a checkout with --sdk-path")
        })?;
        return path_text(&sdk);
    };
    let manifest = std::fs::read_to_string(given.join("Cargo.toml")).unwrap_or_default();
    if !manifest
        .lines()
        .any(|line| line.replace(' ', "") == "name=\"maubot-plugin\"")
    {
        return Err(Failure::new(format!(
            "{} is not the maubot-plugin SDK (no Cargo.toml of the package maubot-plugin there)",
            given.display()
        ))
        .hint("give the folder crates/maubot-plugin of a maubot-rs checkout with --sdk-path"));
    }
    path_text(given)
}

fn path_text(path: &Path) -> Result<String> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        Failure::new(format!("the path {} is not UTF-8", path.display()))
            .hint("Cargo.toml names the SDK by its path: give one that is UTF-8 with --sdk-path")
    })
}

/// Checks the answers with the server's own parser, naming the flag of a bad value.
fn check(plan: &Plan) -> Result<()> {
    for (value, flag) in [
        (&plan.name, "--name"),
        (&plan.id, "--id"),
        (&plan.version, "--version"),
        (&plan.license, "--license"),
    ] {
        if value.chars().any(char::is_control) {
            return Err(Failure::new(format!("{flag} must be one line of text")));
        }
    }
    if plan.sdk.is_some() && !is_crate_name(&plan.name) {
        let suggestion: String = plan
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        return Err(Failure::new(format!(
            "`{}` cannot be the plugin name: a WebAssembly plugin's name is its crate's",
            plan.name
        ))
        .hint(format!(
            "letters, digits, `_` and `-`, starting with a letter: give one with --name, e.g. {}",
            suggestion
                .trim_start_matches(|c: char| !c.is_ascii_alphabetic())
                .to_lowercase()
        )));
    }
    if !plan
        .license
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.+:() ".contains(c))
    {
        return Err(Failure::new(format!(
            "`{}` is not an SPDX licence identifier",
            plan.license
        ))
        .hint("give one like MIT or AGPL-3.0-or-later with --license, or --license '' for none"));
    }
    match PluginMeta::parse(&plan.maubot_yaml()) {
        Ok(_) => Ok(()),
        Err(MetaError::Invalid { field, detail }) => {
            let (what, flag, value) = match field.as_str() {
                "id" => ("plugin ID", "--id", &plan.id),
                "version" => ("version", "--version", &plan.version),
                _ => ("plugin name", "--name", &plan.name),
            };
            let mut failure = Failure::new(format!("`{value}` cannot be the {what}: {detail}"));
            if flag == "--name" {
                let suggestion: String = plan
                    .name
                    .chars()
                    .map(|c| if c.is_alphanumeric() { c } else { '_' })
                    .collect();
                failure = failure.hint(format!(
                    "the name is the plugin's Python module: give one with --name, e.g. {}",
                    suggestion.to_lowercase()
                ));
            } else {
                failure = failure.hint(format!("give another with {flag}"));
            }
            Err(failure)
        }
        Err(err) => Err(Failure::new(format!("cannot write maubot.yaml: {err}"))),
    }
}

/// Whether cargo takes `name` as a package name.
fn is_crate_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The current year (UTC), for the MIT licence's copyright line.
fn current_year() -> i64 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    year_of_day((seconds / 86_400) as i64)
}

/// The proleptic Gregorian year of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn year_of_day(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let year = year_of_era + era * 400;
    if month_index >= 10 { year + 1 } else { year }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, config: bool) -> Plan {
        Plan {
            name: name.into(),
            id: "com.example.hello".into(),
            version: "0.1.0".into(),
            license: "MIT".into(),
            config,
            sdk: None,
        }
    }

    #[test]
    fn the_wasm_definition_and_crate() {
        for config in [false, true] {
            let mut plan = plan("hello-world", config);
            plan.sdk = Some("/sdk/with \"quotes\"".into());
            check(&plan).expect("valid");
            let meta = PluginMeta::parse(&plan.maubot_yaml()).expect("valid");
            assert_eq!(meta.runtime, maubot_types::plugin::PluginRuntime::Wasm);
            assert_eq!(meta.wasm.as_deref(), Some("hello-world.wasm"));
            assert!(meta.modules.is_empty());
            assert_eq!(meta.config, config);
            assert!(meta.extra.is_empty(), "{:?}", meta.extra);
            let cargo = plan.cargo_toml(plan.sdk.as_deref().expect("sdk"));
            assert!(
                cargo.contains("name = \"hello-world\"\n")
                    && cargo.contains("version = \"0.1.0\"\n"),
                "{cargo}"
            );
            assert!(
                cargo.contains(r#"maubot-plugin = { path = "/sdk/with \"quotes\"" }"#),
                "{cargo}"
            );
            assert!(cargo.contains("crate-type = [\"cdylib\"]"), "{cargo}");
            assert_eq!(cargo.contains("serde"), config);
            let lib = plan.lib_rs();
            assert!(lib.contains("impl Plugin for HelloWorldBot {"), "{lib}");
            assert!(
                lib.contains("maubot_plugin::export_plugin!(HelloWorldBot);"),
                "{lib}"
            );
            assert_eq!(lib.contains("self.config.reply"), config);
        }
        let mut plan = plan("x", false);
        plan.sdk = Some("/sdk".into());
        plan.version = "1.2rc1".into();
        assert!(plan.cargo_toml("/sdk").contains("version = \"0.1.0\""));
        plan.version = "2.0.1".into();
        assert!(plan.cargo_toml("/sdk").contains("version = \"2.0.1\""));
        for bad in ["1x", "my.plugin", "_x", ""] {
            plan.name = bad.into();
            let err = check(&plan).expect_err(bad);
            assert!(err.hints[0].contains("--name"), "{err:?}");
        }
        plan.name = "my_plugin-2".into();
        check(&plan).expect("a crate name");
    }

    #[test]
    fn the_definition_is_valid() {
        for config in [false, true] {
            let plan = plan("hello_world", config);
            let meta = PluginMeta::parse(&plan.maubot_yaml()).expect("valid");
            assert_eq!(meta.modules, ["hello_world"]);
            assert_eq!(meta.main_class, "HelloWorldBot");
            assert_eq!(meta.config, config);
            assert_eq!(meta.extra_files.len(), usize::from(config));
            assert!(meta.extra.is_empty(), "{:?}", meta.extra);
            assert!(plan.module().contains("class HelloWorldBot(Plugin):"));
        }
    }

    #[test]
    fn yaml_strings_read_back_as_strings() {
        for (text, written) in [
            ("0.1.0", "0.1.0"),
            ("com.example.hello", "com.example.hello"),
            ("AGPL-3.0-or-later", "AGPL-3.0-or-later"),
            ("1.0", "'1.0'"),
            ("1", "'1'"),
            ("1e3", "'1e3'"),
            ("0x1F", "'0x1F'"),
            (".inf", "'.inf'"),
            ("yes", "'yes'"),
            ("", "''"),
            ("it's", "'it''s'"),
            ("a: b", "'a: b'"),
        ] {
            assert_eq!(yaml_string(text), written);
        }
        let mut plan = plan("x", false);
        for version in ["1.0", "1", "2024.1", "1.0.0"] {
            plan.version = version.into();
            let meta = PluginMeta::parse(&plan.maubot_yaml()).expect("valid");
            assert_eq!(meta.version.as_str(), version);
        }
    }

    #[test]
    fn class_names() {
        assert_eq!(plan("echo", false).class(), "EchoBot");
        assert_eq!(plan("echobot", false).class(), "EchobotBot");
        assert_eq!(plan("my_bot", false).class(), "MyBot");
        assert_eq!(plan("_x", false).class(), "XBot");
    }

    #[test]
    fn bad_values_name_their_flag() {
        let mut bad = plan("my-plugin", false);
        let err = check(&bad).expect_err("not a module");
        assert!(err.hints[0].contains("--name, e.g. my_plugin"), "{err:?}");
        bad.name = "ok".into();
        bad.version = "one".into();
        assert!(check(&bad).expect_err("version").hints[0].contains("--version"));
        bad.version = "1.0".into();
        bad.id = "a/b".into();
        assert!(check(&bad).expect_err("id").hints[0].contains("--id"));
        bad.id = "it's".into();
        check(&bad).expect("quotes are fine");
        bad.license = "MIT\nx".into();
        assert!(check(&bad).is_err());
    }

    #[test]
    fn licence_texts() {
        let mut plan = plan("hello", false);
        let mit = plan.license_text().expect("MIT");
        assert!(mit.contains("Copyright (c) 20"), "{mit}");
        assert!(mit.contains("The hello authors"), "{mit}");
        plan.license = "agpl-3.0-or-later".into();
        assert!(
            plan.license_text()
                .expect("AGPL")
                .contains("GNU AFFERO GENERAL PUBLIC LICENSE")
        );
        plan.license = "BSD-3-Clause".into();
        assert_eq!(plan.license_text(), None);
    }

    #[test]
    fn years() {
        assert_eq!(year_of_day(0), 1970);
        assert_eq!(year_of_day(364), 1970);
        assert_eq!(year_of_day(365), 1971);
        assert_eq!(year_of_day(19_722), 2023); // 2023-12-31
        assert_eq!(year_of_day(19_723), 2024);
        assert_eq!(year_of_day(-1), 1969);
    }
}
