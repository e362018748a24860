//! Chaos: the providers fail 30% of requests at random (500, 503, 429 with Retry-After,
//! timeouts, resets); every push still arrives before expiration, no subscription is pruned,
//! and retries wait as long as Retry-After asks.

use std::collections::BTreeSet;
use std::time::Duration;

use notif_delivery::sandbox::{Chaos, FakeResponse};
use notif_tests::{DEMO_HOST, TestServer};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_arrives_despite_provider_failures() {
    let server = TestServer::start_configured(|config| {
        config.dispatcher.request_timeout_ms = 300;
        config.dispatcher.retry_initial_delay_ms = 50;
        config.dispatcher.retry_max_delay_ms = 500;
    })
    .await;
    let device = server.sign_in("demo-client", "carol").await;
    let service = server
        .on_behalf_of("demo-app-service", "demo-secret", &device)
        .await;
    for platform in ["windows", "android", "ios", "webpush"] {
        server
            .subscribe(&device, platform, &format!("carol-{platform}"))
            .await;
    }
    server.sandbox.set_chaos(Some(Chaos {
        failure_rate: 0.3,
        hang: Duration::from_millis(800),
        seed: 42,
    }));
    let mut ids = BTreeSet::new();
    for index in 0..20 {
        let created: Value = server
            .http
            .post(server.url("/me/notifications"))
            .bearer_auth(&service)
            .json(&json!({
                "targetHostName": DEMO_HOST,
                "appNotificationId": format!("chaos-{index}"),
                "payload": {"visualContent": {"title": format!("n{index}")}},
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert(created["id"].as_str().unwrap().to_owned());
    }
    let accepted = |pushes: &[notif_delivery::sandbox::ReceivedPush]| {
        pushes
            .iter()
            .filter(|push| push.answered == FakeResponse::Accept)
            .filter_map(|push| {
                let envelope = push.envelope.as_ref()?;
                Some((envelope["id"].as_str()?.to_owned(), push.platform))
            })
            .collect::<BTreeSet<_>>()
    };
    let pushes = server
        .pushes_until(Duration::from_secs(90), |pushes| {
            accepted(pushes).len() == ids.len() * 4
        })
        .await;
    server.sandbox.set_chaos(None);
    let failures = pushes
        .iter()
        .filter(|push| push.answered != FakeResponse::Accept)
        .count();
    assert!(
        failures >= 10,
        "the chaos failed {failures} of {} pushes",
        pushes.len()
    );

    let subscriptions: Value = server
        .get_json("/me/notifications/subscriptions", &device)
        .await;
    assert_eq!(
        subscriptions["value"].as_array().unwrap().len(),
        4,
        "no subscription was pruned"
    );

    let retries = server.sandbox.throttled_retries();
    assert!(!retries.is_empty(), "some pushes were throttled");
    for (asked, waited) in retries {
        // Timestamps are milliseconds: allow for rounding.
        assert!(
            waited + Duration::from_millis(10) >= asked,
            "asked {asked:?}, retried after {waited:?}"
        );
    }
    server.stop().await;
}
