//! `mbc upload`.

use crate::support::{Mbc, TestServer, test_plugin};

mod run {
    crate::server_test!(upload_a_built_plugin, upload_failures);
}

async fn upload_a_built_plugin(server: &TestServer, mbc: &Mbc) {
    mbc.login(server).await;
    let echo = test_plugin("echo");
    mbc.run(&["build", echo.to_str().expect("UTF-8"), "-o", "echo.mbp"])
        .await
        .assert_success();
    let out = mbc.run(&["upload", "echo.mbp"]).await;
    out.assert_success();
    let expected = format!(
        "Plugin xyz.maubot-rs.test.echo v1.0.0 uploaded to {} successfully.\n",
        server.url()
    );
    assert_eq!(out.stdout, expected);
    let (status, list) = server.get("/plugins").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], "xyz.maubot-rs.test.echo", "{list}");

    // Again, the same version: allow_override replaces it.
    let out = mbc.run(&["upload", "echo.mbp", "-s", &server.url()]).await;
    out.assert_success();
    assert_eq!(out.stdout, expected);
}

async fn upload_failures(server: &TestServer, mbc: &Mbc) {
    mbc.login(server).await;
    mbc.run(&["upload", "missing.mbp"])
        .await
        .assert_error("cannot read missing.mbp")
        .assert_hint("mbc build");

    // The server's refusal, as the server words it.
    std::fs::write(mbc.work().join("plain.mbp"), "not a zip").expect("write");
    let out = mbc.run(&["upload", "plain.mbp"]).await;
    out.assert_error("File is not a maubot plugin");
    assert!(out.stdout.is_empty(), "{out}");

    // An archive with a definition the server refuses (mbc upload does not check locally).
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("maubot.yaml", zip::write::SimpleFileOptions::default())
        .expect("entry");
    std::io::Write::write_all(
        &mut writer,
        b"id: x\nversion: '1'\nmodules: [x]\nmain_class: X\n",
    )
    .expect("write");
    let bytes = writer.finish().expect("zip").into_inner();
    std::fs::write(mbc.work().join("nomodule.mbp"), bytes).expect("write");
    mbc.run(&["upload", "nomodule.mbp"])
        .await
        .assert_error("Module x not found in file");
}
