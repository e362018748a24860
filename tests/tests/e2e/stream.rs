//! The live change stream for web clients (Server-Sent Events on
//! `GET /me/notifications/changes`): events in order with `id: <changeSeq>`, resumed from
//! `Last-Event-ID` without loss, `cursor=latest` (there, in the change listing and in gRPC
//! `WatchChanges`), a bound per user, and a reader that stops reading let go of.

use std::time::{Duration, Instant};

use notif_grpc::pb;
use notif_tests::{DEMO_HOST, TestServer};
use serde_json::{Value, json};
use tokio_stream::StreamExt as _;

/// Far longer than any step takes: reaching it fails the test, it never paces it.
const PATIENCE: Duration = Duration::from_secs(30);

/// One event of the stream.
#[derive(Debug)]
struct Event {
    id: Option<u64>,
    kind: String,
    data: Value,
}

/// Reads events off a `text/event-stream` response.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(
        server: &TestServer,
        token: &str,
        query: &str,
        last_event_id: Option<u64>,
    ) -> reqwest::Response {
        let mut request = server
            .http
            .get(server.url(&format!("/me/notifications/changes{query}")))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        request.send().await.unwrap()
    }

    async fn start(
        server: &TestServer,
        token: &str,
        query: &str,
        last_event_id: Option<u64>,
    ) -> Self {
        let response = Self::open(server, token, query, last_event_id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (heartbeat comments skipped), or `None` at the end of the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event {
                    id: None,
                    kind: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id:") {
                        event.id = id.trim().parse().ok();
                    } else if let Some(kind) = line.strip_prefix("event:") {
                        event.kind = kind.trim().to_owned();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push_str(text.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment: the heartbeat
                }
                event.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(event);
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream went quiet")
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn create(server: &TestServer, token: &str, key: &str, raw: &str) {
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/me/notifications",
            token,
            Some(&json!({
                "targetHostName": DEMO_HOST,
                "appNotificationId": key,
                "payload": {"rawContent": raw},
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_and_resume_from_the_last_event_id() {
    let server = TestServer::start().await;
    let token = server.sign_in("demo-client", "alice").await;
    let mut events = Events::start(&server, &token, "", None).await;
    for number in 1..=3 {
        create(&server, &token, &format!("n{number}"), "x").await;
    }
    for expected in 1..=3u64 {
        let event = events.next().await.unwrap();
        assert_eq!(event.kind, "change");
        assert_eq!(event.id, Some(expected), "in order");
        assert_eq!(event.data["appNotificationId"], format!("n{expected}"));
    }
    drop(events);
    // Written while the client was away; a reconnecting browser sends Last-Event-ID.
    for number in 4..=5 {
        create(&server, &token, &format!("n{number}"), "x").await;
    }
    let mut resumed = Events::start(&server, &token, "?cursor=1", Some(3)).await;
    for expected in 4..=5u64 {
        let event = resumed.next().await.unwrap();
        assert_eq!(
            event.id,
            Some(expected),
            "Last-Event-ID wins over cursor; nothing lost"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_latest_yields_only_new_changes() {
    let server = TestServer::start().await;
    let token = server.sign_in("demo-client", "alice").await;
    create(&server, &token, "old1", "x").await;
    create(&server, &token, "old2", "x").await;

    let (status, listing) = server
        .call(
            reqwest::Method::GET,
            "/me/notifications/changes?cursor=latest",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listing["value"], json!([]));
    assert_eq!(listing["cursor"], 2);

    let mut events = Events::start(&server, &token, "?cursor=latest", None).await;
    let (mut notifications, _) = server.grpc().await;
    let mut request = tonic::Request::new(pb::WatchChangesRequest {
        from_latest: true,
        ..pb::WatchChangesRequest::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut watch = notifications
        .watch_changes(request)
        .await
        .unwrap()
        .into_inner();
    create(&server, &token, "new", "x").await;
    let event = events.next().await.unwrap();
    assert_eq!(event.id, Some(3));
    assert_eq!(event.data["appNotificationId"], "new");
    let change = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(change.change_seq, 3);
    assert_eq!(change.app_notification_id, "new");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_bounded_per_user_and_a_stalled_reader_is_let_go() {
    let server = TestServer::start_configured(|config| {
        config.limits.max_streams_per_user = 1;
        config.limits.stream_stall_ms = 200;
    })
    .await;
    let token = server.sign_in("demo-client", "alice").await;
    let stalled = Events::start(&server, &token, "", None).await;
    let second = Events::open(&server, &token, "", None).await;
    assert_eq!(second.status(), 429, "one stream per user here");
    let refusal: Value = second.json().await.unwrap();
    assert_eq!(refusal["error"]["code"], "tooManyRequests");

    // Far more than the socket buffers hold, and the stalled reader reads none of it.
    let raw = "r".repeat(60_000);
    for number in 0..200 {
        create(&server, &token, &format!("big{number}"), &raw).await;
    }
    let deadline = Instant::now() + PATIENCE;
    let replacement = loop {
        let attempt = Events::open(&server, &token, "?cursor=latest", None).await;
        if attempt.status() == 200 {
            break attempt;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled stream was never let go"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(replacement);
    // What the stalled stream had read ahead is still there to read, and then it ends.
    let mut stalled = stalled;
    let mut read = 0;
    while let Some(event) = stalled.next().await {
        assert_eq!(event.kind, "change");
        read += 1;
    }
    assert!(
        read < 200,
        "the stream ended before the reader got everything ({read})"
    );
    server.stop().await;
}
