//! The crash suite: notifd runs as a child process under load from concurrent clients and is
//! killed with SIGKILL at random moments; after each restart every acknowledged create is
//! there, and every acknowledged create's push is eventually delivered (at least once,
//! duplicates identifiable by id and changeSeq).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use notif_delivery::P256Key;
use notif_delivery::sandbox::SandboxProviders;
use notif_tests::{DEMO_HOST, TestStore};
use serde_json::{Value, json};

const KILLS: u64 = 20;
const CLIENTS: usize = 8;

/// Kill points: between 5 and 60 acknowledged creates into each run, varying, repeatable.
fn kill_after(run: u64) -> usize {
    5 + usize::try_from(run.wrapping_mul(2_654_435_761) % 56).unwrap()
}

/// The store's part of the configuration, and how long leases last on it. On sled, an hour:
/// what a killed process leased and never sent arrives within the deadline only because the
/// restarted one voids those leases when it opens the store. On a shared database no node
/// may void another's leases: a killed node's jobs come back when theirs lapse.
fn store_settings(store: TestStore) -> (String, u64) {
    let mut config = notif_grpc::Config::default();
    store.configure(&mut config);
    match config.store.url {
        Some(url) => (
            format!("[store]\nurl = \"{url}\"\npoll_interval_ms = 100\n"),
            2,
        ),
        None => (String::new(), 3_600),
    }
}

async fn acknowledged_creates_survive_sigkill_and_are_delivered(store: TestStore) {
    let directory = tempfile::tempdir().unwrap();
    let port = notif_tests::child::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = directory.path().join("notif.toml");
    let (store_section, lease_seconds) = store_settings(store);
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nexpiry_sweep_seconds = 3600\n\
             [dispatcher]\nlease_seconds = {lease_seconds}\nrequest_timeout_ms = 500\nretry_initial_delay_ms = 50\nretry_max_delay_ms = 500\n\
             [rate_limits]\nper_user_per_second = 100000.0\nper_user_burst = 100000.0\n{store_section}",
            directory.path().join("data").display()
        ),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let receiver = SandboxProviders::start().await.unwrap();
    let P256Key {
        private_key: browser_key,
        public_key: browser_public,
    } = P256Key::generate();
    receiver.register_web_push_keys("crash-browser", browser_key, vec![3; 16]);

    let mut child = notif_tests::child::spawn_notifd(&config, &base, &http).await;
    let token = notif_tests::dev_sign_in(&http, &base, "demo-client", "alice").await;
    let subscribed = http
        .post(format!("{base}/me/notifications/subscriptions"))
        .bearer_auth(&token)
        .json(&json!({
            "platform": "webPush",
            "endpoint": receiver.web_push_endpoint("crash-browser"),
            "keys": {"p256dh": URL_SAFE_NO_PAD.encode(browser_public), "auth": URL_SAFE_NO_PAD.encode([3u8; 16])},
        }))
        .send()
        .await
        .unwrap();
    assert!(subscribed.status().is_success());

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    for run in 0..=KILLS {
        // Everything acknowledged before the last kill is there after the restart.
        let so_far = acknowledged.lock().unwrap().clone();
        for id in so_far {
            let found = http
                .get(format!("{base}/me/notifications/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(
                found.status(),
                200,
                "acknowledged create {id} lost after kill {run}"
            );
        }
        if run == KILLS {
            break;
        }
        let target = acknowledged.lock().unwrap().len() + kill_after(run);
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let (http, base, token, acknowledged) = (
                http.clone(),
                base.clone(),
                token.clone(),
                acknowledged.clone(),
            );
            clients.push(tokio::spawn(async move {
                for number in 0.. {
                    let body = json!({
                        "targetHostName": DEMO_HOST,
                        "appNotificationId": format!("run{run}-client{client}-n{number}"),
                        "payload": {"rawContent": format!("{run}/{client}/{number}")},
                    });
                    let Ok(response) = http
                        .post(format!("{base}/me/notifications"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() == 201 {
                        let Ok(created) = response.json::<Value>().await else {
                            return;
                        };
                        acknowledged
                            .lock()
                            .unwrap()
                            .push(created["id"].as_str().unwrap().to_owned());
                    }
                }
            }));
        }
        while acknowledged.lock().unwrap().len() < target {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        child.kill().await.unwrap();
        for client in clients {
            client.await.unwrap();
        }
        child = notif_tests::child::spawn_notifd(&config, &base, &http).await;
    }

    let acknowledged: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    let owed: Vec<(String, String)> = acknowledged
        .iter()
        .map(|id| ("/push/crash-browser".to_owned(), id.clone()))
        .collect();
    let duplicates =
        notif_tests::await_owed_pushes(&receiver, &owed, Duration::from_secs(120)).await;
    eprintln!(
        "crash suite on {store:?}: {KILLS} SIGKILLs, {} acknowledged, {} found, {} delivered, {duplicates} duplicate deliveries",
        acknowledged.len(),
        acknowledged.len(),
        owed.len(),
    );
    child.kill().await.unwrap();
}

on_every_store!(acknowledged_creates_survive_sigkill_and_are_delivered);
