//! notifctl against an in-process notifd on development defaults: `demo` walks the whole flow
//! and exits 0; the everyday commands work with a saved session.

// Test code unwraps: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use notif_grpc::{Config, Server};
use tokio::net::TcpListener;
use tokio::process::Command;

struct Running {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _data: tempfile::TempDir,
}

async fn start() -> Running {
    let data = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = Config {
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    let server = Server::new(listener, config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        stop: Some(stop),
        task,
        _data: data,
    }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn notifctl(arguments: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_notifctl"))
        .args(arguments)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_walks_the_whole_flow() {
    let server = start().await;
    let (success, stdout, stderr) = notifctl(&["--server", &server.url, "demo"]).await;
    assert!(success, "demo failed:\n{stdout}\n{stderr}");
    for line in [
        "[1/8] A user signs in on a device",
        "HTTP 201 Created",
        "\"appNotificationId\": \"testDirectToastNotification\"",
        "WebPush  \"Hello World!\" changeSeq 1 (decrypted by the demo)",
        "Windows  \"Hello World!\" changeSeq 1 (notifd sandbox)",
        "state sync: readState \"read\" changeSeq 2",
        "WebPush  no push",
        "204 No Content",
        "every step did what it should",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_commands_use_the_saved_session() {
    let server = start().await;
    let session_dir = tempfile::tempdir().unwrap();
    let session = session_dir.path().join("session.json");
    let session = session.to_str().unwrap();
    let common = ["--server", server.url.as_str(), "--session", session];
    let run = |extra: &'static [&'static str]| {
        let mut arguments: Vec<&str> = common.to_vec();
        arguments.extend_from_slice(extra);
        async move { notifctl(&arguments).await }
    };
    let (success, stdout, stderr) = run(&["sign-in"]).await;
    assert!(success, "{stdout}{stderr}");
    let (success, stdout, _) = run(&[
        "--json",
        "send",
        "--app-notification-id",
        "n1",
        "--title",
        "Hi",
        "--group",
        "g",
    ])
    .await;
    assert!(success);
    let sent: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let id = sent["id"].as_str().unwrap().to_owned();
    let (success, stdout, _) = run(&["list"]).await;
    assert!(
        success && stdout.contains("1 unread") && stdout.contains(&id),
        "{stdout}"
    );
    let mut read = common.to_vec();
    read.extend_from_slice(&["read", &id]);
    let (success, stdout, _) = notifctl(&read).await;
    assert!(success && stdout.contains(" read "), "{stdout}");
    let (success, stdout, _) = run(&["delete", "--group", "g"]).await;
    assert!(success && stdout.contains("deleted 1"), "{stdout}");
    let (success, stdout, _) = run(&["health"]).await;
    assert!(success && stdout.contains("serving"));
    let (success, _, stderr) = run(&["get", "not-an-id"]).await;
    assert!(!success);
    assert!(stderr.starts_with("error: InvalidArgument"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    server.stop().await;
}
