//! Packing a plugin folder into an `.mbp` archive, as maubot's `mbc build` does:
//! `maubot.yaml` re-written from the parsed definition (every field, defaults included), each
//! module as `name.py` or the package folder `name/` (with `__init__.py`; caches left out), and
//! the files matching the `extra_files` globs. A WebAssembly plugin (`runtime: wasm`) has its
//! component instead of modules, at the path `wasm` names: built by cargo when the folder has a
//! `Cargo.toml` ([`crate::cargo`]), else the file already at that path. The definition is
//! checked with the server's own parser first, and the finished archive with the server's
//! archive checks, so an archive the server would refuse is never written or uploaded.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use maubot_types::plugin::{ArchiveLimits, PluginArchive, PluginMeta, PluginRuntime};
use zip::write::SimpleFileOptions;

use crate::error::{Context as _, Failure, Result};

/// Folders never packed (Python's bytecode caches).
const SKIPPED_FOLDERS: [&str; 1] = ["__pycache__"];
/// File suffixes never packed (compiled Python).
const SKIPPED_SUFFIXES: [&str; 2] = [".pyc", ".pyo"];
/// How deep package folders may nest (against symbolic link loops).
const MAX_DEPTH: usize = 32;

/// A built archive.
#[derive(Debug)]
pub struct Built {
    /// The plugin definition, as parsed.
    pub meta: PluginMeta,
    /// The `.mbp` bytes, already checked as the server checks uploads.
    pub bytes: Vec<u8>,
    /// The archive's entries, in order.
    pub entries: Vec<String>,
    /// Things worth telling: `extra_files` patterns that matched nothing.
    pub warnings: Vec<String>,
}

/// Reads and checks `{dir}/maubot.yaml` with the server's parser.
pub fn read_meta(dir: &Path) -> Result<PluginMeta> {
    let path = dir.join(PluginArchive::DEFINITION);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::new(format!("there is no maubot.yaml in {}", dir.display()))
                .hint("run mbc build in a plugin's folder, give the folder (mbc build PATH), or create a plugin with mbc init"));
        }
        Err(err) => {
            return Err(Failure::new(format!("cannot read {}", path.display())).caused_by(&err));
        }
    };
    PluginMeta::parse(text.strip_prefix('\u{feff}').unwrap_or(&text)).map_err(|err| {
        Failure::new(format!(
            "{} is not a valid plugin definition: {err}",
            path.display()
        ))
        .hint("the server would refuse this plugin; fix maubot.yaml and build again")
    })
}

/// The default archive name, `{id}-v{version}.mbp`, with the version normalised as maubot does.
pub fn file_name(meta: &PluginMeta) -> String {
    format!("{}-v{}.mbp", meta.id, meta.version.normalized())
}

/// Builds the archive of the plugin in `dir`. `exclude` is left out even if a glob matches it
/// (the output file, when it is inside the plugin folder).
pub fn build(dir: &Path, exclude: Option<&Path>) -> Result<Built> {
    let meta = read_meta(dir)?;
    // Absolute, so that what the globs find starts with it (`./x` comes back as `x`).
    let absolute = std::path::absolute(dir)
        .with_context(|| format!("cannot find the folder {}", dir.display()))?;
    let mut files = Files {
        dir: &absolute,
        exclude: exclude.and_then(|path| path.canonicalize().ok()),
        names: BTreeSet::from([PluginArchive::DEFINITION.to_owned()]),
        entries: Vec::new(),
    };
    match meta.runtime {
        PluginRuntime::Python => {
            for module in &meta.modules {
                files.add_module(module)?;
            }
        }
        PluginRuntime::Wasm => files.add_component(&meta)?,
    }
    let mut warnings = Vec::new();
    for pattern in &meta.extra_files {
        if files.add_glob(pattern)? == 0 {
            warnings.push(format!(
                "extra_files: `{pattern}` matches no file in {}",
                dir.display()
            ));
        }
    }
    let bytes = write_zip(&meta, &files.entries)?;
    PluginArchive::read(&bytes, &ArchiveLimits::default()).map_err(|err| {
        Failure::new(format!("the server would refuse this archive: {err}"))
            .hint("nothing was written or uploaded")
    })?;
    let mut entries = vec![PluginArchive::DEFINITION.to_owned()];
    entries.extend(files.entries.into_iter().map(|(name, _)| name));
    Ok(Built {
        meta,
        bytes,
        entries,
        warnings,
    })
}

/// The files going into the archive: entry name and path on disk.
struct Files<'a> {
    dir: &'a Path,
    exclude: Option<PathBuf>,
    names: BTreeSet<String>,
    entries: Vec<(String, PathBuf)>,
}

impl Files<'_> {
    /// A WebAssembly plugin's component, at the path `wasm` names: built with cargo if the
    /// folder holds a crate, else the file at that path.
    fn add_component(&mut self, meta: &PluginMeta) -> Result<()> {
        let name = meta.wasm.clone().unwrap_or_default();
        let path = if self.dir.join("Cargo.toml").is_file() {
            crate::cargo::build_component(self.dir)?
        } else {
            let path = self.dir.join(&name);
            if !path.is_file() {
                return Err(Failure::new(format!(
                    "there is no Cargo.toml or {name} in {}",
                    self.dir.display()
                ))
                .hint("a WebAssembly plugin's folder holds its crate (Cargo.toml), or its built component at the path `wasm` names in maubot.yaml"));
            }
            path
        };
        if self.names.insert(name.clone()) {
            self.entries.push((name, path));
        }
        Ok(())
    }

    fn add_module(&mut self, module: &str) -> Result<()> {
        let file = self.dir.join(format!("{module}.py"));
        if file.is_file() {
            return self.add_file(&file);
        }
        let package = self.dir.join(module);
        if package.join("__init__.py").is_file() {
            return self.add_tree(&package, 0);
        }
        let found = if package.is_dir() {
            format!("the folder {module}/ has no __init__.py")
        } else {
            format!("there is no {module}.py or {module}/__init__.py")
        };
        Err(Failure::new(format!(
            "module {module} (in maubot.yaml's modules) not found: {found} in {}",
            self.dir.display()
        ))
        .hint("a module is a file NAME.py or a package folder NAME/ with an __init__.py, next to maubot.yaml"))
    }

    /// Adds what `pattern` matches; returns how many files and folders it matched.
    fn add_glob(&mut self, pattern: &str) -> Result<usize> {
        let relative = Path::new(pattern);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(Failure::new(format!(
                "extra_files: `{pattern}` reaches outside the plugin folder"
            ))
            .hint("extra_files are globs relative to the folder of maubot.yaml, without `..` or a leading `/`"));
        }
        let full = format!(
            "{}/{pattern}",
            glob::Pattern::escape(&self.dir.display().to_string())
        );
        // As Python's glob: `*` does not match names starting with a dot.
        let options = glob::MatchOptions {
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        let paths = glob::glob_with(&full, options).map_err(|err| {
            Failure::new(format!(
                "extra_files: `{pattern}` is not a valid glob: {}",
                err.msg
            ))
        })?;
        let mut matched = 0;
        for path in paths {
            matched += 1;
            let path =
                path.with_context(|| format!("extra_files: cannot read what `{pattern}` matches"))?;
            if path.is_dir() {
                self.add_tree(&path, 0)?;
            } else {
                self.add_file(&path)?;
            }
        }
        Ok(matched)
    }

    fn add_tree(&mut self, folder: &Path, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Failure::new(format!(
                "{} is nested more than {MAX_DEPTH} folders deep (a symbolic link loop?)",
                folder.display()
            )));
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(folder)
            .with_context(|| format!("cannot list {}", folder.display()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot list {}", folder.display()))?;
        children.sort();
        for child in children {
            let name = child
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if child.is_dir() {
                if !SKIPPED_FOLDERS.contains(&name) {
                    self.add_tree(&child, depth + 1)?;
                }
            } else if !SKIPPED_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
                self.add_file(&child)?;
            }
        }
        Ok(())
    }

    fn add_file(&mut self, path: &Path) -> Result<()> {
        if let Some(exclude) = &self.exclude
            && path.canonicalize().is_ok_and(|p| &p == exclude)
        {
            return Ok(());
        }
        let name = self.entry_name(path)?;
        if self.names.insert(name.clone()) {
            self.entries.push((name, path.to_owned()));
        }
        Ok(())
    }

    /// The archive path of a file under the plugin folder: relative, `/`-separated.
    fn entry_name(&self, path: &Path) -> Result<String> {
        let relative = path.strip_prefix(self.dir).map_err(|_| {
            Failure::new(format!(
                "{} is not inside {}",
                path.display(),
                self.dir.display()
            ))
        })?;
        let mut parts = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(part) => match part.to_str() {
                    Some(part) => parts.push(part),
                    None => {
                        return Err(Failure::new(format!(
                            "the file name {} is not UTF-8",
                            path.display()
                        ))
                        .hint("rename it; archive entry names are UTF-8"));
                    }
                },
                Component::CurDir => {}
                _ => {
                    return Err(Failure::new(format!(
                        "{} is outside the plugin folder",
                        path.display()
                    )));
                }
            }
        }
        Ok(parts.join("/"))
    }
}

fn write_zip(meta: &PluginMeta, entries: &[(String, PathBuf)]) -> Result<Vec<u8>> {
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file(PluginArchive::DEFINITION, options)
        .map_err(zip_failed)?;
    writer
        .write_all(meta.to_yaml().as_bytes())
        .map_err(zip_failed)?;
    for (name, path) in entries {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        writer.start_file(name, options).map_err(zip_failed)?;
        writer.write_all(&data).map_err(zip_failed)?;
    }
    Ok(writer.finish().map_err(zip_failed)?.into_inner())
}

fn zip_failed<E: std::error::Error + 'static>(err: E) -> Failure {
    Failure::new("cannot write the archive").caused_by(&err)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    const PLUGIN: &str = "class Hello(Plugin):\n    pass\n";

    fn entries(bytes: &[u8]) -> Vec<String> {
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
        archive
            .file_names()
            .map(|name| name.expect("entry name").into_owned())
            .collect()
    }

    #[test]
    fn packs_modules_packages_and_extra_files() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        write(
            d,
            "maubot.yaml",
            "id: com.example.hello\nversion: v1.0-1\nmodules: [helper, hello]\nmain_class: Hello\n\
             extra_files: [base-config.yaml, 'data/*.txt', maubot.yaml, '*.py']\ncustom: kept\n",
        );
        write(d, "helper.py", "X = 1\n");
        write(d, "hello/__init__.py", PLUGIN);
        write(d, "hello/sub/x.py", "");
        write(d, "hello/__pycache__/x.cpython-312.pyc", "");
        write(d, "hello/y.pyc", "");
        write(d, "base-config.yaml", "a: 1\n");
        write(d, "data/a.txt", "a");
        write(d, "data/b.bin", "b");
        write(d, "unrelated.md", "");
        write(d, "data/.hidden.txt", "");

        let built = build(d, None).expect("built");
        assert_eq!(file_name(&built.meta), "com.example.hello-v1.0.post1.mbp");
        let mut names = entries(&built.bytes);
        assert_eq!(names, built.entries);
        names.sort();
        assert_eq!(
            names,
            [
                "base-config.yaml",
                "data/a.txt",
                "hello/__init__.py",
                "hello/sub/x.py",
                "helper.py",
                "maubot.yaml",
            ]
        );
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);

        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&built.bytes)).expect("zip");
        let mut yaml = String::new();
        archive
            .by_name("maubot.yaml")
            .expect("definition")
            .read_to_string(&mut yaml)
            .expect("read");
        assert_eq!(yaml, built.meta.to_yaml());
        let again = PluginMeta::parse(&yaml).expect("valid");
        assert_eq!(again, built.meta);
        assert_eq!(again.version.normalized(), "1.0.post1");
        assert_eq!(again.extra["custom"], "kept");
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let err = build(d, None).expect_err("no definition");
        assert!(
            err.message.starts_with("there is no maubot.yaml"),
            "{err:?}"
        );

        write(
            d,
            "maubot.yaml",
            "id: x\nversion: 1.0\nmodules: [x]\nmain_class: X\n",
        );
        let err = build(d, None).expect_err("bad version");
        assert!(err.message.contains("version:"), "{err:?}");

        write(
            d,
            "maubot.yaml",
            "id: x\nversion: '1.0'\nmodules: [x]\nmain_class: X\n",
        );
        let err = build(d, None).expect_err("no module");
        assert!(err.message.contains("no x.py or x/__init__.py"), "{err:?}");
        std::fs::create_dir(d.join("x")).expect("mkdir");
        let err = build(d, None).expect_err("no __init__");
        assert!(err.message.contains("has no __init__.py"), "{err:?}");

        write(d, "x.py", "class Y: pass\n");
        let err = build(d, None).expect_err("no main class");
        assert!(
            err.message
                .starts_with("the server would refuse this archive: Main class X not in x"),
            "{err:?}"
        );

        write(d, "x.py", "class X: pass\n");
        write(
            d,
            "maubot.yaml",
            "id: x\nversion: '1.0'\nmodules: [x]\nmain_class: X\nextra_files: ['../*']\n",
        );
        let err = build(d, None).expect_err("outside");
        assert!(err.message.contains("reaches outside"), "{err:?}");

        write(
            d,
            "maubot.yaml",
            "id: x\nversion: '1.0'\nmodules: [x]\nmain_class: X\nextra_files: [nothing*]\n",
        );
        let built = build(d, None).expect("built");
        assert_eq!(built.warnings.len(), 1, "{:?}", built.warnings);
    }

    #[test]
    fn packs_a_prebuilt_component() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        write(
            d,
            "maubot.yaml",
            "id: x\nversion: '1.0'\nruntime: wasm\nwasm: bin/x.wasm\nextra_files: ['bin/*']\n",
        );
        let err = build(d, None).expect_err("no component");
        assert!(
            err.message.contains("no Cargo.toml or bin/x.wasm"),
            "{err:?}"
        );
        write(d, "bin/x.wasm", "\0asm");
        write(d, "bin/notes.txt", "");
        let built = build(d, None).expect("built");
        assert_eq!(
            built.entries,
            ["maubot.yaml", "bin/x.wasm", "bin/notes.txt"]
        );
        let archive = PluginArchive::read(&built.bytes, &ArchiveLimits::default()).expect("valid");
        assert_eq!(archive.meta.runtime, PluginRuntime::Wasm);
    }

    #[test]
    fn leaves_out_the_output_file() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        write(
            d,
            "maubot.yaml",
            "id: x\nversion: '1.0'\nmodules: [x]\nmain_class: X\nextra_files: ['*']\n",
        );
        write(d, "x.py", "class X: pass\n");
        write(d, "x-v1.0.mbp", "old");
        let built = build(d, Some(&d.join("x-v1.0.mbp"))).expect("built");
        assert_eq!(built.entries, ["maubot.yaml", "x.py"]);
    }

    #[test]
    fn folder_names_with_glob_characters() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path().join("we[ir]d*");
        write(
            &d,
            "maubot.yaml",
            "id: x\nversion: '1.0'\nmodules: [x]\nmain_class: X\nextra_files: ['*.txt']\n",
        );
        write(&d, "x.py", "class X: pass\n");
        write(&d, "a.txt", "");
        let built = build(&d, None).expect("built");
        assert_eq!(built.entries, ["maubot.yaml", "x.py", "a.txt"]);
    }
}
