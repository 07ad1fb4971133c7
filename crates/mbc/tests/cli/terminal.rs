//! mbc on a terminal, through util-linux's `script` (a pseudo-terminal): prompts (the password
//! without echo), colours (and none with `NO_COLOR`), the upload progress bar.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{ALICE_PASSWORD, Mbc, TestServer};

mod run {
    crate::server_test!(a_terminal_gets_prompts_colours_and_a_progress_bar);
}

/// `mbc args` on a pseudo-terminal in `dir`, answering each prompt as it appears; all it
/// printed. `None` if `script` is not installed.
async fn on_terminal(
    mbc: &Mbc,
    dir: &std::path::Path,
    args: &str,
    env: &[(&str, &str)],
    answers: &[(&str, &str)],
) -> Option<String> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: util-linux `script` is not installed");
        return None;
    }
    let mut script = tokio::process::Command::new("script");
    script
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_mbc")),
            "/dev/null",
        ])
        .current_dir(dir)
        .env(
            "XDG_CONFIG_HOME",
            mbc.config_path().parent().expect("config dir"),
        )
        .env("HOME", mbc.config_path().parent().expect("config dir"))
        .env("USER", "alice")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        script.env(key, value);
    }
    let mut child = script.spawn().expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut answered = 0;
    let read_all = async {
        let mut buffer = [0u8; 4096];
        loop {
            let read = stdout.read(&mut buffer).await.expect("read");
            if read == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&seen);
            if let Some((prompt, answer)) = answers.get(answered)
                && text.matches(prompt).count() > 0
                && text
                    .rfind(prompt)
                    .is_some_and(|at| !text[at..].contains('\n'))
            {
                // As a person types: after the prompt is there (rpassword turns echo off only
                // after printing it).
                tokio::time::sleep(Duration::from_millis(300)).await;
                stdin
                    .write_all(format!("{answer}\n").as_bytes())
                    .await
                    .expect("answer");
                answered += 1;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("mbc on a terminal finished in time");
    let _ = child.wait().await;
    Some(String::from_utf8_lossy(&seen).replace("\r\n", "\n"))
}

async fn a_terminal_gets_prompts_colours_and_a_progress_bar(server: &TestServer, mbc: &Mbc) {
    let url = server.url();
    let Some(out) = on_terminal(
        mbc,
        mbc.work(),
        "login",
        &[],
        &[
            ("Username [alice]: ", ""),
            ("Password: ", ALICE_PASSWORD),
            ("Server [http://localhost:29316]: ", &url),
        ],
    )
    .await
    else {
        return;
    };
    assert!(out.contains("Logged in successfully"), "{out}");
    assert!(
        !out.contains(ALICE_PASSWORD),
        "the password was echoed:\n{out}"
    );
    assert!(mbc.config()["servers"][&url].is_string());

    // A plugin of more than 1 MiB: a progress bar while uploading.
    let dir = mbc.work().join("big");
    std::fs::create_dir(&dir).expect("mkdir");
    mbc.run_in(&dir, &["init", "-i", "com.example.big", "-l", ""])
        .await
        .assert_success();
    let yaml = std::fs::read_to_string(dir.join("maubot.yaml")).expect("yaml");
    std::fs::write(
        dir.join("maubot.yaml"),
        yaml.replace("extra_files: []", "extra_files: [blob.bin]"),
    )
    .expect("write");
    // Incompressible, so that the archive is as large.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let blob: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(dir.join("blob.bin"), blob).expect("write");
    let out = on_terminal(mbc, &dir, "build -u", &[], &[])
        .await
        .expect("script");
    assert!(out.contains("Uploading ["), "{out}");
    assert!(out.contains("100% 3.0 MiB/3.0 MiB"), "{out}");
    assert!(
        out.contains("Plugin com.example.big v0.1.0 uploaded"),
        "{out}"
    );

    // Errors in colour, but not with NO_COLOR.
    let out = on_terminal(mbc, mbc.work(), "upload missing.mbp", &[], &[])
        .await
        .expect("script");
    assert!(
        out.contains("\x1b[1;31merror:\x1b[0m cannot read missing.mbp"),
        "{out:?}"
    );
    let out = on_terminal(
        mbc,
        mbc.work(),
        "upload missing.mbp",
        &[("NO_COLOR", "1")],
        &[],
    )
    .await
    .expect("script");
    assert!(out.contains("error: cannot read missing.mbp"), "{out:?}");
    assert!(!out.contains('\x1b'), "{out:?}");
}
