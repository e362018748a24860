//! CreatedByApp end to end: another app's or another user's tokens reach nothing.

use notif_tests::{DEMO_HOST, TestServer, TestStore};
use reqwest::Method;
use serde_json::{Value, json};

async fn other_apps_and_users_get_not_found_or_forbidden_everywhere(store: TestStore) {
    let server = TestServer::start_on(store).await;
    let alice = server.sign_in("demo-client", "alice").await;
    let service = server
        .on_behalf_of("demo-app-service", "demo-secret", &alice)
        .await;
    let subscription = server.subscribe(&alice, "android", "alice-phone").await;
    let (_, created) = server
        .call(
            Method::POST,
            "/me/notifications",
            &service,
            Some(&json!({
                "targetHostName": DEMO_HOST,
                "appNotificationId": "secret",
                "groupName": "g",
                "payload": {"rawContent": "for alice only"},
            })),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();

    let bob = server.sign_in("demo-client", "bob").await;
    let other_app_alice = server.sign_in("other-client", "alice").await;
    let other_service = server.app_token("other-service", "other-secret").await;
    let read = json!({"readState": "read"});
    let refused: [(&str, Method, String, Option<&Value>); 6] = [
        ("get", Method::GET, format!("/me/notifications/{id}"), None),
        (
            "status",
            Method::GET,
            format!("/me/notifications/{id}/deliveryStatus"),
            None,
        ),
        (
            "patch",
            Method::PATCH,
            format!("/me/notifications/{id}"),
            Some(&read),
        ),
        (
            "delete",
            Method::DELETE,
            format!("/me/notifications/{id}"),
            None,
        ),
        (
            "delete group",
            Method::DELETE,
            "/me/notifications?groupName=g".into(),
            None,
        ),
        (
            "unsubscribe",
            Method::DELETE,
            format!("/me/notifications/subscriptions/{subscription}"),
            None,
        ),
    ];
    for (who, token) in [("bob", &bob), ("alice in another app", &other_app_alice)] {
        for (what, method, path, body) in &refused {
            let (status, _) = server.call(method.clone(), path, token, *body).await;
            assert_eq!(status, 404, "{who}: {what}");
        }
        let listing = server.get_json("/me/notifications", token).await;
        assert_eq!(listing["value"], json!([]), "{who}: list");
        let changes = server.get_json("/me/notifications/changes", token).await;
        assert_eq!(changes["value"], json!([]), "{who}: changes");
    }
    // Another app's service naming alice's subscription id: not found, not a way in.
    let foreign = server
        .http
        .get(server.url("/me/notifications"))
        .bearer_auth(&other_service)
        .header("x-uns-id", &subscription)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    // The other app cannot post to the demo app's host.
    let (status, _) = server
        .call(
            Method::POST,
            "/me/notifications",
            &other_app_alice,
            Some(&json!({"targetHostName": DEMO_HOST, "appNotificationId": "x", "payload": {"rawContent": "x"}})),
        )
        .await;
    assert_eq!(status, 400);
    // Alice still sees hers, untouched.
    let mine = server
        .get_json(&format!("/me/notifications/{id}"), &alice)
        .await;
    assert_eq!(mine["readState"], "unread");
    assert_eq!(mine["status"], "active");
    server.stop().await;
}

on_every_store!(other_apps_and_users_get_not_found_or_forbidden_everywhere,);
