//! `mbc build`: archives the server accepts, built from the server's test plugins.

use maubot_types::plugin::{ArchiveLimits, PluginArchive, PluginMeta};

use crate::support::{Mbc, TestServer, copy_plugin, entries, test_plugin, upload_with_api};

mod run {
    crate::server_test!(
        build_writes_the_default_name_and_the_server_accepts_it,
        build_takes_extra_files_globs,
        build_and_upload,
    );
}

const ECHO_ARCHIVE: &str = "xyz.maubot-rs.test.echo-v1.0.0.mbp";

async fn build_writes_the_default_name_and_the_server_accepts_it(server: &TestServer, mbc: &Mbc) {
    let plugin = copy_plugin("echo", mbc.work());
    let out = mbc.run_in(&plugin, &["build"]).await;
    out.assert_success();
    assert!(
        out.stdout
            .starts_with("Built xyz.maubot-rs.test.echo v1.0.0 into "),
        "{out}"
    );
    let bytes = std::fs::read(plugin.join(ECHO_ARCHIVE)).expect("the archive");

    // Round trip through the server's parser: the same plugin, maubot.yaml re-serialised.
    let archive = PluginArchive::read(&bytes, &ArchiveLimits::default()).expect("valid");
    let source = std::fs::read_to_string(plugin.join("maubot.yaml")).expect("yaml");
    assert_eq!(archive.meta, PluginMeta::parse(&source).expect("valid"));
    assert_eq!(entries(&bytes), ["maubot.yaml", "mbrs_test_echo.py"]);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).expect("zip");
    let mut yaml = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("maubot.yaml").expect("entry"), &mut yaml)
        .expect("read");
    assert_eq!(yaml, archive.meta.to_yaml());

    let (status, body) = upload_with_api(server, bytes).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "xyz.maubot-rs.test.echo");

    // Building again replaces the archive; the archive itself is not packed.
    mbc.run_in(&plugin, &["build"]).await.assert_success();
    let again = std::fs::read(plugin.join(ECHO_ARCHIVE)).expect("the archive");
    assert_eq!(entries(&again), ["maubot.yaml", "mbrs_test_echo.py"]);
}

#[tokio::test]
async fn build_output_options() {
    let mbc = Mbc::new();
    let plugin = test_plugin("echo");
    let plugin = plugin.to_str().expect("UTF-8 path");

    // -o FILE
    mbc.run(&["build", plugin, "-o", "out.mbp"])
        .await
        .assert_success();
    PluginArchive::read(
        &std::fs::read(mbc.work().join("out.mbp")).expect("written"),
        &ArchiveLimits::default(),
    )
    .expect("valid");
    // -o FILE again: replaced without a question, since there is no terminal.
    let out = mbc.run(&["build", plugin, "-o", "out.mbp"]).await;
    out.assert_success();
    assert!(out.stderr.contains("Replacing out.mbp"), "{out}");

    // -o an existing folder, and a folder to create (trailing slash).
    std::fs::create_dir(mbc.work().join("dist")).expect("mkdir");
    mbc.run(&["build", plugin, "-o", "dist"])
        .await
        .assert_success();
    assert!(mbc.work().join("dist").join(ECHO_ARCHIVE).is_file());
    mbc.run(&["build", plugin, "-o", "new/"])
        .await
        .assert_success();
    assert!(mbc.work().join("new").join(ECHO_ARCHIVE).is_file());

    // Without -o: the current folder, not the plugin's.
    mbc.run(&["build", plugin]).await.assert_success();
    assert!(mbc.work().join(ECHO_ARCHIVE).is_file());
}

#[tokio::test]
async fn build_refuses_a_broken_plugin_before_writing_anything() {
    let mbc = Mbc::new();
    let plugin = copy_plugin("echo", mbc.work());
    let yaml = std::fs::read_to_string(plugin.join("maubot.yaml")).expect("yaml");

    // A YAML number is not a version: the server's parser says so, naming the field.
    std::fs::write(plugin.join("maubot.yaml"), yaml.replace("1.0.0", "1.0")).expect("write");
    let out = mbc.run_in(&plugin, &["build"]).await;
    out.assert_error("maubot.yaml is not a valid plugin definition: version:");
    out.assert_hint("the server would refuse");

    // Not YAML.
    std::fs::write(plugin.join("maubot.yaml"), "id: [unclosed\n").expect("write");
    mbc.run_in(&plugin, &["build"])
        .await
        .assert_error("not valid YAML");

    // A main class the module does not define: the archive check, before writing.
    std::fs::write(
        plugin.join("maubot.yaml"),
        yaml.replace("EchoBot", "Missing"),
    )
    .expect("write");
    mbc.run_in(&plugin, &["build"]).await.assert_error(
        "the server would refuse this archive: Main class Missing not in mbrs_test_echo",
    );

    // A module that is not there.
    std::fs::write(
        plugin.join("maubot.yaml"),
        yaml.replace("- mbrs_test_echo", "- absent"),
    )
    .expect("write");
    mbc.run_in(&plugin, &["build"])
        .await
        .assert_error("module absent (in maubot.yaml's modules) not found");

    // No plugin at all.
    mbc.run(&["build"])
        .await
        .assert_error("there is no maubot.yaml")
        .assert_hint("mbc init");

    let written: Vec<_> = walk(mbc.work())
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "mbp"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}

async fn build_takes_extra_files_globs(server: &TestServer, mbc: &Mbc) {
    let plugin = copy_plugin("configured", mbc.work());
    let yaml = std::fs::read_to_string(plugin.join("maubot.yaml")).expect("yaml");
    std::fs::write(
        plugin.join("maubot.yaml"),
        yaml.replace(
            "- base-config.yaml\n",
            "- base-config.yaml\n- 'data/*.txt'\n- templates\n- 'nothing/*'\n",
        ),
    )
    .expect("write");
    std::fs::create_dir_all(plugin.join("data")).expect("mkdir");
    std::fs::write(plugin.join("data/a.txt"), "a").expect("write");
    std::fs::write(plugin.join("data/b.txt"), "b").expect("write");
    std::fs::write(plugin.join("data/c.json"), "{}").expect("write");
    std::fs::write(plugin.join("data/.hidden.txt"), "").expect("write");
    std::fs::create_dir_all(plugin.join("templates/sub/__pycache__")).expect("mkdir");
    std::fs::write(plugin.join("templates/sub/page.html"), "<p>").expect("write");
    std::fs::write(plugin.join("templates/sub/__pycache__/x.pyc"), "").expect("write");
    std::fs::write(plugin.join("notes.md"), "").expect("write");

    let out = mbc
        .run_in(&plugin, &["build", "-o", "../configured.mbp"])
        .await;
    out.assert_success();
    assert!(
        out.stderr
            .contains("warning: extra_files: `nothing/*` matches no file"),
        "{out}"
    );
    let bytes = std::fs::read(mbc.work().join("configured.mbp")).expect("archive");
    assert_eq!(
        entries(&bytes),
        [
            "base-config.yaml",
            "data/a.txt",
            "data/b.txt",
            "maubot.yaml",
            "mbrs_test_configured.py",
            "templates/sub/page.html",
        ]
    );
    let archive = PluginArchive::read(&bytes, &ArchiveLimits::default()).expect("valid");
    assert_eq!(
        archive.base_config.as_deref(),
        Some("# What the bot answers to !greeting.\ngreeting: Hello\n")
    );
    let (status, body) = upload_with_api(server, bytes).await;
    assert_eq!(status, 201, "{body}");
}

async fn build_and_upload(server: &TestServer, mbc: &Mbc) {
    // Without a login, nothing is built.
    let plugin = copy_plugin("echo", mbc.work());
    mbc.run_in(&plugin, &["build", "-u"])
        .await
        .assert_error("Default server not configured");

    mbc.login(server).await;
    let out = mbc.run_in(&plugin, &["build", "-u"]).await;
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!(
            "Plugin xyz.maubot-rs.test.echo v1.0.0 uploaded to {} successfully.\n",
            server.url()
        )
    );
    // Only uploaded: no file.
    assert!(!plugin.join(ECHO_ARCHIVE).exists());
    let (status, body) = server.get("/plugin/xyz.maubot-rs.test.echo").await;
    assert_eq!((status, &body["version"]), (200, &"1.0.0".into()), "{body}");

    // A new version replaces the old one; -o writes it as well.
    let v2 = copy_plugin("echo-v2", mbc.work());
    let out = mbc
        .run_in(&v2, &["build", "-u", "-o", "v2.mbp", "-s", &server.url()])
        .await;
    out.assert_success();
    assert!(
        out.stdout
            .contains("Plugin xyz.maubot-rs.test.echo v2.0.0 uploaded"),
        "{out}"
    );
    assert!(v2.join("v2.mbp").is_file());
    let (_, body) = server.get("/plugin/xyz.maubot-rs.test.echo").await;
    assert_eq!(body["version"], "2.0.0");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
