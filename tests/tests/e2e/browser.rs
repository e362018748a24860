//! The web inbox in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver) against the demo page `/dev/inbox`. The page shows the feed; a notification
//! created over gRPC appears without a reload; "Mark read" moves the unread count and the
//! user's other device receives the state push; a reload resumes from the page's cursor. A
//! screenshot goes to `target/notif-test-output/inbox.png`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use notif_grpc::pb;
use notif_tests::TestServer;
use serde_json::{Value, json};

/// Far longer than any step takes: reaching it fails the test, it never paces it.
const PATIENCE: Duration = Duration::from_secs(30);

const INSTALL: &str = "the browser test needs Debian's Chromium and its WebDriver: \
    `apt-get install -y chromium chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver)";

/// A chromedriver and one headless Chromium session.
struct Browser {
    driver: tokio::process::Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: {INSTALL}"
            );
        }
        let port = notif_tests::child::free_port();
        let driver = tokio::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(INSTALL);
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--window-size=900,640",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        Self {
            driver,
            http,
            session: format!("{base}/session/{session}"),
            _profile: profile,
        }
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let answer: Value = self
            .http
            .post(format!("{}{path}", self.session))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer["value"].get("error").is_none(), "{path}: {answer}");
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command("/url", json!({"url": url})).await;
    }

    async fn run(&self, script: &str) -> Value {
        self.command("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits until `script` returns `expected`.
    async fn until(&self, what: &str, script: &str, expected: Value) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let seen = self.run(script).await;
            if seen == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still {seen}, not {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn click(&self, css: &str) {
        let element = self
            .command("/element", json!({"using": "css selector", "value": css}))
            .await;
        let id = element
            .as_object()
            .and_then(|object| object.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        self.command(&format!("/element/{id}/click"), json!({}))
            .await;
    }

    async fn screenshot(&self, path: &std::path::Path) {
        let answer: Value = self
            .http
            .get(format!("{}/screenshot", self.session))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let png = STANDARD.decode(answer["value"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    async fn close(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill().await;
    }
}

const COUNT: &str =
    "return document.querySelector('notif-inbox .unread-count')?.textContent ?? null";
const KEYS: &str = "return [...document.querySelectorAll('notif-inbox li.notification')]\
    .map(item => item.dataset.key)";

fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("notif-test-output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_follows_the_feed_in_a_real_browser() {
    let server = TestServer::start().await;
    let device = server.sign_in("demo-client", "alice").await;
    let service = server
        .on_behalf_of("demo-app-service", "demo-secret", &device)
        .await;
    // Alice's phone: it receives the state push when the browser marks a notification read.
    server.subscribe(&device, "android", "alice-phone").await;
    let (mut notifications, _) = server.grpc().await;
    let create = |key: &str, title: &str| {
        let mut request = tonic::Request::new(pb::CreateNotificationRequest {
            target_host_name: notif_tests::DEMO_HOST.into(),
            app_notification_id: key.into(),
            visual_content: Some(pb::VisualContent {
                title: title.into(),
                body: Some("from notif, over gRPC".into()),
            }),
            ..pb::CreateNotificationRequest::default()
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {service}").parse().unwrap(),
        );
        request
    };
    notifications
        .create_notification(create("welcome", "Welcome to notif"))
        .await
        .unwrap();

    let browser = Browser::start().await;
    browser.open(&server.url("/dev/inbox?user=alice")).await;
    browser
        .until("the feed is shown", KEYS, json!(["welcome"]))
        .await;
    browser.until("one unread", COUNT, json!("1")).await;

    notifications
        .create_notification(create("live", "Arrived without a reload"))
        .await
        .unwrap();
    browser
        .until(
            "the new notification appears live",
            KEYS,
            json!(["live", "welcome"]),
        )
        .await;
    browser.until("two unread", COUNT, json!("2")).await;

    browser
        .click("notif-inbox li[data-key='welcome'] button.mark-read")
        .await;
    browser
        .until("one unread after the click", COUNT, json!("1"))
        .await;
    // The phone receives the read state: a push carrying the change after the two creates.
    server
        .pushes_until(PATIENCE, |pushes| {
            pushes.iter().any(|push| {
                push.envelope.as_ref().is_some_and(|envelope| {
                    envelope["appNotificationId"] == "welcome" && envelope["changeSeq"] == 3
                })
            })
        })
        .await;
    let cursor = browser
        .run("return sessionStorage.getItem('notif-inbox-cursor')")
        .await;
    assert_eq!(cursor, json!("3"), "the page keeps its cursor");

    browser.screenshot(&output_dir().join("inbox.png")).await;

    // A change while the page reloads: the reloaded page resumes from its cursor.
    browser.command("/refresh", json!({})).await;
    notifications
        .create_notification(create("after-reload", "Written during the reload"))
        .await
        .unwrap();
    browser
        .until(
            "the reloaded page shows every notification",
            KEYS,
            json!(["after-reload", "live", "welcome"]),
        )
        .await;
    browser
        .until("two unread after the reload", COUNT, json!("2"))
        .await;
    browser.close().await;
    server.stop().await;
}
