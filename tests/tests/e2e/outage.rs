//! The database goes away under load and comes back: notifd answers 503 with a retry hint
//! meanwhile (and `/readyz` says why), never panics, loses no acknowledged write, and serves
//! again by itself once the database is back — no restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notif_store::contract::TestPostgres;
use notif_tests::{DEMO_HOST, TestServer};
use serde_json::{Value, json};

const CLIENTS: usize = 4;
/// Far longer than any step takes: reaching it fails the test, it never paces it.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Seen {
    acknowledged: Vec<String>,
    refused_with_retry_hint: usize,
    unexpected: Vec<String>,
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ready_status(server: &TestServer) -> u16 {
    reqwest::get(server.url("/readyz"))
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifd_rides_out_a_database_restart_under_load() {
    let database = TestPostgres::dedicated();
    let url = database.fresh_url();
    let server = Arc::new(
        TestServer::start_configured(|config| {
            config.store.url = Some(url);
            config.store.poll_interval_ms = 100;
        })
        .await,
    );
    let token = server.sign_in("demo-client", "alice").await;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (server, token, seen, stop) = (
                Arc::clone(&server),
                token.clone(),
                Arc::clone(&seen),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for number in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let body = json!({
                        "targetHostName": DEMO_HOST,
                        "appNotificationId": format!("client{client}-n{number}"),
                        "payload": {"rawContent": "x"},
                    });
                    let response = http
                        .post(server.url("/me/notifications"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let retry_hint = response.headers().contains_key("retry-after");
                    let body: Value = response.json().await.unwrap_or_default();
                    let mut seen = seen.lock().unwrap();
                    match status {
                        201 => seen
                            .acknowledged
                            .push(body["id"].as_str().unwrap().to_owned()),
                        503 if retry_hint => seen.refused_with_retry_hint += 1,
                        _ => seen.unexpected.push(format!("{status} {body}")),
                    }
                }
            })
        })
        .collect();

    let acknowledged = || seen.lock().unwrap().acknowledged.len();
    wait_until("creates are acknowledged", || acknowledged() >= 20).await;
    database.stop();
    let deadline = Instant::now() + PATIENCE;
    while ready_status(&server).await != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz never said the store is down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until("creates are refused with a retry hint", || {
        seen.lock().unwrap().refused_with_retry_hint > 0
    })
    .await;
    let before_restart = acknowledged();
    database.restart();
    wait_until("creates are acknowledged again", || {
        acknowledged() >= before_restart + 20
    })
    .await;
    let deadline = Instant::now() + PATIENCE;
    while ready_status(&server).await != 200 {
        assert!(Instant::now() < deadline, "/readyz never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.unexpected.is_empty(),
        "unexpected answers: {:?}",
        seen.unexpected
    );
    for id in &seen.acknowledged {
        let (status, _) = server
            .call(
                reqwest::Method::GET,
                &format!("/me/notifications/{id}"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "acknowledged create {id} lost");
    }
    eprintln!(
        "outage suite: {} acknowledged, all found; {} refused with a retry hint while the \
         database was down",
        seen.acknowledged.len(),
        seen.refused_with_retry_hint
    );
}
