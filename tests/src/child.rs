//! notifd as a child process: the binary of this build, started on a configuration file and
//! waited for until ready, for the suites that kill it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// The notifd binary of this build: `cargo build` makes sure it is current (a no-op when it
/// is), so the suite never runs a stale server.
///
/// # Panics
/// When the build fails.
pub fn notifd_binary() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "notif-grpc", "--bin", "notifd"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building notifd failed");
    });
    let test_binary = std::env::current_exe().expect("the test binary's path");
    test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .join("notifd")
}

/// A loopback port free now.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts notifd on `config` and waits until `base` answers `/readyz` with 200; the child
/// is killed when dropped.
///
/// # Panics
/// When it cannot start or is not ready within 20 seconds.
pub async fn spawn_notifd(config: &Path, base: &str, http: &reqwest::Client) -> Child {
    let child = Command::new(notifd_binary())
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("notifd starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return child;
        }
        assert!(Instant::now() < deadline, "notifd did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
