//! Embeds the Python plugin host (`python/maubot`, `python/maubot_host`, `python/requirements.txt`)
//! so that the server binary can write it into its Python environment by itself.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
    println!("cargo::rerun-if-changed={}", python.display());
    let mut files = Vec::new();
    for package in ["maubot", "maubot_host"] {
        println!("cargo::rerun-if-changed={}", python.join(package).display());
        collect(&python, &python.join(package), &mut files);
    }
    files.sort();
    let mut code = String::from("pub const FILES: &[(&str, &str)] = &[\n");
    for (relative, absolute) in &files {
        let _ = writeln!(
            code,
            "    ({relative:?}, include_str!({:?})),",
            absolute.display().to_string()
        );
    }
    code.push_str("];\n");
    let requirements = python.join("requirements.txt");
    println!("cargo::rerun-if-changed={}", requirements.display());
    let _ = writeln!(
        code,
        "pub const REQUIREMENTS: &str = include_str!({:?});",
        requirements.display().to_string()
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("python_sources.rs"), code).expect("writing python_sources.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                println!("cargo::rerun-if-changed={}", path.display());
                collect(root, &path, files);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            let relative = path
                .strip_prefix(root)
                .expect("collected under root")
                .to_string_lossy()
                .into_owned();
            files.push((relative, path));
        }
    }
}
