//! Real third-party servers, run on loopback for the interop tests. A missing runtime or package
//! is a failure that says how to install it, never a skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Node process that prints `READY …` when it serves; killed on drop.
pub struct NodePeer {
    _child: Child,
}

pub async fn start_node(script: &str, env: &[(&str, String)]) -> NodePeer {
    let dir = peers_dir();
    assert!(
        dir.join("node_modules").exists(),
        "the interop peers are not installed: run `npm ci --prefix tests/peers` (the README's test command does it)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script))
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run node ({e}): install Node.js 20+ to run the interop tests")
    });
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("READY") {
                return line;
            }
        }
        panic!("{script} exited before it was ready");
    })
    .await
    .unwrap_or_else(|_| panic!("{script} did not become ready within 30 s"));
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let _ = ready;
    NodePeer { _child: child }
}

/// The Firebase Auth emulator (`firebase emulators:start --only auth`), offline, UI off, on free
/// ports, in a scratch folder; killed on drop (the CLI runs the emulator in its own process).
pub struct FirebaseEmulator {
    pub host: String,
    pub project: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

pub async fn start_firebase_emulator() -> FirebaseEmulator {
    let bin = peers_dir().join("node_modules/.bin/firebase");
    assert!(
        bin.exists(),
        "firebase-tools is not installed: run `npm ci --prefix tests/peers` (the README's test command does it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (port, hub, logging) = (free_port(), free_port(), free_port());
    let config = serde_json::json!({"emulators": {
        "auth": {"host": "127.0.0.1", "port": port},
        "hub": {"host": "127.0.0.1", "port": hub},
        "logging": {"host": "127.0.0.1", "port": logging},
        "ui": {"enabled": false},
    }});
    std::fs::write(dir.path().join("firebase.json"), config.to_string()).unwrap();
    let project = "demo-broker".to_string();
    let child = Command::new(&bin)
        .args(["emulators:start", "--only", "auth", "--project", &project])
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("xdg"))
        .env("CI", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the Firebase emulator ({e}): install Node.js 20+ and run `npm ci --prefix tests/peers`"));
    let host = format!("127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let ready = client.get(format!("http://{host}/")).send().await;
        if let Ok(r) = ready
            && r.status().is_success()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Firebase Auth emulator did not answer on {host} within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    FirebaseEmulator {
        host,
        project,
        _child: child,
        _dir: dir,
    }
}
