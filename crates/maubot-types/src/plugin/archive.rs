//! Reading an uploaded `.mbp` archive and checking it as maubot does before it keeps the file
//! (docs/compatibility.md, "Plugin archives"), plus size and path checks of our own.
//!
//! The checks run in this order, and the first that fails is reported:
//! 1. the bytes are a ZIP archive;
//! 2. it has at most [`ArchiveLimits::max_entries`] entries, and their declared sizes add up to
//!    at most [`ArchiveLimits::max_uncompressed_bytes`] (what is actually read is counted against
//!    the same limit, since headers can lie);
//! 3. every entry path stays inside the archive, and none appears twice;
//! 4. `maubot.yaml` is at the root;
//! 5. it is YAML, 6. it is a valid plugin definition ([`PluginMeta`]), 7. it does not require a
//!    newer maubot than [`MAUBOT_COMPAT_VERSION`];
//! 8. every module of `modules` is in the archive, as `name.py` or `name/__init__.py`;
//! 9. the main module is in the archive and binds the main class at its top level;
//! 10. `base-config.yaml`, if present, is UTF-8 text.

use std::io::{Cursor, Read};

use zip::ZipArchive;
use zip::result::ZipError;

use super::meta::{MetaError, PluginMeta, PluginRuntime};
use super::pep440::Version;
use crate::MAUBOT_COMPAT_VERSION;

/// Bounds on what an archive may unpack to, against ZIP bombs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// The most entries (files and folders) an archive may have. Default 10 000.
    pub max_entries: usize,
    /// The most bytes all entries together may unpack to, as declared in the archive and as
    /// actually read. Default 256 MiB.
    pub max_uncompressed_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_entries: 10_000,
            max_uncompressed_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A plugin archive that passed every check.
#[derive(Debug, Clone)]
pub struct PluginArchive {
    /// The plugin definition, from `maubot.yaml`.
    pub meta: PluginMeta,
    /// The text of `base-config.yaml` at the root, if there is one.
    pub base_config: Option<String>,
    file_names: Vec<String>,
}

/// Why an archive was refused. Every variant is the caller's fault: the API answers
/// 400 `plugin_invalid` (see [`ArchiveError::errcode`]) with the `Display` text, which starts
/// with maubot's own message and then says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The bytes are not a ZIP archive.
    #[error(
        "File is not a maubot plugin: it is not a ZIP archive ({0}); upload the .mbp file that `mbc build` makes"
    )]
    NotAZip(String),
    /// An entry cannot be read: damaged, encrypted, an unsupported compression method, or
    /// more data than its header declares.
    #[error(
        "File is not a maubot plugin: the entry `{entry}` cannot be read ({detail}); build the archive again"
    )]
    Damaged {
        /// The entry's path in the archive.
        entry: String,
        /// The ZIP reader's explanation.
        detail: String,
    },
    /// More entries than [`ArchiveLimits::max_entries`].
    #[error(
        "File is not a maubot plugin: it has {count} entries, more than the {max} allowed; leave caches and data out of the archive"
    )]
    TooManyEntries {
        /// Entries in the archive.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The entries unpack to more than [`ArchiveLimits::max_uncompressed_bytes`].
    #[error(
        "File is not a maubot plugin: its contents unpack to more than {max} bytes{}; leave caches and data out of the archive",
        .declared.map(|size| format!(" ({size} declared)")).unwrap_or_default()
    )]
    TooLarge {
        /// The total size the entries declare, if that is what is over the limit (else the
        /// excess was found while reading).
        declared: Option<u64>,
        /// The limit.
        max: u64,
    },
    /// An entry's path is absolute, goes up with `..`, has a backslash, NUL or a drive letter.
    #[error(
        "File is not a maubot plugin: the entry `{entry}` has an unsafe path; entry paths must be relative, with `/` separators and no `..`"
    )]
    UnsafePath {
        /// The entry's path in the archive (NUL shown as `\0`).
        entry: String,
    },
    /// Two entries have the same path, so readers could disagree on which one counts. (The ZIP
    /// reader keeps one of them, so which path it is cannot be said.)
    #[error("File is not a maubot plugin: two entries have the same path; build the archive again")]
    DuplicateEntry,
    /// No `maubot.yaml` at the root of the archive.
    #[error(
        "File does not contain a maubot plugin definition: {}",
        no_definition_hint(.nested_in.as_deref())
    )]
    NoDefinition {
        /// A top-level folder holding a `maubot.yaml` (with its trailing `/`), if there is one.
        nested_in: Option<String>,
    },
    /// `maubot.yaml` is not YAML.
    #[error("Maubot plugin definition file is not valid YAML: {0}")]
    InvalidYaml(String),
    /// `maubot.yaml` is YAML but not a valid plugin definition.
    #[error("Maubot plugin definition in file is invalid: {field}: {detail}")]
    InvalidDefinition {
        /// The field, as a path (`version`, `modules[1]`).
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// The plugin's `maubot` version is newer than this server's.
    #[error(
        "Plugin requires maubot {required}, but this instance is {ours}; use a release of the plugin made for this maubot version"
    )]
    RequiresNewerMaubot {
        /// The plugin's minimum maubot version, normalised (as maubot shows it).
        required: String,
        /// [`MAUBOT_COMPAT_VERSION`].
        ours: String,
    },
    /// A module of `modules` is not in the archive.
    #[error(
        "Module {module} not found in file: put {module}.py or {module}/__init__.py at the top level of the archive"
    )]
    ModuleMissing {
        /// The module's name.
        module: String,
    },
    /// The main module (named in `main_class`) is not in the archive.
    #[error(
        "Main module {module} not found in file: put {path}.py or {path}/__init__.py in the archive"
    )]
    MainModuleMissing {
        /// The module's (dotted) name.
        module: String,
        /// The module as a path (`a/b` for `a.b`).
        path: String,
    },
    /// The main module does not define or import the main class at its top level.
    #[error(
        "Main class {class} not in {module}: define it (`class {class}(Plugin):`) or import it at the top level of {file}"
    )]
    MainClassMissing {
        /// The main class's name.
        class: String,
        /// The main module's name.
        module: String,
        /// The file searched.
        file: String,
    },
    /// A WebAssembly plugin's component is not in the archive.
    #[error(
        "Component {path} not in the plugin file: `wasm` in maubot.yaml names a file the archive lacks"
    )]
    ComponentMissing {
        /// The path `wasm` names.
        path: String,
    },
    /// `base-config.yaml` is not UTF-8.
    #[error(
        "Plugin base config {} is not UTF-8 text; save it as UTF-8",
        PluginArchive::BASE_CONFIG
    )]
    BaseConfigNotUtf8,
}

fn no_definition_hint(nested_in: Option<&str>) -> String {
    match nested_in {
        Some(folder) => format!(
            "{} is inside the folder `{folder}`; build the archive from inside that folder (mbc build does this)",
            PluginArchive::DEFINITION
        ),
        None => format!(
            "there is no {} at the top level of the archive; every plugin needs one (mbc init writes one)",
            PluginArchive::DEFINITION
        ),
    }
}

impl ArchiveError {
    /// The API errcode for every archive error: maubot answers them all with 400
    /// `plugin_invalid`.
    pub fn errcode(&self) -> &'static str {
        "plugin_invalid"
    }

    /// Whether the archive was refused for its size or number of entries rather than its
    /// contents (worth a log line: it may be an attempted ZIP bomb).
    pub fn is_limit_exceeded(&self) -> bool {
        matches!(
            self,
            ArchiveError::TooManyEntries { .. } | ArchiveError::TooLarge { .. }
        )
    }
}

impl From<MetaError> for ArchiveError {
    fn from(err: MetaError) -> Self {
        match err {
            MetaError::Syntax(detail) => ArchiveError::InvalidYaml(detail),
            MetaError::Invalid { field, detail } => {
                ArchiveError::InvalidDefinition { field, detail }
            }
        }
    }
}

impl PluginArchive {
    /// The plugin definition's path in the archive.
    pub const DEFINITION: &str = "maubot.yaml";
    /// The default instance config's path in the archive.
    pub const BASE_CONFIG: &str = "base-config.yaml";

    /// One file of an archive that [`PluginArchive::read`] accepted (a WebAssembly plugin's
    /// component), read within the same limits.
    pub fn read_file(
        bytes: &[u8],
        name: &str,
        limits: &ArchiveLimits,
    ) -> Result<Vec<u8>, ArchiveError> {
        let archive = ZipArchive::new(Cursor::new(bytes))
            .map_err(|err| ArchiveError::NotAZip(err.to_string()))?;
        Reader {
            archive,
            budget: limits.max_uncompressed_bytes,
        }
        .read(name)
    }

    /// Reads and checks an archive (see the module documentation for the checks).
    pub fn read(bytes: &[u8], limits: &ArchiveLimits) -> Result<PluginArchive, ArchiveError> {
        let archive = ZipArchive::new(Cursor::new(bytes))
            .map_err(|err| ArchiveError::NotAZip(err.to_string()))?;

        if archive.len() > limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                count: archive.len(),
                max: limits.max_entries,
            });
        }
        let metadata = archive.metadata();
        let mut file_names = Vec::with_capacity(archive.len());
        let mut declared: u64 = 0;
        for index in 0..archive.len() {
            let entry = metadata.entry(index).map_err(|err| ArchiveError::Damaged {
                entry: format!("#{index}"),
                detail: err.to_string(),
            })?;
            let name = entry.name().map_err(|err| ArchiveError::Damaged {
                entry: String::from_utf8_lossy(entry.name_raw()).into_owned(),
                detail: err.to_string(),
            })?;
            declared = declared.saturating_add(entry.size());
            file_names.push(name.into_owned());
        }
        if declared > limits.max_uncompressed_bytes {
            return Err(ArchiveError::TooLarge {
                declared: Some(declared),
                max: limits.max_uncompressed_bytes,
            });
        }
        if let Some(name) = file_names.iter().find(|name| is_unsafe_path(name)) {
            return Err(ArchiveError::UnsafePath {
                entry: name.replace('\0', "\\0"),
            });
        }
        if metadata.has_duplicate_names() {
            return Err(ArchiveError::DuplicateEntry);
        }

        if !file_names.iter().any(|name| name == Self::DEFINITION) {
            let mut nested: Vec<&str> = file_names
                .iter()
                .filter_map(|name| name.strip_suffix(Self::DEFINITION))
                .filter(|folder| folder.ends_with('/') && folder.matches('/').count() == 1)
                .collect();
            nested.sort_unstable();
            return Err(ArchiveError::NoDefinition {
                nested_in: nested.first().map(|folder| (*folder).to_owned()),
            });
        }

        let mut reader = Reader {
            archive,
            budget: limits.max_uncompressed_bytes,
        };
        let definition = reader.read(Self::DEFINITION)?;
        let definition = definition
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&definition);
        let definition = std::str::from_utf8(definition)
            .map_err(|_| ArchiveError::InvalidYaml("it is not UTF-8 text".to_owned()))?;
        let meta = PluginMeta::parse(definition)?;

        let ours = Version::parse(MAUBOT_COMPAT_VERSION)
            .unwrap_or_else(|_| unreachable!("MAUBOT_COMPAT_VERSION is a valid version"));
        if let Some(required) = meta.requires_newer_maubot(&ours) {
            return Err(ArchiveError::RequiresNewerMaubot {
                required: required.normalized(),
                ours: ours.normalized(),
            });
        }

        let has = |path: &str| file_names.iter().any(|name| name == path);
        match meta.runtime {
            PluginRuntime::Python => check_python_modules(&meta, &file_names, &mut reader)?,
            PluginRuntime::Wasm => {
                let component = meta.wasm.as_deref().unwrap_or_default();
                if !has(component) {
                    return Err(ArchiveError::ComponentMissing {
                        path: component.to_owned(),
                    });
                }
            }
        }

        let base_config = if has(Self::BASE_CONFIG) {
            let text = String::from_utf8(reader.read(Self::BASE_CONFIG)?)
                .map_err(|_| ArchiveError::BaseConfigNotUtf8)?;
            Some(text)
        } else {
            None
        };

        Ok(PluginArchive {
            meta,
            base_config,
            file_names,
        })
    }

    /// Every entry's path, in archive order (folders end with `/`).
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        self.file_names.iter().map(String::as_str)
    }
}

/// maubot's checks of a Python plugin's modules: every module is in the archive, and the main
/// module binds the main class.
fn check_python_modules(
    meta: &PluginMeta,
    file_names: &[String],
    reader: &mut Reader<'_>,
) -> Result<(), ArchiveError> {
    let has = |path: &str| file_names.iter().any(|name| name == path);
    let module_file = |path: &str| {
        [format!("{path}.py"), format!("{path}/__init__.py")]
            .into_iter()
            .find(|file| has(file))
    };
    for module in &meta.modules {
        if module_file(module).is_none() {
            return Err(ArchiveError::ModuleMissing {
                module: module.clone(),
            });
        }
    }
    let main_module = meta.main_module();
    let main_path = main_module.replace('.', "/");
    let Some(main_file) = module_file(&main_path) else {
        return Err(ArchiveError::MainModuleMissing {
            module: main_module.to_owned(),
            path: main_path,
        });
    };
    let source = reader.read(&main_file)?;
    let class = meta.main_class_name();
    if !binds_name(&String::from_utf8_lossy(&source), class) {
        return Err(ArchiveError::MainClassMissing {
            class: class.to_owned(),
            module: main_module.to_owned(),
            file: main_file,
        });
    }
    Ok(())
}

/// Reads entries, counting every byte unpacked against one budget.
struct Reader<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    budget: u64,
}

impl Reader<'_> {
    fn read(&mut self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let damaged = |err: &dyn std::fmt::Display| ArchiveError::Damaged {
            entry: name.to_owned(),
            detail: err.to_string(),
        };
        let file = self
            .archive
            .by_name(name)
            .map_err(|err: ZipError| damaged(&err))?;
        let max = self.budget;
        read_capped(file, &mut self.budget).map_err(|err| match err {
            CappedReadError::OverBudget => ArchiveError::TooLarge {
                declared: None,
                max,
            },
            CappedReadError::Io(err) => damaged(&err),
        })
    }
}

enum CappedReadError {
    OverBudget,
    Io(std::io::Error),
}

/// Reads all of `reader` if it holds at most `budget` bytes, and takes what it read from the
/// budget. Never reads more than one byte past the budget, whatever headers declared.
fn read_capped(reader: impl Read, budget: &mut u64) -> Result<Vec<u8>, CappedReadError> {
    let mut data = Vec::new();
    reader
        .take(budget.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(CappedReadError::Io)?;
    let read = data.len() as u64;
    if read > *budget {
        return Err(CappedReadError::OverBudget);
    }
    *budget -= read;
    Ok(data)
}

/// Whether an entry path could land outside the folder it is unpacked into, or means different
/// things on different systems.
fn is_unsafe_path(name: &str) -> bool {
    let bytes = name.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    drive
        || name.starts_with('/')
        || name.contains(['\\', '\0'])
        || name.split('/').any(|part| part == "..")
}

/// Whether Python `source` binds `name` in a statement of its own: `class Name`, `Name = ...`,
/// `Name: T = ...`, `import Name`, `import x as Name`, `from x import Name` (or `... as Name`,
/// also in parentheses over several lines).
///
/// This approximates maubot's check, which compiles the module and looks for the name among
/// the module code's names. Statements are found at any indentation, so definitions inside
/// `try:` or `if` blocks at module level count, as they do for maubot; a class defined only
/// inside a function also counts here (maubot would refuse it), and then fails when the plugin
/// host imports it.
fn binds_name(source: &str, name: &str) -> bool {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    statements(source)
        .iter()
        .any(|statement| statement_binds(statement.trim(), name))
}

fn statement_binds(statement: &str, name: &str) -> bool {
    if let Some(rest) = after_keyword(statement, "class") {
        return leading_identifier(rest.trim_start()) == Some(name);
    }
    if let Some(rest) = after_keyword(statement, "import") {
        return rest
            .split(',')
            .any(|item| import_binding(item, true) == Some(name));
    }
    if let Some(rest) = after_keyword(statement, "from") {
        let Some(names) = imported_names(rest) else {
            return false;
        };
        let names = names.trim().trim_start_matches('(').trim_end_matches(')');
        return names
            .split(',')
            .any(|item| import_binding(item, false) == Some(name));
    }
    if leading_identifier(statement) == Some(name) {
        let after = statement[name.len()..].trim_start();
        return (after.starts_with('=') && !after.starts_with("==")) || after.starts_with(':');
    }
    false
}

/// The text after a leading keyword followed by whitespace.
fn after_keyword<'a>(statement: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = statement.strip_prefix(keyword)?;
    rest.starts_with(char::is_whitespace).then_some(rest)
}

/// In `<module> import <names>` (what follows `from`), the names.
fn imported_names(rest: &str) -> Option<&str> {
    rest.match_indices("import").find_map(|(at, word)| {
        let before = rest[..at].chars().next_back()?;
        let after = rest[at + word.len()..].chars().next()?;
        ((before.is_whitespace() || before == '.') && (after.is_whitespace() || after == '('))
            .then(|| &rest[at + word.len()..])
    })
}

/// The name an import item binds: the alias, or else the name itself (for `import a.b`, `a`).
fn import_binding(item: &str, plain_import: bool) -> Option<&str> {
    match item.split_whitespace().collect::<Vec<_>>().as_slice() {
        [_, "as", alias] => Some(alias),
        [single] if plain_import => single.split('.').next(),
        [single] => Some(single),
        _ => None,
    }
}

fn leading_identifier(text: &str) -> Option<&str> {
    let end = text
        .char_indices()
        .find(|&(_, c)| !(c == '_' || c.is_alphanumeric()))
        .map_or(text.len(), |(at, _)| at);
    let identifier = &text[..end];
    identifier
        .chars()
        .next()
        .is_some_and(|c| !c.is_numeric())
        .then_some(identifier)
}

/// Splits Python source into logical statements: comments dropped, string literals replaced by
/// `""`, bracketed and backslash-continued lines joined, `;` separating.
fn statements(source: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '\'' | '"' => {
                let mut ahead = chars.clone();
                let triple = ahead.next() == Some(c) && ahead.next() == Some(c);
                if triple {
                    chars.next();
                    chars.next();
                }
                skip_string(&mut chars, c, triple);
                current.push_str("\"\"");
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                current.push(' ');
            }
            '\r' => {}
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            '\n' | ';' if depth == 0 => statements.push(std::mem::take(&mut current)),
            '\n' => current.push(' '),
            c => current.push(c),
        }
    }
    statements.push(current);
    statements
}

/// Skips the rest of a string literal opened by `quote` (three of them if `triple`).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, quote: char, triple: bool) {
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\n' if !triple => return,
            c if c == quote => {
                if !triple {
                    return;
                }
                if chars.next_if_eq(&quote).is_some() && chars.next_if_eq(&quote).is_some() {
                    return;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    use super::*;

    const META: &str = "maubot: 0.1.0\nid: xyz.maubot.echo\nversion: 1.4.0\nmodules: [echo]\nmain_class: EchoBot\n";
    const SOURCE: &str = "from maubot import Plugin\n\n\nclass EchoBot(Plugin):\n    pass\n";

    fn zip_with(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            if name.ends_with('/') {
                writer
                    .add_directory(*name, SimpleFileOptions::default())
                    .expect("add folder");
                continue;
            }
            writer
                .start_file(
                    *name,
                    SimpleFileOptions::default().compression_method(method),
                )
                .expect("start entry");
            writer.write_all(data).expect("write entry");
        }
        writer.finish().expect("finish zip").into_inner()
    }

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        zip_with(entries, CompressionMethod::Deflated)
    }

    #[test]
    fn webassembly_plugins_need_their_component() {
        let meta: &[u8] = b"id: xyz.example.ping\nversion: 1.0.0\nruntime: wasm\nwasm: ping.wasm\n";
        let archive = read(&zip(&[("maubot.yaml", meta), ("ping.wasm", b"\0asm")])).expect("valid");
        assert_eq!(archive.meta.wasm.as_deref(), Some("ping.wasm"));
        assert_eq!(
            read(&zip(&[("maubot.yaml", meta)])).err(),
            Some(ArchiveError::ComponentMissing {
                path: "ping.wasm".into()
            })
        );
    }

    fn read(bytes: &[u8]) -> Result<PluginArchive, ArchiveError> {
        PluginArchive::read(bytes, &ArchiveLimits::default())
    }

    fn refused(bytes: &[u8]) -> ArchiveError {
        read(bytes).expect_err("should be refused")
    }

    /// Replaces every occurrence of `from` by `to` (same length) in the raw archive: local
    /// headers and the central directory alike.
    fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
        assert_eq!(from.len(), to.len());
        let mut found = 0;
        let mut at = 0;
        while at + from.len() <= bytes.len() {
            if &bytes[at..at + from.len()] == from {
                bytes[at..at + from.len()].copy_from_slice(to);
                found += 1;
                at += from.len();
            } else {
                at += 1;
            }
        }
        assert!(found > 0, "nothing to patch");
    }

    /// Sets the declared uncompressed size of every entry to `size`, in the local headers
    /// (offset 22) and the central directory (offset 24).
    fn lie_about_sizes(bytes: &mut [u8], size: u32) {
        for (signature, offset) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
            let starts: Vec<usize> = bytes
                .windows(4)
                .enumerate()
                .filter(|(_, w)| w == signature)
                .map(|(at, _)| at)
                .collect();
            for at in starts {
                bytes[at + offset..at + offset + 4].copy_from_slice(&size.to_le_bytes());
            }
        }
    }

    #[test]
    fn reads_a_single_module_plugin() {
        let archive = read(&zip(&[
            ("maubot.yaml", META.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
            ("base-config.yaml", b"prefix: echo\n"),
        ]))
        .expect("valid");
        assert_eq!(archive.meta.id.as_str(), "xyz.maubot.echo");
        assert_eq!(archive.base_config.as_deref(), Some("prefix: echo\n"));
        assert_eq!(
            archive.file_names().collect::<Vec<_>>(),
            ["maubot.yaml", "echo.py", "base-config.yaml"]
        );
    }

    #[test]
    fn reads_a_package_plugin_stored_uncompressed() {
        let meta = "id: xyz.maubot.rss\nversion: 0.3.2\nmodules: [rss]\nmain_class: RSSBot\n\
                    database: true\ndatabase_type: asyncpg\n";
        let init = "from .bot import RSSBot\n\n__all__ = ['RSSBot']\n";
        let archive = read(&zip_with(
            &[
                ("maubot.yaml", meta.as_bytes()),
                ("rss/", b""),
                ("rss/__init__.py", init.as_bytes()),
                ("rss/bot.py", b"class RSSBot: pass\n"),
            ],
            CompressionMethod::Stored,
        ))
        .expect("valid");
        assert_eq!(archive.meta.main_module(), "rss");
        assert_eq!(archive.base_config, None);
        assert_eq!(archive.file_names().count(), 4);
    }

    #[test]
    fn main_class_in_a_named_module() {
        let meta = "id: a\nversion: '1.0'\nmodules: [helpers, bot]\nmain_class: bot/Bot\n";
        let ok = zip(&[
            ("maubot.yaml", meta.as_bytes()),
            ("helpers.py", b"X = 1\n"),
            ("bot.py", b"class Bot:\n    pass\n"),
        ]);
        assert_eq!(read(&ok).expect("valid").meta.main_class_name(), "Bot");

        // The class is in `helpers`, but `main_class` says `bot`.
        let wrong = zip(&[
            ("maubot.yaml", meta.as_bytes()),
            ("helpers.py", b"class Bot:\n    pass\n"),
            ("bot.py", b"X = 1\n"),
        ]);
        let err = refused(&wrong);
        assert!(
            err.to_string().starts_with("Main class Bot not in bot: "),
            "{err}"
        );

        // A dotted main module is looked up as a path.
        let meta = "id: a\nversion: '1.0'\nmodules: [pkg]\nmain_class: pkg.bot/Bot\n";
        let dotted = |files: &[(&str, &[u8])]| {
            let mut entries = vec![("maubot.yaml", meta.as_bytes())];
            entries.extend_from_slice(files);
            read(&zip(&entries))
        };
        dotted(&[
            ("pkg/__init__.py", b""),
            ("pkg/bot.py", b"class Bot: ...\n"),
        ])
        .expect("valid");
        let err = dotted(&[("pkg/__init__.py", b"")]).expect_err("no pkg/bot.py");
        assert_eq!(
            err.to_string(),
            "Main module pkg.bot not found in file: put pkg/bot.py or pkg/bot/__init__.py in the archive"
        );
    }

    #[test]
    fn not_a_zip() {
        for bytes in [&b""[..], b"maubot.yaml", b"PK\x03\x04 truncated"] {
            let err = refused(bytes);
            assert!(matches!(err, ArchiveError::NotAZip(_)), "{err:?}");
            assert!(err.to_string().starts_with("File is not a maubot plugin: "));
        }
    }

    #[test]
    fn too_many_entries() {
        let names: Vec<String> = (0..20).map(|i| format!("f{i}.txt")).collect();
        let mut entries: Vec<(&str, &[u8])> = vec![("maubot.yaml", META.as_bytes())];
        entries.extend(names.iter().map(|n| (n.as_str(), &b""[..])));
        let limits = ArchiveLimits {
            max_entries: 10,
            ..ArchiveLimits::default()
        };
        let err = PluginArchive::read(&zip(&entries), &limits).expect_err("too many");
        assert_eq!(err, ArchiveError::TooManyEntries { count: 21, max: 10 });
        assert!(err.is_limit_exceeded());
        assert!(
            err.to_string()
                .starts_with("File is not a maubot plugin: it has 21 entries")
        );
    }

    #[test]
    fn too_large_as_declared() {
        let big = vec![b' '; 4096];
        let bytes = zip(&[
            ("maubot.yaml", META.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
            ("data.bin", &big),
        ]);
        let limits = ArchiveLimits {
            max_uncompressed_bytes: 4096,
            ..ArchiveLimits::default()
        };
        let err = PluginArchive::read(&bytes, &limits).expect_err("too large");
        assert!(
            matches!(err, ArchiveError::TooLarge { declared: Some(size), max: 4096 } if size > 4096),
            "{err:?}"
        );
        assert!(err.is_limit_exceeded());
        assert_eq!(err.errcode(), "plugin_invalid");
    }

    /// Headers that declare tiny sizes for a ZIP bomb must not get it unpacked: reading stops
    /// just past the declared size (or the budget), never at the real size.
    #[test]
    fn headers_that_lie_about_sizes() {
        let mut yaml = META.to_owned();
        yaml.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
        let mut bytes = zip(&[
            ("maubot.yaml", yaml.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
        ]);
        assert!(bytes.len() < 10_000, "the comment compresses well");
        lie_about_sizes(&mut bytes, 100);
        let limits = ArchiveLimits {
            max_uncompressed_bytes: 64 * 1024,
            ..ArchiveLimits::default()
        };
        let err = PluginArchive::read(&bytes, &limits).expect_err("lying headers");
        assert!(
            matches!(
                &err,
                ArchiveError::Damaged { entry, .. } if entry == "maubot.yaml"
            ) || matches!(err, ArchiveError::TooLarge { declared: None, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn reading_is_capped_whatever_was_declared() {
        let data = vec![0u8; 1000];
        let mut budget = 1500;
        assert_eq!(
            read_capped(&data[..], &mut budget).ok().map(|d| d.len()),
            Some(1000)
        );
        assert_eq!(budget, 500);
        assert!(matches!(
            read_capped(&data[..], &mut budget),
            Err(CappedReadError::OverBudget)
        ));
        // An endless reader is read only one byte past the budget.
        let mut budget = 10;
        assert!(matches!(
            read_capped(std::io::repeat(b'x'), &mut budget),
            Err(CappedReadError::OverBudget)
        ));
    }

    #[test]
    fn zip_slip_entries_are_refused() {
        for name in [
            "../evil.py",
            "a/../../evil.py",
            "/etc/evil.py",
            "a\\b.py",
            "C:evil.py",
            "c:/evil.py",
            "..",
        ] {
            let err = refused(&zip(&[
                ("maubot.yaml", META.as_bytes()),
                ("echo.py", SOURCE.as_bytes()),
                (name, b"x = 1\n"),
            ]));
            assert_eq!(
                err,
                ArchiveError::UnsafePath {
                    entry: name.to_owned()
                },
                "{name}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
        let mut bytes = zip(&[
            ("maubot.yaml", META.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
            ("aXb.py", b""),
        ]);
        patch(&mut bytes, b"aXb.py", b"a\0b.py");
        assert_eq!(
            refused(&bytes),
            ArchiveError::UnsafePath {
                entry: "a\\0b.py".to_owned()
            }
        );
        // `..` inside a name is fine.
        read(&zip(&[
            ("maubot.yaml", META.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
            ("a..b/c..", b""),
        ]))
        .expect("valid");
    }

    #[test]
    fn duplicate_entries_are_refused() {
        let mut bytes = zip(&[
            ("maubot.yaml", META.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
            ("ech0.py", b"class Other: pass\n"),
        ]);
        patch(&mut bytes, b"ech0.py", b"echo.py");
        assert_eq!(refused(&bytes), ArchiveError::DuplicateEntry);
    }

    #[test]
    fn missing_definition() {
        let err = refused(&zip(&[("echo.py", SOURCE.as_bytes())]));
        assert_eq!(err, ArchiveError::NoDefinition { nested_in: None });
        assert!(
            err.to_string().starts_with(
                "File does not contain a maubot plugin definition: there is no maubot.yaml"
            ),
            "{err}"
        );
    }

    /// GitHub's "Download ZIP" wraps everything in `<repo>-<branch>/`.
    #[test]
    fn definition_in_a_folder() {
        let err = refused(&zip(&[
            ("echo-main/", b""),
            ("echo-main/maubot.yaml", META.as_bytes()),
            ("echo-main/echo.py", SOURCE.as_bytes()),
            ("echo-main/deeper/maubot.yaml", META.as_bytes()),
        ]));
        assert_eq!(
            err.to_string(),
            "File does not contain a maubot plugin definition: maubot.yaml is inside the folder \
             `echo-main/`; build the archive from inside that folder (mbc build does this)"
        );
        // Two levels down is not pointed at.
        let err = refused(&zip(&[("a/b/maubot.yaml", META.as_bytes())]));
        assert_eq!(err, ArchiveError::NoDefinition { nested_in: None });
    }

    #[test]
    fn definition_not_yaml() {
        for yaml in [&b"id: [unclosed\n"[..], b"id: \xff\xfe\n"] {
            let err = refused(&zip(&[
                ("maubot.yaml", yaml),
                ("echo.py", SOURCE.as_bytes()),
            ]));
            assert!(matches!(err, ArchiveError::InvalidYaml(_)), "{err:?}");
            assert!(
                err.to_string()
                    .starts_with("Maubot plugin definition file is not valid YAML: "),
                "{err}"
            );
        }
        // A byte-order mark is not an error.
        let with_bom = format!("\u{feff}{META}");
        read(&zip(&[
            ("maubot.yaml", with_bom.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
        ]))
        .expect("valid");
    }

    #[test]
    fn definition_invalid() {
        let yaml = "id: xyz.maubot.echo\nversion: 1.0\nmodules: [echo]\nmain_class: EchoBot\n";
        let err = refused(&zip(&[
            ("maubot.yaml", yaml.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
        ]));
        assert!(
            matches!(&err, ArchiveError::InvalidDefinition { field, .. } if field == "version"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("Maubot plugin definition in file is invalid: version: "),
            "{err}"
        );
    }

    #[test]
    fn requires_newer_maubot() {
        let yaml = META.replace("maubot: 0.1.0", "maubot: 0.7.0");
        let err = refused(&zip(&[
            ("maubot.yaml", yaml.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
        ]));
        assert!(
            err.to_string()
                .starts_with("Plugin requires maubot 0.7.0, but this instance is 0.6.0"),
            "{err}"
        );
        let yaml = META.replace("maubot: 0.1.0", "maubot: 0.6.0");
        read(&zip(&[
            ("maubot.yaml", yaml.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
        ]))
        .expect("0.6.0 is this version");
    }

    #[test]
    fn module_missing() {
        let yaml = META.replace("[echo]", "[util, echo]");
        for util in ["utils.py", "util/x.py", "sub/util.py", "util.pyc"] {
            let err = refused(&zip(&[
                ("maubot.yaml", yaml.as_bytes()),
                ("echo.py", SOURCE.as_bytes()),
                (util, b""),
            ]));
            assert_eq!(
                err.to_string(),
                "Module util not found in file: put util.py or util/__init__.py at the top level of the archive"
            );
        }
    }

    #[test]
    fn main_class_missing() {
        let err = refused(&zip(&[
            ("maubot.yaml", META.as_bytes()),
            (
                "echo.py",
                b"class EchoBotBase:\n    pass\n# class EchoBot\nx = 'class EchoBot'\n",
            ),
        ]));
        assert_eq!(
            err,
            ArchiveError::MainClassMissing {
                class: "EchoBot".to_owned(),
                module: "echo".to_owned(),
                file: "echo.py".to_owned()
            }
        );
        assert!(
            err.to_string()
                .starts_with("Main class EchoBot not in echo: ")
        );
    }

    #[test]
    fn base_config_must_be_utf8() {
        let err = refused(&zip(&[
            ("maubot.yaml", META.as_bytes()),
            ("echo.py", SOURCE.as_bytes()),
            ("base-config.yaml", b"name: \xe9\n"),
        ]));
        assert_eq!(err, ArchiveError::BaseConfigNotUtf8);
    }

    #[test]
    fn finds_top_level_bindings() {
        let yes = [
            "class Bot(Plugin):\n    pass\n",
            "class Bot:\n    pass\n",
            "@decorator\nclass Bot (Plugin) :\n    pass\n",
            "Bot = make()\n",
            "Bot: type = make()\n",
            "from .bot import Bot\n",
            "from .bot import Other, Bot\n",
            "from .bot import (\n    Other,  # comment\n    Bot,\n)\n",
            "from .bot import Real as Bot\n",
            "from . import Bot\n",
            "from .import Bot\n",
            "import Bot\n",
            "import x.y as Bot\n",
            "import Bot.sub\n",
            "import os; from .bot import Bot\n",
            "try:\n    from .bot import Bot\nexcept ImportError:\n    raise\n",
            "x = (\n  1\n)\nfrom .bot \\\n    import Bot\n",
            "\"\"\"Docs.\n\nclass Nope\n\"\"\"\r\nclass Bot:\r\n    pass\r\n",
            "\u{feff}from .bot import Bot\n",
        ];
        for source in yes {
            assert!(binds_name(source, "Bot"), "{source:?}");
        }
        let no = [
            "",
            "class BotBase:\n    pass\n",
            "# class Bot\n",
            "x = 'class Bot'\n",
            "\"\"\"\nclass Bot:\n\"\"\"\n",
            "Bot == 1\n",
            "from .Bot import Other\n",
            "from .bot import *\n",
            "from .bot import Bot as Other\n",
            // Uses that maubot accepts (the name is among the code's names), we don't.
            "print(Bot)\n",
            "MyBot = Bot\n",
            "x = '''\n''' + \"class Bot\"\n",
        ];
        for source in no {
            assert!(!binds_name(source, "Bot"), "{source:?}");
        }
    }
}
