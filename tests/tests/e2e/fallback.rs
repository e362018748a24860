//! The fallback policy end to end, on a fixed clock: the raw push first, the visual push after
//! the delay to the device that did not fetch, none to the one that did; durable across a
//! restart; acknowledged over gRPC; and every bad policy refused by field.

use std::sync::Arc;
use std::time::Duration;

use notif_core::ports::Clock as _;
use notif_core::testing::FixedClock;
use notif_delivery::SystemClock;
use notif_delivery::sandbox::ReceivedPush;
use notif_grpc::pb;
use notif_tests::{DEMO_HOST, TestServer, TestStore};
use serde_json::{Value, json};
use tonic::Request;
use tonic::metadata::MetadataValue;

const WAIT: Duration = Duration::from_secs(20);

/// The Graph beta request: raw content for the app, visual content for the fallback.
fn seed(key: &str) -> Value {
    json!({
        "targetHostName": DEMO_HOST,
        "appNotificationId": key,
        "payload": {
            "visualContent": {"title": "Your order shipped", "body": "It arrives Tuesday."},
            "rawContent": "{\"order\": 42}"
        },
        "priority": "High",
        "fallbackPolicy": {"platformTypes": ["iOS"], "fallbackDelayInSeconds": 60}
    })
}

async fn start(store: TestStore, clock: &Arc<FixedClock>) -> TestServer {
    let data_dir = tempfile::tempdir().unwrap();
    let config = notif_tests::test_config_on(data_dir.path(), store);
    let clock: Arc<dyn notif_core::ports::Clock> = clock.clone();
    TestServer::start_with_clock(config, data_dir, Some(clock)).await
}

/// The APNs pushes to the device with `token` (as the sandbox saw it).
fn to_device<'a>(pushes: &'a [ReceivedPush], token: &str) -> Vec<&'a ReceivedPush> {
    pushes
        .iter()
        .filter(|push| push.path.ends_with(token))
        .collect()
}

fn authorized(
    message: pb::CreateNotificationRequest,
    token: &str,
) -> Request<pb::CreateNotificationRequest> {
    authorized_as(message, token)
}

fn authorized_as<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let bearer = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
    request.metadata_mut().insert("authorization", bearer);
    request
}

fn device_token(device: &str) -> String {
    let token: String = device.bytes().map(|byte| format!("{byte:02x}")).collect();
    format!("{token:0>64}")
}

/// Reads the delivery status until `done` holds for it (the settlement follows the push).
async fn status_until(
    server: &TestServer,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = server
            .get_json(
                &format!("/beta/me/notifications/{id}/deliveryStatus"),
                token,
            )
            .await;
        if done(&status) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the status never got there: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state_of<'a>(status: &'a Value, subscription: &str) -> &'a str {
    status["value"]
        .as_array()
        .and_then(|records| {
            records
                .iter()
                .find(|record| record["subscriptionId"] == subscription)
        })
        .and_then(|record| record["state"].as_str())
        .unwrap_or("(none)")
}

pub(crate) async fn the_visual_push_follows_only_where_the_raw_one_was_not_fetched(
    store: TestStore,
) {
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let server = start(store, &clock).await;
    let alice = server.sign_in("demo-client", "alice").await;
    let fetching = server.subscribe(&alice, "ios", "fetching-phone").await;
    let sleeping = server.subscribe(&alice, "ios", "sleeping-phone").await;

    let (status, created) = server
        .call(
            reqwest::Method::POST,
            "/beta/me/notifications/",
            &alice,
            Some(&seed("order-42")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["fallbackPolicy"],
        json!({"platformTypes": ["iOS"], "fallbackDelayInSeconds": 60})
    );
    let id = created["id"].as_str().unwrap().to_owned();

    // The raw pushes first: silent, to both phones.
    let pushes = server.pushes_until(WAIT, |pushes| pushes.len() >= 2).await;
    for push in &pushes {
        assert_eq!(push.headers["apns-push-type"], "background", "{push:?}");
    }
    let awaiting = status_until(&server, &alice, &id, |status| {
        [&fetching, &sleeping]
            .iter()
            .all(|device| state_of(status, device) == "awaitingFetch")
    })
    .await;
    let fallback_at = clock.now().saturating_add(Duration::from_secs(60));
    for record in awaiting["value"].as_array().unwrap() {
        assert_eq!(record["detail"], fallback_at.to_rfc3339());
    }

    // One phone's app wakes and reads the notification, naming its subscription.
    clock.advance(Duration::from_secs(20));
    let read = server
        .http
        .get(server.url(&format!("/beta/me/notifications/{id}")))
        .bearer_auth(&alice)
        .header("x-uns-id", &fetching)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let fetched = server
        .get_json(
            &format!("/beta/me/notifications/{id}/deliveryStatus"),
            &alice,
        )
        .await;
    assert_eq!(state_of(&fetched, &fetching), "fetched");
    assert_eq!(state_of(&fetched, &sleeping), "awaitingFetch");

    // The waiting fallback is durable: it survives a restart.
    let server = server.restart().await;
    clock.advance(Duration::from_secs(41));
    server.jobs_may_be_due();
    let pushes = server.pushes_until(WAIT, |pushes| !pushes.is_empty()).await;
    assert_eq!(pushes.len(), 1, "{pushes:#?}");
    let fallback = &pushes[0];
    assert!(fallback.path.ends_with(&device_token("sleeping-phone")));
    assert_eq!(fallback.headers["apns-push-type"], "alert");
    let body: Value = serde_json::from_slice(&fallback.body).unwrap();
    assert_eq!(
        body["aps"]["alert"]["title"], "Your order shipped",
        "{body}"
    );
    let done = status_until(&server, &alice, &id, |status| {
        state_of(status, &sleeping) == "fallbackDelivered"
    })
    .await;
    assert_eq!(state_of(&done, &fetching), "fetched");
    assert!(to_device(&server.sandbox.pushes(), &device_token("fetching-phone")).is_empty());
    server.stop().await;
}

pub(crate) async fn a_replace_supersedes_a_waiting_fallback_and_grpc_acknowledges(
    store: TestStore,
) {
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let server = start(store, &clock).await;
    let alice = server.sign_in("demo-client", "alice").await;
    let phone = server.subscribe(&alice, "ios", "phone").await;
    let (mut notifications, _) = server.grpc().await;
    let authorized = |message| authorized(message, &alice);
    let acknowledge = |message| authorized_as(message, &alice);
    let status_request = |message| authorized_as(message, &alice);
    let create = |key: &str| pb::CreateNotificationRequest {
        target_host_name: DEMO_HOST.into(),
        app_notification_id: key.into(),
        visual_content: Some(pb::VisualContent {
            title: format!("title of {key}"),
            body: None,
        }),
        raw_content: Some("raw".into()),
        fallback_policy: Some(pb::FallbackPolicyDraft {
            platform_types: vec!["ios".into()],
            fallback_delay_in_seconds: Some(120),
        }),
        ..pb::CreateNotificationRequest::default()
    };
    let first = notifications
        .create_notification(authorized(create("n1")))
        .await
        .unwrap()
        .into_inner()
        .notification
        .unwrap();
    assert_eq!(
        first.fallback_policy,
        Some(pb::FallbackPolicy {
            platform_types: vec![pb::Platform::Ios as i32],
            fallback_delay_in_seconds: 120,
        })
    );
    server.pushes_until(WAIT, |pushes| pushes.len() == 1).await;
    status_until(&server, &alice, &first.id, |status| {
        state_of(status, &phone) == "awaitingFetch"
    })
    .await;

    // A replace supersedes the waiting fallback: the new raw push goes out at once, and
    // its own fallback waits the whole delay again.
    clock.advance(Duration::from_secs(100));
    notifications
        .create_notification(authorized(create("n1")))
        .await
        .unwrap();
    server.pushes_until(WAIT, |pushes| pushes.len() == 2).await;
    status_until(&server, &alice, &first.id, |status| {
        state_of(status, &phone) == "awaitingFetch"
    })
    .await;
    clock.advance(Duration::from_secs(30));
    server.jobs_may_be_due();

    // The phone acknowledges over gRPC: the fallback is not sent.
    let missing = notifications
        .acknowledge_notification(acknowledge(pb::AcknowledgeNotificationRequest {
            id: first.id.clone(),
            subscription_id: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    assert!(missing.message().contains("subscription_id"), "{missing:?}");
    notifications
        .acknowledge_notification(acknowledge(pb::AcknowledgeNotificationRequest {
            id: first.id.clone(),
            subscription_id: phone.clone(),
        }))
        .await
        .unwrap();
    let status = notifications
        .get_delivery_status(status_request(pb::GetDeliveryStatusRequest {
            id: first.id.clone(),
            subscription_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.endpoints[0].state, pb::DeliveryState::Fetched as i32);
    clock.advance(Duration::from_secs(600));
    server.jobs_may_be_due();
    // Nothing is owed any more: a later create's push is the next one the phone gets.
    notifications
        .create_notification(authorized(create("n2")))
        .await
        .unwrap();
    let pushes = server.pushes_until(WAIT, |pushes| pushes.len() >= 3).await;
    assert_eq!(pushes.len(), 3, "{pushes:#?}");
    assert_eq!(pushes[2].headers["apns-push-type"], "background");
    server.stop().await;
}

pub(crate) async fn bad_policies_are_refused_by_field(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let alice = server.sign_in("demo-client", "alice").await;
    let cases = [
        (
            json!({"platformTypes": ["iOS"], "fallbackDelayInSeconds": 59}),
            "fallbackPolicy.fallbackDelayInSeconds",
        ),
        (
            json!({"platformTypes": ["iOS"], "fallbackDelayInSeconds": 601}),
            "fallbackPolicy.fallbackDelayInSeconds",
        ),
        (
            json!({"platformTypes": ["iOS"]}),
            "fallbackPolicy.fallbackDelayInSeconds",
        ),
        (
            json!({"platformTypes": ["iOS"], "fallbackDelayInSeconds": 1.5}),
            "fallbackPolicy.fallbackDelayInSeconds",
        ),
        (
            json!({"platformTypes": ["Symbian"], "fallbackDelayInSeconds": 60}),
            "fallbackPolicy.platformTypes[0]",
        ),
        (
            json!({"platformTypes": [], "fallbackDelayInSeconds": 60}),
            "fallbackPolicy.platformTypes",
        ),
        (
            json!({"platformTypes": "iOS", "fallbackDelayInSeconds": 60}),
            "fallbackPolicy.platformTypes",
        ),
        (
            json!({"platformTypes": ["web"], "fallbackDelayInSeconds": 60}),
            "fallbackPolicy.platformTypes",
        ),
        (json!("soon"), "fallbackPolicy"),
    ];
    let mut bodies: Vec<(Value, &str)> = cases
        .into_iter()
        .map(|(policy, field)| {
            let mut body = seed("bad");
            body["fallbackPolicy"] = policy;
            (body, field)
        })
        .collect();
    // A fallback needs both contents.
    let mut visual_only = seed("visual-only");
    visual_only["payload"] = json!({"visualContent": {"title": "t"}});
    bodies.push((visual_only, "fallbackPolicy"));
    for (body, field) in bodies {
        let (status, error) = server
            .call(
                reqwest::Method::POST,
                "/beta/me/notifications",
                &alice,
                Some(&body),
            )
            .await;
        assert_eq!(status, 400, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("{field}:")),
            "{body} should name {field}: {error}"
        );
    }
    server.stop().await;
}

on_every_store!(
    the_visual_push_follows_only_where_the_raw_one_was_not_fetched,
    a_replace_supersedes_a_waiting_fallback_and_grpc_acknowledges,
    bad_policies_are_refused_by_field,
);
