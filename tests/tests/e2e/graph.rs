//! The Graph-compatible HTTP API: the seed flow, replace, sync, deletes, expiry, status.

use std::collections::BTreeSet;
use std::time::Duration;

use notif_core::platform::Platform;
use notif_delivery::sandbox::ReceivedPush;
use notif_tests::{DEMO_HOST, TestServer, TestStore};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// The seed request of the service-side documentation, with an expiration in the future (the
/// seed's own date has passed, and expired notifications are refused).
fn seed_request(expires_in_days: i64) -> Value {
    let expiration = notif_core::time::Timestamp::from_unix_millis(
        notif_core::ports::Clock::now(&notif_delivery::SystemClock).unix_millis()
            + expires_in_days * 86_400_000,
    );
    json!({
        "targetHostName": DEMO_HOST,
        "appNotificationId": "testDirectToastNotification",
        "expirationDateTime": expiration.to_rfc3339(),
        "payload": {"visualContent": {"title": "Hello World!", "body": "Notifications are Great!"}},
        "targetPolicy": {"platformTypes": ["windows", "android"]},
        "priority": "High",
        "groupName": "TestGroup",
        "displayTimeToLive": "23"
    })
}

async fn post(server: &TestServer, token: &str, body: &Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/beta/me/notifications"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn platforms_for(pushes: &[ReceivedPush], id: &str, change: &str) -> BTreeSet<Platform> {
    pushes
        .iter()
        .filter(|push| {
            push.envelope
                .as_ref()
                .is_some_and(|envelope| envelope["id"] == id && envelope["change"] == change)
        })
        .map(|push| push.platform)
        .collect()
}

struct Alice {
    device_token: String,
    service_token: String,
}

async fn alice_with_four_devices(server: &TestServer) -> Alice {
    let device_token = server.sign_in("demo-client", "alice").await;
    let service_token = server
        .on_behalf_of("demo-app-service", "demo-secret", &device_token)
        .await;
    for platform in ["windows", "android", "ios", "webpush"] {
        server
            .subscribe(&device_token, platform, &format!("alice-{platform}"))
            .await;
    }
    Alice {
        device_token,
        service_token,
    }
}

async fn the_seed_request_is_created_and_pushed_per_target_policy(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let alice = alice_with_four_devices(&server).await;
    let response = post(&server, &alice.service_token, &seed_request(1)).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("{}/beta/me/notifications/{id}", server.base_url),
        "the Location keeps the version the request used"
    );
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("users('alice')/notifications/$entity")
    );
    assert_eq!(body["appNotificationId"], "testDirectToastNotification");
    assert_eq!(body["displayTimeToLive"], 23);
    assert_eq!(body["groupName"], "TestGroup");
    assert_eq!(body["priority"], "1");
    assert_eq!(body["payload"]["visualContent"]["title"], "Hello World!");
    assert_eq!(
        body["targetPolicy"]["platformTypes"],
        json!(["Windows", "Android"])
    );

    let pushes = server
        .pushes_until(WAIT, |pushes| {
            platforms_for(pushes, &id, "created").len() >= 2
        })
        .await;
    assert_eq!(
        platforms_for(&pushes, &id, "created"),
        [Platform::Windows, Platform::Android].into(),
        "iOS and Web Push are not targeted"
    );
    let windows = pushes
        .iter()
        .find(|push| push.platform == Platform::Windows)
        .unwrap();
    assert_eq!(windows.headers["x-wns-type"], "wns/toast");
    let android = pushes
        .iter()
        .find(|push| push.platform == Platform::Android)
        .unwrap();
    let message: Value = serde_json::from_slice(&android.body).unwrap();
    assert_eq!(message["message"]["notification"]["title"], "Hello World!");

    // Without a target policy every device gets it, each in its own protocol.
    let mut everyone = seed_request(1);
    everyone["appNotificationId"] = json!("toEveryone");
    everyone.as_object_mut().unwrap().remove("targetPolicy");
    let body: Value = post(&server, &alice.service_token, &everyone)
        .await
        .json()
        .await
        .unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let pushes = server
        .pushes_until(WAIT, |pushes| {
            platforms_for(pushes, &id, "created").len() == 4
        })
        .await;
    let web = pushes
        .iter()
        .find(|push| {
            push.platform == Platform::WebPush
                && push.envelope.as_ref().is_some_and(|e| e["id"] == id)
        })
        .unwrap();
    assert_eq!(web.headers["content-encoding"], "aes128gcm");
    assert_eq!(
        web.envelope.as_ref().unwrap()["payload"]["visualContent"]["body"],
        "Notifications are Great!"
    );
    let apns = pushes
        .iter()
        .find(|push| push.platform == Platform::Ios)
        .unwrap();
    assert_eq!(apns.headers["apns-push-type"], "alert");

    // Delivery status shows every endpoint delivered (once the dispatcher settled each).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status: Value = server
            .get_json(
                &format!("/me/notifications/{id}/deliveryStatus"),
                &alice.service_token,
            )
            .await;
        let states: Vec<String> = status["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|endpoint| endpoint["state"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(states.len(), 4);
        if states.iter().all(|state| state == "delivered") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{states:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = alice.device_token;
    server.stop().await;
}

async fn replacing_reading_and_deleting_sync_to_devices(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let alice = alice_with_four_devices(&server).await;
    let mut request = seed_request(1);
    request.as_object_mut().unwrap().remove("targetPolicy");
    let first: Value = post(&server, &alice.service_token, &request)
        .await
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().unwrap().to_owned();

    request["payload"]["visualContent"]["title"] = json!("Updated");
    let replaced = post(&server, &alice.service_token, &request).await;
    assert_eq!(replaced.status(), 200, "a replace answers 200");
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["id"], id.as_str());
    assert_eq!(replaced["payload"]["visualContent"]["title"], "Updated");

    // A device marks it read: the other devices hear of it, the browser does not.
    let patched = server
        .http
        .patch(server.url(&format!("/me/notifications/{id}")))
        .bearer_auth(&alice.device_token)
        .json(&json!({"readState": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let pushes = server
        .pushes_until(WAIT, |pushes| {
            platforms_for(pushes, &id, "state").len() == 3
        })
        .await;
    assert_eq!(
        platforms_for(&pushes, &id, "state"),
        [Platform::Windows, Platform::Android, Platform::Ios].into()
    );
    let changes: Value = server
        .get_json("/me/notifications/changes?cursor=0", &alice.device_token)
        .await;
    assert_eq!(changes["value"][0]["readState"], "read");
    assert_eq!(changes["cursor"], 3);

    // Delete the group: a tombstone, synced to devices.
    let deleted = server
        .http
        .delete(server.url("/me/notifications?groupName=TestGroup"))
        .bearer_auth(&alice.service_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    server
        .pushes_until(WAIT, |pushes| {
            platforms_for(pushes, &id, "deleted").len() == 3
        })
        .await;
    let listing: Value = server
        .get_json("/me/notifications", &alice.device_token)
        .await;
    assert_eq!(listing["value"], json!([]));
    // Gone for Graph clients; the tombstone stays in the change log and deleted listings.
    let (status, gone) = server
        .call(
            reqwest::Method::GET,
            &format!("/me/notifications/{id}"),
            &alice.device_token,
            None,
        )
        .await;
    assert_eq!(status, 404, "{gone}");
    assert_eq!(gone["error"]["code"], "itemNotFound");
    let deleted_listing: Value = server
        .get_json("/me/notifications?status=deleted", &alice.device_token)
        .await;
    assert_eq!(deleted_listing["value"][0]["id"], id.as_str());
    assert_eq!(deleted_listing["value"][0]["status"], "deleted");
    let changes: Value = server
        .get_json("/me/notifications/changes?cursor=3", &alice.device_token)
        .await;
    assert_eq!(changes["value"][0]["status"], "deleted");
    server.stop().await;
}

async fn app_only_callers_post_with_a_subscription_id(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let device = server.sign_in("demo-client", "bob").await;
    let subscription = server.subscribe(&device, "android", "bob-phone").await;
    let service = server.app_token("demo-app-service", "demo-secret").await;
    let mut request = seed_request(1);
    request.as_object_mut().unwrap().remove("targetPolicy");
    let without_id = post(&server, &service, &request).await;
    assert_eq!(without_id.status(), 403);
    let created = server
        .http
        .post(server.url("/me/notifications"))
        .bearer_auth(&service)
        .header("x-uns-id", &subscription)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("users('bob')")
    );
    let listing: Value = server.get_json("/me/notifications", &device).await;
    assert_eq!(listing["value"].as_array().unwrap().len(), 1);
    assert_eq!(listing["unreadCount"], 1);
    server.stop().await;
}

async fn bad_requests_get_graph_errors_naming_the_field(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let device = server.sign_in("demo-client", "alice").await;
    let token = server
        .on_behalf_of("demo-app-service", "demo-secret", &device)
        .await;
    let mut unknown_platform = seed_request(1);
    unknown_platform["targetPolicy"]["platformTypes"] = json!(["windows", "blackberry"]);
    let mut past = seed_request(1);
    past["expirationDateTime"] = json!("2018-08-29T23:51:33.000Z");
    let mut too_far = seed_request(1);
    too_far["expirationDateTime"] = json!("2099-01-01T00:00:00Z");
    let mut wrong_type = seed_request(1);
    wrong_type["payload"]["visualContent"]["title"] = json!(42);
    let cases = [
        (json!([seed_request(1)]), "not an array"),
        (unknown_platform, "targetPolicy.platformTypes[1]"),
        (past, "expirationDateTime"),
        (too_far, "expirationDateTime"),
        (wrong_type, "payload.visualContent.title"),
    ];
    for (body, named) in cases {
        let response = post(&server, &token, &body).await;
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalidRequest");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(named),
            "{error}"
        );
    }
    let malformed = server
        .http
        .post(server.url("/me/notifications"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let brotli = server
        .http
        .post(server.url("/me/notifications"))
        .bearer_auth(&token)
        .header("content-encoding", "br")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(brotli.status(), 415);
    let gzipped = {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(seed_request(1).to_string().as_bytes())
            .unwrap();
        encoder.finish().unwrap()
    };
    let accepted = server
        .http
        .post(server.url("/me/notifications"))
        .bearer_auth(&token)
        .header("content-encoding", "gzip")
        .body(gzipped)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    server.stop().await;
}

async fn expired_notifications_leave_the_feed(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let device = server.sign_in("demo-client", "alice").await;
    let token = server
        .on_behalf_of("demo-app-service", "demo-secret", &device)
        .await;
    let mut request = seed_request(1);
    let soon = notif_core::ports::Clock::now(&notif_delivery::SystemClock).unix_millis() + 1_500;
    request["expirationDateTime"] =
        json!(notif_core::time::Timestamp::from_unix_millis(soon).to_rfc3339());
    let body: Value = post(&server, &token, &request).await.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = server
            .http
            .get(server.url(&format!("/me/notifications/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        if status == 404 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

async fn a_patch_that_changes_nothing_writes_syncs_and_pushes_nothing(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let alice = alice_with_four_devices(&server).await;
    let response = post(&server, &alice.service_token, &seed_request(1)).await;
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut answers = Vec::new();
    for _ in 0..5 {
        let (status, entity) = server
            .call(
                reqwest::Method::PATCH,
                &format!("/me/notifications/{id}"),
                &alice.device_token,
                Some(&json!({"readState": "read"})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(entity["readState"], "read");
        answers.push(entity["changeSeq"].clone());
    }
    assert!(answers.iter().all(|seq| *seq == json!(2)), "{answers:?}");
    let changes: Value = server
        .get_json("/me/notifications/changes?cursor=0", &alice.device_token)
        .await;
    assert_eq!(
        changes["cursor"], 2,
        "one change for five identical updates"
    );
    // The state change is pushed to the windows and android devices once, then nothing more:
    // a final distinct change shows the earlier ones were all delivered first.
    let (status, _) = server
        .call(
            reqwest::Method::PATCH,
            &format!("/me/notifications/{id}"),
            &alice.device_token,
            Some(&json!({"userActionState": "dismissed"})),
        )
        .await;
    assert_eq!(status, 200);
    let pushes = server
        .pushes_until(WAIT, |pushes| {
            pushes
                .iter()
                .filter(|push| {
                    push.envelope
                        .as_ref()
                        .is_some_and(|envelope| envelope["changeSeq"] == 3)
                })
                .count()
                == 2
        })
        .await;
    let state_pushes = pushes
        .iter()
        .filter(|push| {
            push.envelope.as_ref().is_some_and(|envelope| {
                envelope["id"] == id.as_str() && envelope["change"] == "state"
            })
        })
        .count();
    assert!(
        state_pushes <= 4,
        "{state_pushes} state pushes for two changes to two devices"
    );
    server.stop().await;
}

async fn error_messages_name_each_field_once(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let device = server.sign_in("demo-client", "alice").await;
    let token = server
        .on_behalf_of("demo-app-service", "demo-secret", &device)
        .await;
    let mut no_payload = seed_request(1);
    no_payload["payload"] = json!({});
    let response = post(&server, &token, &no_payload).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        "payload: visualContent or rawContent is required"
    );
    server.stop().await;
}

on_every_store!(
    the_seed_request_is_created_and_pushed_per_target_policy,
    replacing_reading_and_deleting_sync_to_devices,
    app_only_callers_post_with_a_subscription_id,
    bad_requests_get_graph_errors_naming_the_field,
    expired_notifications_leave_the_feed,
    a_patch_that_changes_nothing_writes_syncs_and_pushes_nothing,
    error_messages_name_each_field_once,
);
