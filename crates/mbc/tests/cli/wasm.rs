//! `mbc init --wasm` and `mbc build` of WebAssembly plugins: the scaffold builds with cargo for
//! wasm32-wasip2 and packs into an archive the server's checks accept, with the component at
//! the path maubot.yaml names.

use maubot_types::plugin::{ArchiveLimits, PluginArchive, PluginRuntime};

use crate::support::{Mbc, entries};

/// The start of a WebAssembly component (not a core module): magic, version 0x0d, layer 1.
const COMPONENT_HEADER: &[u8] = b"\0asm\x0d\x00\x01\x00";

fn component(archive: &[u8], name: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).expect("zip");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(name).expect("component"), &mut bytes)
        .expect("read");
    bytes
}

#[tokio::test]
async fn init_wasm_scaffolds_a_crate_that_builds_into_an_archive() {
    maubot_test_support::wasm::add_target().expect("the wasm32-wasip2 target");
    let mbc = Mbc::new();
    let dir = mbc.work().join("hello");
    std::fs::create_dir(&dir).expect("mkdir");
    let out = mbc
        .run_in(&dir, &["init", "--wasm", "-i", "com.example.hello", "-c"])
        .await;
    out.assert_success();
    assert_eq!(
        out.stdout,
        "Created maubot.yaml\nCreated Cargo.toml\nCreated src/lib.rs\n\
         Created base-config.yaml\nCreated LICENSE\n"
    );
    assert!(
        out.stderr.contains("rustup target add wasm32-wasip2"),
        "{out}"
    );
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    let sdk = maubot_test_support::wasm::sdk()
        .canonicalize()
        .expect("the SDK");
    assert!(
        cargo.contains(&format!(
            "maubot-plugin = {{ path = \"{}\" }}",
            sdk.display()
        )),
        "the SDK of this checkout by default:\n{cargo}"
    );
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
    assert!(lib.contains("impl Plugin for HelloBot {"), "{lib}");

    let out = mbc.run_in(&dir, &["build"]).await;
    out.assert_success();
    assert!(
        out.stdout.starts_with(
            "Built com.example.hello v0.1.0 into com.example.hello-v0.1.0.mbp (3 files, "
        ),
        "{out}"
    );
    let bytes = std::fs::read(dir.join("com.example.hello-v0.1.0.mbp")).expect("the archive");
    // LICENSE is not in extra_files, so not packed.
    assert_eq!(
        entries(&bytes),
        ["base-config.yaml", "hello.wasm", "maubot.yaml"]
    );
    let archive = PluginArchive::read(&bytes, &ArchiveLimits::default()).expect("valid");
    assert_eq!(archive.meta.runtime, PluginRuntime::Wasm);
    assert_eq!(archive.meta.wasm.as_deref(), Some("hello.wasm"));
    assert!(archive.meta.config);
    assert_eq!(
        archive.base_config.as_deref(),
        Some(
            "# The default config of new instances; each instance can change it.\n# What the bot answers to !ping.\nreply: pong\n"
        )
    );
    let wasm = component(&bytes, "hello.wasm");
    assert!(wasm.starts_with(COMPONENT_HEADER), "not a component");
    // The component exports the plugin world and imports what the scaffold uses.
    let text = String::from_utf8_lossy(&wasm);
    assert!(
        text.contains("maubot:plugin/matrix@0.1.0"),
        "no matrix import"
    );

    // Built again after a change: the new component is packed.
    std::fs::write(
        dir.join("src/lib.rs"),
        lib.replace("\"ping\"", "\"pingpong\""),
    )
    .expect("write");
    mbc.run_in(&dir, &["build", "-o", "v2.mbp"])
        .await
        .assert_success();
    let again = component(
        &std::fs::read(dir.join("v2.mbp")).expect("archive"),
        "hello.wasm",
    );
    assert_ne!(again, wasm);
}

#[tokio::test]
async fn build_of_a_wasm_plugin_that_does_not_compile() {
    maubot_test_support::wasm::add_target().expect("the wasm32-wasip2 target");
    let mbc = Mbc::new();
    let dir = mbc.work().join("broken");
    std::fs::create_dir(&dir).expect("mkdir");
    mbc.run_in(
        &dir,
        &["init", "--wasm", "-i", "com.example.broken", "-l", ""],
    )
    .await
    .assert_success();
    std::fs::write(dir.join("src/lib.rs"), "fn broken( {}\n").expect("write");
    let out = mbc.run_in(&dir, &["build"]).await;
    // cargo's own `error:` lines come first.
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .lines()
            .any(|line| line
                .starts_with("error: cargo could not build the plugin (exit status: 101)")),
        "{out}"
    );
    out.assert_hint("cargo's messages above");
    assert!(
        out.stderr.contains("src/lib.rs"),
        "cargo's diagnostics:\n{out}"
    );
    assert!(!dir.join("com.example.broken-v0.1.0.mbp").exists());

    // A folder without the crate or the component.
    std::fs::remove_file(dir.join("Cargo.toml")).expect("rm");
    mbc.run_in(&dir, &["build"])
        .await
        .assert_error("there is no Cargo.toml or broken.wasm");
}

#[tokio::test]
async fn init_wasm_with_an_sdk_path() {
    let mbc = Mbc::new();
    let dir = mbc.work().join("x");
    std::fs::create_dir(&dir).expect("mkdir");
    let out = mbc
        .run_in(
            &dir,
            &[
                "init",
                "--wasm",
                "-i",
                "com.example.x",
                "--sdk-path",
                "/nowhere",
            ],
        )
        .await;
    out.assert_error("/nowhere is not the maubot-plugin SDK");
    out.assert_hint("--sdk-path");
    assert!(!dir.join("maubot.yaml").exists());

    // A relative path is written as given: relative to the plugin's folder.
    let sdk = maubot_test_support::wasm::sdk();
    std::os::unix::fs::symlink(&sdk, mbc.work().join("sdk")).expect("symlink");
    mbc.run_in(
        &dir,
        &[
            "init",
            "--wasm",
            "-i",
            "com.example.x",
            "--sdk-path",
            "../sdk",
        ],
    )
    .await
    .assert_success();
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        cargo.contains("maubot-plugin = { path = \"../sdk\" }"),
        "{cargo}"
    );

    // Crate names, not Python names.
    let dir = mbc.work().join("my-plugin");
    std::fs::create_dir(&dir).expect("mkdir");
    mbc.run_in(&dir, &["init", "--wasm", "-i", "com.example.y"])
        .await
        .assert_success();
    let yaml = std::fs::read_to_string(dir.join("maubot.yaml")).expect("yaml");
    assert!(yaml.contains("wasm: my-plugin.wasm"), "{yaml}");
    let out = mbc
        .run_in(
            &dir,
            &["init", "--wasm", "-n", "9lives", "-i", "com.example.z"],
        )
        .await;
    out.assert_error("`9lives` cannot be the plugin name");
    out.assert_hint("--name, e.g. lives");
}
