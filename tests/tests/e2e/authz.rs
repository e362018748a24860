//! CreatedByApp end to end: another app's or another user's tokens reach nothing.

use notif_tests::{DEMO_HOST, TestServer};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_apps_and_users_get_not_found_or_forbidden_everywhere() {
    let server = TestServer::start().await;
    let alice = server.sign_in("demo-client", "alice").await;
    let service = server
        .on_behalf_of("demo-app-service", "demo-secret", &alice)
        .await;
    let subscription = server.subscribe(&alice, "android", "alice-phone").await;
    let created: Value = server
        .http
        .post(server.url("/me/notifications"))
        .bearer_auth(&service)
        .json(&json!({
            "targetHostName": DEMO_HOST,
            "appNotificationId": "secret",
            "groupName": "g",
            "payload": {"rawContent": "for alice only"},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let bob = server.sign_in("demo-client", "bob").await;
    let other_app_alice = server.sign_in("other-client", "alice").await;
    let other_service = server.app_token("other-service", "other-secret").await;
    for (who, token) in [("bob", &bob), ("alice in another app", &other_app_alice)] {
        let expect = |status: reqwest::StatusCode, what: &str| {
            assert_eq!(status, 404, "{who}: {what}");
        };
        let get = |path: String| server.http.get(server.url(&path)).bearer_auth(token).send();
        expect(
            get(format!("/me/notifications/{id}"))
                .await
                .unwrap()
                .status(),
            "get",
        );
        expect(
            get(format!("/me/notifications/{id}/deliveryStatus"))
                .await
                .unwrap()
                .status(),
            "status",
        );
        let patch = server
            .http
            .patch(server.url(&format!("/me/notifications/{id}")))
            .bearer_auth(token)
            .json(&json!({"readState": "read"}))
            .send()
            .await
            .unwrap();
        expect(patch.status(), "patch");
        let delete = server
            .http
            .delete(server.url(&format!("/me/notifications/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        expect(delete.status(), "delete");
        let delete_group = server
            .http
            .delete(server.url("/me/notifications?groupName=g"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        expect(delete_group.status(), "delete group");
        let unsubscribe = server
            .http
            .delete(server.url(&format!("/me/notifications/subscriptions/{subscription}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        expect(unsubscribe.status(), "unsubscribe");
        let listing: Value = get("/me/notifications".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listing["value"], json!([]), "{who}: list");
        let changes: Value = get("/me/notifications/changes".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    let cross_post = server
        .http
        .post(server.url("/me/notifications"))
        .bearer_auth(&other_app_alice)
        .json(&json!({"targetHostName": DEMO_HOST, "appNotificationId": "x", "payload": {"rawContent": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_post.status(), 400);
    // Alice still sees hers, untouched.
    let mine: Value = server
        .http
        .get(server.url(&format!("/me/notifications/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["readState"], "unread");
    assert_eq!(mine["status"], "active");
    server.stop().await;
}
