//! The crash test: a child process writes acknowledged creates to a sled directory and is
//! killed with SIGKILL at a random moment; reopening finds every acknowledged create and all
//! its delivery jobs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use notif_core::delivery::DeliveryState;
use notif_core::ids::{AppId, NotificationId, UserId};
use notif_core::notification::FeedKey;
use notif_core::ports::NotificationStore;
use notif_core::ports::StoreAdmin as _;
use notif_core::time::Timestamp;
use notif_store::SledStore;

const KILLS: u64 = 8;
const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

fn crash_writer() -> PathBuf {
    // `cargo test` builds examples beside the test binaries (target/<profile>/examples/);
    // a filtered run (`cargo test --test store`) does not, so build it then.
    let test_binary = std::env::current_exe().unwrap();
    let profile_directory = test_binary.parent().unwrap().parent().unwrap();
    let example = profile_directory.join("examples").join("crash_writer");
    if !example.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "notif-store", "--example", "crash_writer"])
            .status()
            .unwrap();
        assert!(status.success(), "building the crash_writer example failed");
    }
    example
}

/// A small deterministic generator: the kill points vary across kills, the same every run.
fn kill_point(run: u64) -> usize {
    let mixed = run
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    5 + usize::try_from((mixed >> 33) % 400).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_sigkill() {
    let directory = tempfile::tempdir().unwrap();
    let feed = FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new("alice").unwrap(),
    };
    let mut acknowledged = Vec::new();
    for run in 0..KILLS {
        let mut child = Command::new(crash_writer())
            .arg(directory.path())
            .arg(run.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the crash_writer example is built by cargo test");
        let stdout = child.stdout.take().unwrap();
        let stop_after = kill_point(run);
        let reader = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut acks = Vec::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(id) = line
                    .strip_prefix("ack ")
                    .and_then(|rest| rest.split(' ').next())
                {
                    acks.push(NotificationId::parse(id).unwrap());
                    if acks.len() >= stop_after {
                        break;
                    }
                }
            }
            (acks, lines)
        });
        let (acks, lines) = reader.await.unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        // Acks printed between our last read and the kill were acknowledged too.
        let mut late = Vec::new();
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(id) = line
                .strip_prefix("ack ")
                .and_then(|rest| rest.split(' ').next())
            {
                late.push(NotificationId::parse(id).unwrap());
            }
        }
        assert!(acks.len() >= stop_after, "run {run} stopped early");
        acknowledged.extend(acks);
        acknowledged.extend(late);

        let store = SledStore::open(directory.path()).unwrap();
        for id in &acknowledged {
            let notification = store.get(&feed, *id, NOW).await.unwrap();
            assert!(
                notification.is_some(),
                "acknowledged create {id} lost after kill {run}"
            );
            let status = store.delivery_status(&feed, *id).await.unwrap();
            assert_eq!(status.len(), 3, "jobs of {id} lost after kill {run}");
            assert!(
                status
                    .iter()
                    .all(|record| record.state == DeliveryState::Pending)
            );
        }
        store.close().await.unwrap();
    }
    eprintln!(
        "crash test: {KILLS} kills, {} acknowledged creates, all found with their 3 jobs",
        acknowledged.len()
    );
}
