//! What operators deploy with: `maubot prepare-python`, the systemd unit and the container
//! image (`deploy/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn available(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `command` to its end (at most `limit`); its output.
fn run(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

/// Without a config file it takes the defaults and the `MAUBOT_*` overrides, prepares the venv
/// they name, and writes no config.
#[test]
fn prepare_python_readies_the_plugin_host_and_writes_nothing_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let venv = maubot_test_support::python_host_venv();
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_maubot"))
            .arg("prepare-python")
            .current_dir(dir.path())
            .env("MAUBOT_PYTHON_HOST__VENV", &venv),
        // The first preparation in a fresh clone installs from PyPI.
        Duration::from_secs(900),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("The Python plugin host is ready"),
        "{stdout}"
    );
    assert!(venv.join("bin/python").exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "it wrote {left:?}");
}

/// `systemd-analyze verify` finds nothing to say about the unit (with its `ExecStart` pointed
/// at the binary under test, which verify requires to exist).
#[test]
fn the_systemd_unit_verifies() {
    if !available("systemd-analyze", &["--version"]) {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(deploy_dir().join("maubot-rs.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/maubot "), "{unit}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("maubot-rs.service");
    let unit = unit.replace("/usr/local/bin/maubot", env!("CARGO_BIN_EXE_maubot"));
    std::fs::write(&path, unit).expect("write");
    let output = run(
        Command::new("systemd-analyze").arg("verify").arg(&path),
        Duration::from_secs(60),
    );
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.trim().is_empty(), "{said}");
}

/// The image builds and its server answers. Docker is rarely there (not in CI): then it says it
/// skipped. A dev build keeps it to minutes.
#[test]
fn the_container_image_builds_and_serves() {
    if !available("docker", &["info"]) {
        eprintln!("skipped: no Docker daemon to build the image with");
        return;
    }
    let root = deploy_dir().join("..");
    let tag = format!("maubot-rs-test:{}", std::process::id());
    let built = run(
        Command::new("docker")
            .args(["build", "--build-arg", "CARGO_PROFILE=dev", "-t", &tag])
            .arg("-f")
            .arg(deploy_dir().join("Dockerfile"))
            .arg(&root),
        Duration::from_secs(3600),
    );
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let name = format!("maubot-rs-test-{}", std::process::id());
    let started = run(
        Command::new("docker").args(["run", "-d", "--name", &name, "-p", "127.0.0.1::29316", &tag]),
        Duration::from_secs(120),
    );
    assert!(started.status.success());
    let port = run(
        Command::new("docker").args(["port", &name, "29316"]),
        Duration::from_secs(30),
    );
    let address = String::from_utf8_lossy(&port.stdout).trim().to_owned();
    let mut answered = false;
    for _ in 0..100 {
        if let Some(status) = http_status(&address, "/_matrix/maubot/v1/features") {
            answered = status.starts_with("HTTP/1.1 200");
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let logs = run(
        Command::new("docker").args(["logs", &name]),
        Duration::from_secs(30),
    );
    run(
        Command::new("docker").args(["rm", "-f", &name]),
        Duration::from_secs(60),
    );
    run(
        Command::new("docker").args(["rmi", &tag]),
        Duration::from_secs(60),
    );
    assert!(
        answered,
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(String::from_utf8_lossy(&logs.stdout).contains("Admin secret"));
}

/// The status line of a plain `GET path` to `address`, if it answers.
fn http_status(address: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_owned)
}
