//! The authorization matrix — every operation against every kind of bad credential — and SSRF
//! refusals for channel URLs.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use notif_tests::{DEMO_HOST, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The identity provider's signing key, known to the test: written as the key file an
/// earlier version kept in the data directory, which the server moves into its store.
struct KnownKey {
    kid: &'static str,
    pkcs8: Vec<u8>,
}

/// A server whose identity provider signs with a key the test holds.
async fn server_with_known_key() -> (TestServer, KnownKey) {
    let document = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let key = KnownKey {
        kid: "known-to-the-test",
        pkcs8: document.as_ref().to_vec(),
    };
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        data_dir.path().join("idp-keys.json"),
        json!({"keys": [{"kid": key.kid, "pkcs8": STANDARD.encode(&key.pkcs8)}]}).to_string(),
    )
    .unwrap();
    let config = notif_tests::test_config(data_dir.path());
    (TestServer::start_with(config, data_dir).await, key)
}

/// Signs `claims` with the server's own identity-provider key, so every refusal below is
/// for the claim at fault, not the signature.
fn forge(key: &KnownKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

struct Operation {
    name: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_every_bad_credential() {
    let (server, key) = server_with_known_key().await;
    let alice = server.sign_in("demo-client", "alice").await;
    let service = server
        .on_behalf_of("demo-app-service", "demo-secret", &alice)
        .await;
    let subscription = server.subscribe(&alice, "android", "alice-phone").await;
    let created: Value = server
        .http
        .post(server.url("/me/notifications"))
        .bearer_auth(&service)
        .json(&json!({"targetHostName": DEMO_HOST, "appNotificationId": "k", "groupName": "g", "payload": {"rawContent": "r"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let good = claims_of(&service);
    let with = |changes: Value| {
        let mut claims = good.clone();
        for (key, value) in changes.as_object().unwrap() {
            claims[key] = value.clone();
        }
        claims
    };
    let now = good["iat"].as_u64().unwrap();
    let public_key = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(&public_key).unwrap(),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let unauthenticated: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        (
            "expired",
            Some(forge(
                &key,
                &with(json!({"exp": now - 7_200, "nbf": now - 9_000})),
            )),
        ),
        (
            "wrong audience",
            Some(forge(&key, &with(json!({"aud": "api://someone-else"})))),
        ),
        (
            "wrong issuer",
            Some(forge(&key, &with(json!({"iss": "https://evil.example"})))),
        ),
        ("alg none", Some(alg_none)),
        ("HS256 with the public key", Some(hs256)),
        ("garbage", Some("garbage".into())),
    ];
    let bob = server.sign_in("demo-client", "bob").await;
    let other_app = server.sign_in("other-client", "alice").await;
    let missing_scope = forge(&key, &with(json!({"scp": "User.Read"})));
    let app_only = server.app_token("demo-app-service", "demo-secret").await;

    let operations = vec![
        Operation {
            name: "create",
            method: Method::POST,
            path: "/me/notifications".into(),
            body: Some(
                json!({"targetHostName": DEMO_HOST, "appNotificationId": "new", "payload": {"rawContent": "x"}}),
            ),
        },
        Operation {
            name: "list",
            method: Method::GET,
            path: "/me/notifications".into(),
            body: None,
        },
        Operation {
            name: "get",
            method: Method::GET,
            path: format!("/me/notifications/{id}"),
            body: None,
        },
        Operation {
            name: "update",
            method: Method::PATCH,
            path: format!("/me/notifications/{id}"),
            body: Some(json!({"readState": "read"})),
        },
        Operation {
            name: "delete",
            method: Method::DELETE,
            path: format!("/me/notifications/{id}"),
            body: None,
        },
        Operation {
            name: "delete group",
            method: Method::DELETE,
            path: "/me/notifications?groupName=g".into(),
            body: None,
        },
        Operation {
            name: "changes",
            method: Method::GET,
            path: "/me/notifications/changes".into(),
            body: None,
        },
        Operation {
            name: "status",
            method: Method::GET,
            path: format!("/me/notifications/{id}/deliveryStatus"),
            body: None,
        },
        Operation {
            name: "subscribe",
            method: Method::POST,
            path: "/me/notifications/subscriptions".into(),
            body: Some(json!({"platform": "android", "registrationToken": "t"})),
        },
        Operation {
            name: "subscriptions",
            method: Method::GET,
            path: "/me/notifications/subscriptions".into(),
            body: None,
        },
        Operation {
            name: "unsubscribe",
            method: Method::DELETE,
            path: format!("/me/notifications/subscriptions/{subscription}"),
            body: None,
        },
    ];
    let send = |operation: &Operation, token: Option<&str>| {
        let mut request = server
            .http
            .request(operation.method.clone(), server.url(&operation.path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = &operation.body {
            request = request.json(body);
        }
        request.send()
    };
    for operation in &operations {
        for (credential, token) in &unauthenticated {
            let response = send(operation, token.as_deref()).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{} with {credential}",
                operation.name
            );
            let body: Value = response.json().await.unwrap();
            assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        }
        let forbidden = send(operation, Some(&missing_scope))
            .await
            .unwrap()
            .status();
        assert_eq!(
            forbidden,
            StatusCode::FORBIDDEN,
            "{} without the scope",
            operation.name
        );
        let no_user = send(operation, Some(&app_only)).await.unwrap().status();
        assert_eq!(
            no_user,
            StatusCode::FORBIDDEN,
            "{} app-only without a subscription id",
            operation.name
        );
        for (who, token) in [("another user", &bob), ("another app", &other_app)] {
            let status = send(operation, Some(token)).await.unwrap().status();
            let allowed = match operation.name {
                // Acting on one's own feed is fine; it never touches alice's.
                "list" | "changes" | "subscriptions" | "subscribe" => status.is_success(),
                // Another app cannot name the demo app's host.
                "create" if who == "another app" => status == StatusCode::BAD_REQUEST,
                "create" => status.is_success(),
                _ => status == StatusCode::NOT_FOUND,
            };
            assert!(allowed, "{} by {who} answered {status}", operation.name);
        }
    }
    // Alice's data is untouched by all of the above.
    let mine: Value = server
        .get_json(&format!("/me/notifications/{id}"), &alice)
        .await;
    assert_eq!(
        (mine["status"].as_str(), mine["readState"].as_str()),
        (Some("active"), Some("unread"))
    );
    let subscriptions: Value = server
        .get_json("/me/notifications/subscriptions", &alice)
        .await;
    assert_eq!(subscriptions["value"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_urls_pointing_inside_are_refused() {
    let server = TestServer::start().await;
    let alice = server.sign_in("demo-client", "alice").await;
    let keys = json!({"p256dh": format!("BA{}", "A".repeat(85)), "auth": "A".repeat(22)});
    let cases = [
        json!({"platform": "windows", "channelUri": "https://10.0.0.1/channel"}),
        json!({"platform": "windows", "channelUri": "https://169.254.169.254/latest/meta-data"}),
        json!({"platform": "windows", "channelUri": "https://192.168.1.10/wns"}),
        json!({"platform": "windows", "channelUri": "https://db5.notify.windows.com.attacker.example/x"}),
        json!({"platform": "windows", "channelUri": "http://db5.notify.windows.com/plain-http"}),
        json!({"platform": "webPush", "endpoint": "https://internal.corp.example/push", "keys": keys}),
        json!({"platform": "webPush", "endpoint": "https://[fd00::1]/push", "keys": keys}),
        json!({"platform": "webPush", "endpoint": "file:///etc/passwd", "keys": keys}),
    ];
    for body in cases {
        let response = server
            .http
            .post(server.url("/me/notifications/subscriptions"))
            .bearer_auth(&alice)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("channelUri") || message.contains("endpoint"),
            "{message}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_can_refuse_loopback_channels_in_development_mode() {
    let server = TestServer::start_configured(|config| {
        config.channels.allow_loopback = Some(false);
    })
    .await;
    let device = server.sign_in("demo-client", "alice").await;
    for platform in ["windows", "webpush"] {
        let (status, error) = server
            .call(
                reqwest::Method::POST,
                "/me/notifications/subscriptions",
                &device,
                Some(&server.channel_body(platform, "loopback")),
            )
            .await;
        assert_eq!(status, 400, "{platform}: {error}");
        assert_eq!(error["error"]["code"], "invalidRequest");
    }
    server.stop().await;
}

/// The `notif_rate_limit_buckets` gauge of `/metrics`.
async fn rate_limit_buckets(server: &TestServer) -> u64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // `notif_rate_limit_buckets{node="…"} N`
    text.lines()
        .filter(|line| line.starts_with("notif_rate_limit_buckets{"))
        .find_map(|line| line.rsplit_once(' '))
        .unwrap()
        .1
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_subscription_ids_mint_no_rate_limit_buckets() {
    const CLIENTS: u32 = 32;
    const REQUESTS: u32 = 10_000;
    let server = TestServer::start().await;
    let service = server.app_token("demo-app-service", "demo-secret").await;
    let before = rate_limit_buckets(&server).await;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (http, url, service) = (
            server.http.clone(),
            server.url("/me/notifications"),
            service.clone(),
        );
        clients.spawn(async move {
            let body = json!({"targetHostName": DEMO_HOST, "appNotificationId": "k", "payload": {"rawContent": "r"}});
            for index in (client..REQUESTS).step_by(CLIENTS as usize) {
                // Garbage, and well-formed ids of no subscription, in every spelling.
                let id = match index % 3 {
                    0 => format!("random-{index}"),
                    1 => format!("{{{:08x}-0000-7000-8000-{:012x}}}", index, index),
                    _ => format!("urn:uuid:{:08X}-0000-7000-8000-{:012X}", index, index),
                };
                let status = http.post(&url).bearer_auth(&service).header("x-uns-id", id).json(&body).send().await.unwrap().status();
                assert!(status.is_client_error(), "{status}");
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    let after = rate_limit_buckets(&server).await;
    assert!(after <= before + 1, "buckets {before} -> {after}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_subscription_id_spends_one_users_tokens() {
    let server = TestServer::start_configured(|config| {
        config.rate_limits.per_user_burst = 20.0;
        config.rate_limits.per_user_per_second = 0.001;
    })
    .await;
    let device = server.sign_in("demo-client", "bob").await;
    let subscription = server.subscribe(&device, "android", "bob-phone").await;
    let service = server.app_token("demo-app-service", "demo-secret").await;
    let plain = subscription.replace('-', "");
    let spellings = [
        subscription.clone(),
        subscription.to_uppercase(),
        plain.clone(),
        format!("{{{subscription}}}"),
        format!("urn:uuid:{subscription}"),
    ];
    let mut limited = 0;
    for index in 0..60 {
        let body = json!({"targetHostName": DEMO_HOST, "appNotificationId": format!("k{index}"), "payload": {"rawContent": "r"}});
        let response = server
            .http
            .post(server.url("/me/notifications"))
            .bearer_auth(&service)
            .header("x-uns-id", &spellings[index % spellings.len()])
            .json(&body)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            201 => {}
            429 => limited += 1,
            other => panic!("answered {other}"),
        }
    }
    assert!(
        limited >= 35,
        "only {limited} of 60 were limited with a burst of 20"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_secrets_stays_bounded_and_the_right_one_still_works() {
    let server = TestServer::start().await;
    let token_request = |secret: &str| {
        server.http.post(server.url("/oauth2/v2.0/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-app-service"),
            ("client_secret", secret),
        ])
    };
    // The service authenticated before the flood, as a running service has.
    assert_eq!(
        token_request("demo-secret").send().await.unwrap().status(),
        200
    );
    let before = notif_tests::peak_rss();
    let mut flood = tokio::task::JoinSet::new();
    for attempt in 0..256 {
        let request = token_request(&format!("wrong-{attempt}"));
        flood.spawn(async move { request.send().await.unwrap() });
    }
    let mut statuses = std::collections::BTreeMap::new();
    while let Some(response) = flood.join_next().await {
        let response = response.unwrap();
        let status = response.status().as_u16();
        if matches!(status, 429 | 503) {
            assert!(response.headers().contains_key("retry-after"), "{status}");
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(
        statuses
            .keys()
            .all(|status| matches!(status, 401 | 429 | 503)),
        "{statuses:?}"
    );
    // Five failures are free; the rest wait their turn and find the client slowed down.
    assert!(
        statuses.get(&401).copied().unwrap_or(0) <= 16,
        "{statuses:?}"
    );
    let growth = notif_tests::peak_rss().saturating_sub(before);
    assert!(
        growth < 200 * 1024 * 1024,
        "peak RSS grew by {growth} bytes"
    );
    let after = token_request("demo-secret").send().await.unwrap();
    assert_eq!(
        after.status(),
        200,
        "the right secret is refused after the flood"
    );
    server.stop().await;
}
