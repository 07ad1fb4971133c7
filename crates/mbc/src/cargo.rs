//! Building a WebAssembly plugin's component: `cargo build --target wasm32-wasip2 --release`
//! in the plugin's folder, cargo's progress and diagnostics on stderr, the component's path
//! from cargo's JSON messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Context as _, Failure, Result};

/// The target WebAssembly plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Builds the crate whose `Cargo.toml` is in `dir`; the path of the component cargo built.
pub fn build_component(dir: &Path) -> Result<PathBuf> {
    check_target(dir)?;
    let manifest = std::path::absolute(dir.join("Cargo.toml"))
        .with_context(|| format!("cannot find the folder {}", dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--target", TARGET, "--release"])
        .args(["--message-format", "json-render-diagnostics", "--manifest-path"])
        .arg(&manifest)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", cargo.to_string_lossy()))
        .map_err(|failure| failure.hint("WebAssembly plugins are built with cargo: install Rust (rustup.rs) or put cargo on the PATH"))?;
    if !output.status.success() {
        return Err(Failure::new(format!(
            "cargo could not build the plugin ({})",
            output.status
        ))
        .hint("cargo's messages above say why"));
    }
    component(&String::from_utf8_lossy(&output.stdout), &manifest).ok_or_else(|| {
        Failure::new(format!("cargo built no .wasm for {}", manifest.display()))
            .hint("the plugin crate must be a library with crate-type = [\"cdylib\"] in Cargo.toml's [lib]")
    })
}

/// The `.wasm` that cargo's JSON messages say it built for the package of `manifest`.
fn component(messages: &str, manifest: &Path) -> Option<PathBuf> {
    let manifest = manifest
        .canonicalize()
        .unwrap_or_else(|_| manifest.to_owned());
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact"
                && message["manifest_path"]
                    .as_str()
                    .map(|path| {
                        let path = Path::new(path);
                        path.canonicalize().unwrap_or_else(|_| path.to_owned())
                    })
                    .is_some_and(|path| path == manifest)
        })
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(PathBuf::from))
        .find(|name| name.extension().is_some_and(|e| e == "wasm"))
}

/// Fails with the way out when the Rust toolchain has no `wasm32-wasip2` standard library.
fn check_target(dir: &Path) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
    else {
        // No rustc to ask: cargo will say what is missing.
        return Ok(());
    };
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && !libdir.is_empty() && !Path::new(&libdir).is_dir() {
        return Err(
            Failure::new(format!("the Rust toolchain cannot build for {TARGET}")).hint(format!(
                "install the target with `rustup target add {TARGET}`"
            )),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_the_packages_wasm_artifact() {
        let dir = tempfile::tempdir().expect("dir");
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(&manifest, "").expect("write");
        let other = r#"{"reason":"compiler-artifact","manifest_path":"/elsewhere/Cargo.toml","filenames":["/t/dep.wasm"]}"#;
        let ours = format!(
            r#"{{"reason":"compiler-artifact","manifest_path":"{}","filenames":["/t/hello.d","/t/hello.wasm"]}}"#,
            manifest.display()
        );
        let messages = format!("{other}\nnot json\n{ours}\n{{\"reason\":\"build-finished\"}}\n");
        assert_eq!(
            component(&messages, &manifest),
            Some(PathBuf::from("/t/hello.wasm"))
        );
        assert_eq!(component(other, &manifest), None);
    }
}
