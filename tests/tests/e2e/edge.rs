//! The HTTP edge as real clients meet it: the seed's request byte for byte, trailing slashes,
//! unknown paths and methods, links that keep the request's version and a trusted proxy's
//! origin, bearer challenges, reflection for older clients, and what hostile clients send —
//! oversized and decompression-bomb bodies, idle connections.

use std::io::Write as _;
use std::time::Duration;

use notif_tests::{DEMO_HOST, TestServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// An HTTP/1.1 exchange over a raw socket: the status line, the headers (lower-case names),
/// the body.
async fn raw_exchange(
    server: &TestServer,
    request: &str,
) -> (String, Vec<(String, String)>, String) {
    let address = server.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn future_expiration() -> String {
    notif_core::time::Timestamp::from_unix_millis(
        notif_core::ports::Clock::now(&notif_delivery::SystemClock).unix_millis() + 86_400_000,
    )
    .to_rfc3339()
}

async fn service_token(server: &TestServer) -> String {
    let device = server.sign_in("demo-client", "alice").await;
    server
        .on_behalf_of("demo-app-service", "demo-secret", &device)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_request_byte_for_byte_is_created() {
    let server = TestServer::start().await;
    let token = service_token(&server).await;
    // The seed document's example, with only its (past) expiration moved into the future.
    let body = format!(
        r#"{{
    "targetHostName": "graphnotifications.sample.windows.com",
    "appNotificationId": "testDirectToastNotification",
    "expirationDateTime": "{}",
    "payload": {{
        "visualContent": {{
            "title": "Hello World!",
            "body": "Notifications are Great!"
        }}
    }},
    "targetPolicy": {{
        "platformTypes": [
        "windows",
        "android"
        ]
    }},
    "priority": "High",
    "groupName": "TestGroup",
    "displayTimeToLive": "23"
}}"#,
        future_expiration()
    );
    let address = server.base_url.trim_start_matches("http://");
    let request = format!(
        "POST /beta/me/notifications/ HTTP/1.1\r\nHost: {address}\r\nContent-type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, headers, answer) = raw_exchange(&server, &request).await;
    assert_eq!(status, "HTTP/1.1 201 Created", "{answer}");
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let entity: Value = serde_json::from_str(&answer).unwrap();
    let id = entity["id"].as_str().unwrap();
    assert_eq!(
        header(&headers, "location").unwrap(),
        format!("{}/beta/me/notifications/{id}", server.base_url)
    );
    assert!(
        entity["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/beta/$metadata#users(", server.base_url))
    );
    assert_eq!(entity["appNotificationId"], "testDirectToastNotification");
    assert_eq!(entity["displayTimeToLive"], 23);
    assert_eq!(entity["groupName"], "TestGroup");
    assert_eq!(entity["priority"], "1");
    assert_eq!(
        entity["payload"],
        json!({"visualContent": {"title": "Hello World!", "body": "Notifications are Great!"}})
    );
    assert!(entity["expirationDateTime"].is_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_graph_route_answers_the_same_with_a_trailing_slash() {
    let server = TestServer::start().await;
    let token = service_token(&server).await;
    let device = server.sign_in("demo-client", "alice").await;
    let created = |key: &str| json!({"targetHostName": DEMO_HOST, "appNotificationId": key, "payload": {"rawContent": "r"}});
    for prefix in ["", "/beta", "/v1.0"] {
        for slash in ["", "/"] {
            let path = |rest: &str| format!("{prefix}/me/notifications{rest}{slash}");
            let key = format!("k{prefix}{slash}");
            let (status, entity) = server
                .call(
                    reqwest::Method::POST,
                    &path(""),
                    &token,
                    Some(&created(&key)),
                )
                .await;
            assert_eq!(status, 201, "POST {}", path(""));
            let id = entity["id"].as_str().unwrap().to_owned();
            let get = |rest: String| {
                let server = &server;
                let token = token.clone();
                async move {
                    server
                        .call(reqwest::Method::GET, &rest, &token, None)
                        .await
                        .0
                }
            };
            assert_eq!(get(path("")).await, 200, "GET {}", path(""));
            assert_eq!(get(path(&format!("/{id}"))).await, 200);
            assert_eq!(get(path("/changes")).await, 200);
            assert_eq!(get(path(&format!("/{id}/deliveryStatus"))).await, 200);
            assert_eq!(get(path("/subscriptions")).await, 200);
            let (status, _) = server
                .call(
                    reqwest::Method::PATCH,
                    &path(&format!("/{id}")),
                    &token,
                    Some(&json!({"readState": "read"})),
                )
                .await;
            assert_eq!(status, 200, "PATCH {}", path(&format!("/{id}")));
            let (status, subscription) = server
                .call(
                    reqwest::Method::POST,
                    &path("/subscriptions"),
                    &device,
                    Some(
                        &server
                            .channel_body("android", &format!("d{}-{}", prefix.len(), slash.len())),
                    ),
                )
                .await;
            assert_eq!(status, 201, "POST {}", path("/subscriptions"));
            let subscription_id = subscription["id"].as_str().unwrap();
            let (status, _) = server
                .call(
                    reqwest::Method::DELETE,
                    &path(&format!("/subscriptions/{subscription_id}")),
                    &device,
                    None,
                )
                .await;
            assert_eq!(status, 204);
            let (status, _) = server
                .call(
                    reqwest::Method::DELETE,
                    &path(&format!("/{id}")),
                    &token,
                    None,
                )
                .await;
            assert_eq!(status, 204, "DELETE {}", path(&format!("/{id}")));
        }
    }
    server.stop().await;
}

fn assert_graph_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(
        body["error"]["innerError"]["request-id"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{body}"
    );
    assert!(body["error"]["innerError"]["date"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_get_graph_errors_not_grpc() {
    let server = TestServer::start().await;
    let token = service_token(&server).await;
    for path in ["/", "/beta/me/notificationz", "/v1.0/nothing/here"] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert!(response.headers().get("grpc-status").is_none());
        assert_graph_error(&response.json().await.unwrap(), "itemNotFound");
    }
    let response = server
        .http
        .put(server.url("/me/notifications/01900000-0000-7000-8000-000000000000"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    for method in ["GET", "PATCH", "DELETE"] {
        assert!(allow.contains(method), "{allow}");
    }
    assert_graph_error(&response.json().await.unwrap(), "methodNotAllowed");

    // A gRPC request for a method no service has is still UNIMPLEMENTED.
    let grpc = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = grpc
        .post(server.url("/notif.v1.Notifications/NoSuchMethod"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "12");
    server.stop().await;
}

async fn create_in_group(server: &TestServer, token: &str, key: &str, group: &str) {
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            "/me/notifications",
            token,
            Some(&json!({"targetHostName": DEMO_HOST, "appNotificationId": key, "groupName": group, "payload": {"rawContent": "r"}})),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_links_keep_the_version_and_encode_their_query() {
    let server = TestServer::start().await;
    let token = service_token(&server).await;
    for group in ["a b+c", "x#y", "p%41"] {
        for key in 0..3 {
            create_in_group(&server, &token, &format!("{group}-{key}"), group).await;
        }
        create_in_group(&server, &token, &format!("{group}-elsewhere"), "other").await;
    }
    for prefix in ["", "/beta", "/v1.0"] {
        for group in ["a b+c", "x#y", "p%41"] {
            let encoded: String = url::form_urlencoded::byte_serialize(group.as_bytes()).collect();
            let mut next = Some(server.url(&format!(
                "{prefix}/me/notifications?$top=1&groupName={encoded}"
            )));
            let mut seen = Vec::new();
            while let Some(link) = next {
                assert!(
                    link.starts_with(&format!("{}{prefix}/me/notifications?", server.base_url)),
                    "{link}"
                );
                let response = server
                    .http
                    .get(&link)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                let page: Value = response.json().await.unwrap();
                assert!(
                    page["@odata.context"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{}{prefix}/$metadata", server.base_url))
                );
                for entity in page["value"].as_array().unwrap() {
                    assert_eq!(entity["groupName"], group);
                    seen.push(entity["appNotificationId"].as_str().unwrap().to_owned());
                }
                next = page["@odata.nextLink"].as_str().map(str::to_owned);
            }
            seen.sort();
            assert_eq!(
                seen,
                (0..3)
                    .map(|key| format!("{group}-{key}"))
                    .collect::<Vec<_>>(),
                "{prefix} {group}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_follow_a_trusted_proxy_and_ignore_an_untrusted_one() {
    let forwarded = |request: reqwest::RequestBuilder| {
        request
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "notif.example.com")
    };
    let body = json!({"targetHostName": DEMO_HOST, "appNotificationId": "p", "payload": {"rawContent": "r"}});

    let untrusted = TestServer::start().await;
    let token = service_token(&untrusted).await;
    let response = forwarded(untrusted.http.post(untrusted.url("/beta/me/notifications")))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/beta/me/notifications/", untrusted.base_url)),
        "{location}"
    );
    untrusted.stop().await;

    let trusted = TestServer::start_configured(|config| {
        config.http.trust_proxy = true;
    })
    .await;
    let token = service_token(&trusted).await;
    let response = forwarded(trusted.http.post(trusted.url("/v1.0/me/notifications")))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://notif.example.com/v1.0/me/notifications/"),
        "{location}"
    );
    let response = trusted
        .http
        .get(trusted.url("/me/notifications"))
        .header(
            "forwarded",
            "for=10.0.0.1;proto=https;host=proxy.example.org",
        )
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let page: Value = response.json().await.unwrap();
    assert!(
        page["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with("https://proxy.example.org/$metadata"),
        "{page}"
    );
    trusted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_answers_carry_a_bearer_challenge() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(server.url("/me/notifications"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_graph_error(
        &response.json().await.unwrap(),
        "InvalidAuthenticationToken",
    );
    let response = server
        .http
        .get(server.url("/me/notifications"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_speaks_v1alpha_too() {
    use tokio_stream::StreamExt as _;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(server.base_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for expected in [
        "notif.v1.Notifications",
        "notif.v1.Subscriptions",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected.to_owned()), "{names:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_bomb_bodies_get_413_with_memory_unchanged() {
    let server = TestServer::start().await;
    let token = service_token(&server).await;

    let oversized = vec![b' '; 3 * 1024 * 1024];
    let response = server
        .http
        .post(server.url("/me/notifications"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(oversized)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_graph_error(&response.json().await.unwrap(), "requestEntityTooLarge");

    // 1 GiB of JSON whitespace, gzipped to about a megabyte.
    let bomb = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..1024 {
            encoder.write_all(&chunk).unwrap();
        }
        encoder.finish().unwrap()
    };
    assert!(bomb.len() < 2 * 1024 * 1024, "{}", bomb.len());
    let before = notif_tests::peak_rss();
    for _ in 0..4 {
        let response = server
            .http
            .post(server.url("/me/notifications"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413);
        assert_graph_error(&response.json().await.unwrap(), "requestEntityTooLarge");
    }
    let growth = notif_tests::peak_rss().saturating_sub(before);
    assert!(
        growth < 200 * 1024 * 1024,
        "peak RSS grew by {growth} bytes"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let server = TestServer::start_configured(|config| {
        config.http.idle_timeout_ms = 200;
        config.http.header_read_timeout_ms = 200;
    })
    .await;
    let address = server.base_url.trim_start_matches("http://").to_owned();
    // Closed by the server: reading ends. The outer timeout only keeps a failing run short.
    let closed = |mut stream: TcpStream| async move {
        let mut buffer = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer))
            .await
            .map(|read| read.map_or(true, |count| count == 0))
            .unwrap_or(false)
    };
    let silent = TcpStream::connect(&address).await.unwrap();
    assert!(
        closed(silent).await,
        "a connection that sent nothing stays open"
    );
    let mut partial = TcpStream::connect(&address).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The answer, if any, is a 408; then the connection closes.
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(30), partial.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "a connection that never finished its headers stays open"
    );
    let mut served = TcpStream::connect(&address).await.unwrap();
    served
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = vec![0u8; 1024];
    let count = served.read(&mut response).await.unwrap();
    assert!(String::from_utf8_lossy(&response[..count]).starts_with("HTTP/1.1 200"));
    assert!(
        closed(served).await,
        "a kept-alive idle connection stays open"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_one_to_close() {
    let server = TestServer::start_configured(|config| {
        config.http.max_connections = 2;
    })
    .await;
    let address = server.base_url.trim_start_matches("http://").to_owned();
    let first = TcpStream::connect(&address).await.unwrap();
    let second = TcpStream::connect(&address).await.unwrap();
    // Both are accepted (they hold the two places); the third waits in the backlog.
    let mut third = TcpStream::connect(&address).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(300), third.read_to_end(&mut answer)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were open"
    );
    drop(first);
    tokio::time::timeout(Duration::from_secs(30), third.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    drop(second);
    server.stop().await;
}
