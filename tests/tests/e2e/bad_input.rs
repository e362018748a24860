//! Bad input over real sockets: generated malformed JSON, wrong types, huge strings, deep
//! nesting, invalid UTF-8, arbitrary authorization headers, and arbitrary protobuf bytes to
//! every RPC. No panic, no 5xx, every refusal says why, and the store is unchanged.

use notif_tests::{DEMO_HOST, TestServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop::sample::select(vec![
            "windows",
            "High",
            "2099-01-01T00:00:00Z",
            "-1",
            "dismissedish",
            "webPush"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            proptest::collection::btree_map(
                prop::sample::select(vec![
                    "targetHostName",
                    "appNotificationId",
                    "payload",
                    "visualContent",
                    "title",
                    "body",
                    "rawContent",
                    "targetPolicy",
                    "platformTypes",
                    "priority",
                    "displayTimeToLive",
                    "expirationDateTime",
                    "groupName",
                    "readState",
                    "userActionState",
                    "platform",
                    "endpoint",
                    "keys",
                    "channelUri",
                    "grant_type",
                ])
                .prop_map(str::to_owned),
                inner,
                0..8,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Bodies: arbitrary JSON, deep nesting, huge strings, invalid UTF-8, broken JSON text.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|value| value.to_string().into_bytes()),
        1 => (1usize..3_000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        1 => (1usize..200_000).prop_map(|length| json!({"appNotificationId": "x".repeat(length), "targetHostName": "h"}).to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => ".{0,200}".prop_map(String::into_bytes),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => Just(None),
        1 => "[ -~]{0,200}".prop_map(Some),
        1 => "[A-Za-z0-9_.-]{0,300}".prop_map(|token| Some(format!("Bearer {token}"))),
    ]
}

const TARGETS: [(&str, &str); 6] = [
    ("POST", "/me/notifications"),
    ("POST", "/beta/me/notifications"),
    ("PATCH", "/me/notifications/{id}"),
    ("POST", "/me/notifications/subscriptions"),
    ("POST", "/oauth2/v2.0/token"),
    ("POST", "/dev/sign-in"),
];

const RPCS: [&str; 12] = [
    "/notif.v1.Notifications/CreateNotification",
    "/notif.v1.Notifications/GetNotification",
    "/notif.v1.Notifications/ListNotifications",
    "/notif.v1.Notifications/UpdateNotificationState",
    "/notif.v1.Notifications/DeleteNotification",
    "/notif.v1.Notifications/DeleteGroup",
    "/notif.v1.Notifications/ListChanges",
    "/notif.v1.Notifications/WatchChanges",
    "/notif.v1.Notifications/GetDeliveryStatus",
    "/notif.v1.Subscriptions/Subscribe",
    "/notif.v1.Subscriptions/ListSubscriptions",
    "/notif.v1.Subscriptions/Unsubscribe",
];

async fn snapshot(server: &TestServer, token: &str) -> (Value, Value) {
    let feed: Value = server
        .get_json("/me/notifications?status=all&$top=1000", token)
        .await;
    let subscriptions: Value = server
        .get_json("/me/notifications/subscriptions", token)
        .await;
    (feed["value"].clone(), subscriptions["value"].clone())
}

#[test]
fn malformed_requests_are_refused_cleanly_and_change_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, device, service, id, before) = runtime.block_on(async {
        let server = TestServer::start().await;
        let device = server.sign_in("demo-client", "alice").await;
        let service = server.on_behalf_of("demo-app-service", "demo-secret", &device).await;
        server.subscribe(&device, "android", "alice-phone").await;
        let created: Value = server
            .http
            .post(server.url("/me/notifications"))
            .bearer_auth(&service)
            .json(&json!({"targetHostName": DEMO_HOST, "appNotificationId": "keep", "payload": {"rawContent": "r"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let before = snapshot(&server, &device).await;
        (server, device, service, id, before)
    });

    let mut runner = TestRunner::new(Config {
        cases: 192,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (body(), authorization(), 0..TARGETS.len(), any::<bool>());
    runner
        .run(&strategy, |(body, authorization, target, gzip_header)| {
            runtime.block_on(async {
                let (method, path) = TARGETS[target];
                let url = server.url(&path.replace("{id}", &id));
                let mut request = server
                    .http
                    .request(method.parse().unwrap(), url)
                    .header("content-type", "application/json")
                    .body(body);
                // The valid tokens act on alice's feed: refusals must leave it as it was.
                request = match authorization {
                    None => request.bearer_auth(if target == 2 { &device } else { &service }),
                    Some(header) => request.header("authorization", header),
                };
                if gzip_header {
                    request = request.header("content-encoding", "gzip");
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                prop_assert!(
                    !status.is_server_error(),
                    "{method} {path} answered {status}"
                );
                if status.is_client_error() {
                    let error: Value = response.json().await.unwrap_or(Value::Null);
                    let reason = error["error"]["message"]
                        .as_str()
                        .or(error["error_description"].as_str())
                        .unwrap_or_default();
                    prop_assert!(
                        !reason.is_empty(),
                        "{method} {path} {status} without a reason: {error}"
                    );
                }
                Ok(())
            })
        })
        .unwrap();

    let grpc = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    runner
        .run(
            &(
                proptest::collection::vec(any::<u8>(), 0..400),
                0..RPCS.len(),
            ),
            |(bytes, rpc)| {
                runtime.block_on(async {
                    let mut frame = vec![0u8];
                    frame.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
                    frame.extend_from_slice(&bytes);
                    let response = grpc
                        .post(server.url(RPCS[rpc]))
                        .header("content-type", "application/grpc")
                        .header("te", "trailers")
                        .bearer_auth(&service)
                        .body(frame)
                        .send()
                        .await
                        .unwrap();
                    prop_assert_eq!(response.status(), 200, "gRPC answers in-band");
                    Ok(())
                })
            },
        )
        .unwrap();

    runtime.block_on(async {
        assert_eq!(
            snapshot(&server, &device).await,
            before,
            "refused requests changed the store"
        );
        assert_eq!(
            server
                .http
                .get(server.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        server.stop().await;
    });
}
