//! The cluster suite: two child notifd processes on one PostgreSQL (a schema of its own on
//! the tests' throw-away server), behind no load balancer — the clients spread their calls
//! over both nodes themselves.
//!
//! - a model check: creates, replaces, reads, deletes, subscribes and unsubscribes spread
//!   over both nodes at random, both nodes' listings, change replays and subscriptions checked
//!   against a model after every step;
//! - one node SIGKILLed under load ten times: every acknowledged create present and
//!   delivered, duplicates only with the same id and changeSeq;
//! - a watcher on one node receives every change written through the other, in order, with
//!   `NOTIFY` and by polling, and resumes on the other node from its cursor when its node is
//!   killed;
//! - a token issued by one node works on the other; a refresh token used on one is refused
//!   on the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use notif_delivery::P256Key;
use notif_delivery::sandbox::SandboxProviders;
use notif_grpc::pb;
use notif_grpc::pb::notifications_client::NotificationsClient;
use notif_store::contract::TestPostgres;
use notif_tests::DEMO_HOST;
use notif_tests::child::{free_port, spawn_notifd};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use tokio::process::Child;
use tokio_stream::StreamExt as _;

/// Far longer than any step takes: reaching it fails the test, it never paces it.
const PATIENCE: Duration = Duration::from_secs(30);
const KILLS: usize = 10;
const CLIENTS: usize = 4;

/// How changes cross the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Events {
    Notify,
    Polling,
}

struct Node {
    base: String,
    config: PathBuf,
    child: Option<Child>,
}

/// Two notifd processes on one database.
struct Cluster {
    _directory: tempfile::TempDir,
    nodes: Vec<Node>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(events: Events) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let url = TestPostgres::shared().fresh_url();
        let http = reqwest::Client::new();
        let mut nodes = Vec::new();
        for index in 0..2 {
            let port = free_port();
            let config = directory.path().join(format!("node{index}.toml"));
            std::fs::write(
                &config,
                format!(
                    "listen = \"127.0.0.1:{port}\"\n\
                     data_dir = \"{}\"\n\
                     public_url = \"http://notif-cluster.test\"\n\
                     node = \"node-{index}\"\n\
                     expiry_sweep_seconds = 3600\n\
                     [store]\nurl = \"{url}\"\nnotify = {}\npoll_interval_ms = 200\n\
                     [dispatcher]\nlease_seconds = 2\nrequest_timeout_ms = 500\n\
                     retry_initial_delay_ms = 50\nretry_max_delay_ms = 500\n\
                     [rate_limits]\nper_user_per_second = 100000.0\nper_user_burst = 100000.0\n",
                    directory.path().join(format!("data{index}")).display(),
                    events == Events::Notify,
                ),
            )
            .unwrap();
            nodes.push(Node {
                base: format!("http://127.0.0.1:{port}"),
                config,
                child: None,
            });
        }
        let mut cluster = Self {
            _directory: directory,
            nodes,
            http,
        };
        for index in 0..2 {
            cluster.restart(index).await;
        }
        cluster
    }

    fn base(&self, index: usize) -> &str {
        &self.nodes[index].base
    }

    async fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            child.kill().await.unwrap();
        }
    }

    async fn restart(&mut self, index: usize) {
        let node = &self.nodes[index];
        let child = spawn_notifd(&node.config, &node.base, &self.http).await;
        self.nodes[index].child = Some(child);
    }

    async fn sign_in(&self, index: usize, user: &str) -> String {
        notif_tests::dev_sign_in(&self.http, self.base(index), "demo-client", user).await
    }

    async fn create(&self, index: usize, token: &str, key: &str) -> Result<Value, u16> {
        let body = json!({
            "targetHostName": DEMO_HOST,
            "appNotificationId": key,
            "payload": {"rawContent": key},
        });
        let response = self
            .http
            .post(format!("{}/me/notifications", self.base(index)))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|_| 0u16)?;
        let status = response.status().as_u16();
        if status == 200 || status == 201 {
            Ok(response.json().await.unwrap())
        } else {
            Err(status)
        }
    }

    async fn call(
        &self,
        index: usize,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base(index)))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn grpc(&self, index: usize) -> NotificationsClient<tonic::transport::Channel> {
        let channel = tonic::transport::Channel::from_shared(self.base(index).to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        NotificationsClient::new(channel)
    }
}

fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn token_request(cluster: &Cluster, index: usize, form: &[(&str, &str)]) -> (u16, Value) {
    let response = cluster
        .http
        .post(format!("{}/oauth2/v2.0/token", cluster.base(index)))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_refresh_tokens_work_across_nodes() {
    let cluster = Cluster::start(Events::Notify).await;
    let on_a = cluster.sign_in(0, "alice").await;
    let (status, _) = cluster
        .call(1, reqwest::Method::GET, "/me/notifications", &on_a)
        .await;
    assert_eq!(status, 200, "a token node A issued works on node B");

    let (status, exchanged) = token_request(
        &cluster,
        0,
        &[
            ("grant_type", notif_auth::JWT_BEARER_GRANT),
            ("client_id", "demo-app-service"),
            ("client_secret", "demo-secret"),
            ("assertion", &on_a),
            ("requested_token_use", "on_behalf_of"),
            ("scope", "Notifications.ReadWrite.CreatedByApp"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{exchanged}");
    let refresh_token = exchanged["refresh_token"].as_str().unwrap().to_owned();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", "demo-app-service"),
        ("client_secret", "demo-secret"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let (status, refreshed) = token_request(&cluster, 0, &refresh).await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, replayed) = token_request(&cluster, 1, &refresh).await;
    assert_eq!(status, 400, "{replayed}");
    assert_eq!(replayed["error"], "invalid_grant");
    // The rotated token, issued on A, refreshes on B.
    let rotated = refreshed["refresh_token"].as_str().unwrap();
    let (status, _) = token_request(
        &cluster,
        1,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "demo-app-service"),
            ("client_secret", "demo-secret"),
            ("refresh_token", rotated),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

/// Node A writes; a watcher on node B gets every change in order; B is killed, and the
/// watcher resumes on A from its cursor, missing nothing.
async fn a_watcher_sees_every_change_across_nodes(events: Events) {
    let mut cluster = Cluster::start(events).await;
    let token = cluster.sign_in(0, "alice").await;
    let mut on_b = cluster.grpc(1).await;
    let mut watch = on_b
        .watch_changes(authorized(pb::WatchChangesRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    for number in 1..=10 {
        cluster
            .create(0, &token, &format!("n{number}"))
            .await
            .unwrap();
    }
    let mut cursor = 0;
    while cursor < 10 {
        let change = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .expect("a change written on A reached the watcher on B")
            .unwrap()
            .unwrap();
        assert_eq!(change.change_seq, cursor + 1, "in order, none missed");
        cursor = change.change_seq;
    }

    cluster.kill(1).await;
    for number in 11..=20 {
        cluster
            .create(0, &token, &format!("n{number}"))
            .await
            .unwrap();
    }
    let mut on_a = cluster.grpc(0).await;
    let mut resumed = on_a
        .watch_changes(authorized(
            pb::WatchChangesRequest {
                cursor,
                ..pb::WatchChangesRequest::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    while cursor < 20 {
        let change = tokio::time::timeout(PATIENCE, resumed.next())
            .await
            .expect("the resumed watcher got the changes made while it was away")
            .unwrap()
            .unwrap();
        assert_eq!(
            change.change_seq,
            cursor + 1,
            "resumed from its cursor, none missed"
        );
        cursor = change.change_seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_change_across_nodes_with_notify() {
    a_watcher_sees_every_change_across_nodes(Events::Notify).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_change_across_nodes_by_polling() {
    a_watcher_sees_every_change_across_nodes(Events::Polling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_nothing() {
    let mut cluster = Cluster::start(Events::Notify).await;
    let receiver = SandboxProviders::start().await.unwrap();
    let token = cluster.sign_in(0, "alice").await;
    // Two browsers, subscribed through different nodes: every create owes each a push.
    let browsers = ["cluster-browser-a", "cluster-browser-b"];
    for (index, browser) in browsers.iter().enumerate() {
        let P256Key {
            private_key,
            public_key,
        } = P256Key::generate();
        receiver.register_web_push_keys(browser, private_key, vec![5; 16]);
        let subscribed = cluster
            .http
            .post(format!("{}/me/notifications/subscriptions", cluster.base(index)))
            .bearer_auth(&token)
            .json(&json!({
                "platform": "webPush",
                "endpoint": receiver.web_push_endpoint(browser),
                "keys": {"p256dh": URL_SAFE_NO_PAD.encode(public_key), "auth": URL_SAFE_NO_PAD.encode([5u8; 16])},
            }))
            .send()
            .await
            .unwrap();
        assert!(subscribed.status().is_success());
    }

    let cluster_bases: Vec<String> = (0..2).map(|index| cluster.base(index).to_owned()).collect();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    for kill in 0..KILLS {
        let target = acknowledged.lock().unwrap().len() + 10 + kill * 3;
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let (http, bases, token, acknowledged) = (
                cluster.http.clone(),
                cluster_bases.clone(),
                token.clone(),
                Arc::clone(&acknowledged),
            );
            clients.push(tokio::spawn(async move {
                for number in 0.. {
                    if acknowledged.lock().unwrap().len() >= target {
                        return;
                    }
                    // Spread over both nodes; a node being killed refuses, the other serves.
                    let base = &bases[(client + number) % 2];
                    let body = json!({
                        "targetHostName": DEMO_HOST,
                        "appNotificationId": format!("kill{kill}-client{client}-n{number}"),
                        "payload": {"rawContent": "x"},
                    });
                    let Ok(response) = http
                        .post(format!("{base}/me/notifications"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        continue;
                    };
                    if response.status() == 201
                        && let Ok(created) = response.json::<Value>().await
                    {
                        acknowledged
                            .lock()
                            .unwrap()
                            .push(created["id"].as_str().unwrap().to_owned());
                    }
                }
            }));
        }
        let victim = kill % 2;
        let halfway = target - 5;
        let deadline = Instant::now() + PATIENCE;
        while acknowledged.lock().unwrap().len() < halfway {
            assert!(Instant::now() < deadline, "creates stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        cluster.kill(victim).await;
        for client in clients {
            client.await.unwrap();
        }
        cluster.restart(victim).await;
    }

    let acknowledged: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    let mut found = 0;
    for (number, id) in acknowledged.iter().enumerate() {
        let (status, _) = cluster
            .call(
                number % 2,
                reqwest::Method::GET,
                &format!("/me/notifications/{id}"),
                &token,
            )
            .await;
        assert_eq!(status, 200, "acknowledged create {id} lost");
        found += 1;
    }
    // Every create owes a push to each browser.
    let owed: Vec<(String, String)> = acknowledged
        .iter()
        .flat_map(|id| {
            browsers
                .iter()
                .map(move |browser| (format!("/push/{browser}"), id.clone()))
        })
        .collect();
    let duplicates =
        notif_tests::await_owed_pushes(&receiver, &owed, Duration::from_secs(120)).await;
    eprintln!(
        "cluster suite: {KILLS} SIGKILLs over 2 nodes, {} acknowledged, {found} found, {} of {} owed pushes delivered (2 browsers), {duplicates} duplicate deliveries",
        acknowledged.len(),
        owed.len(),
        owed.len(),
    );
}

/// One step of the model check, through node `node`.
#[derive(Debug, Clone)]
enum Step {
    Create { key: u8, node: usize },
    Read { key: u8, node: usize },
    Delete { key: u8, node: usize },
    Subscribe { device: u8, node: usize },
    Unsubscribe { device: u8, node: usize },
}

fn step() -> impl Strategy<Value = Step> {
    (0..5u8, 0..2usize, 0..3u8).prop_map(|(kind, node, key)| match kind {
        0 => Step::Create { key, node },
        1 => Step::Read { key, node },
        2 => Step::Delete { key, node },
        3 => Step::Subscribe { device: key, node },
        _ => Step::Unsubscribe { device: key, node },
    })
}

/// What the feed should hold — each live key's id and read state — and the user's devices
/// with their subscription ids.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<String, (String, bool)>,
    devices: BTreeMap<u8, String>,
}

impl Model {
    /// Each live key's read state.
    fn read_states(&self) -> BTreeMap<String, bool> {
        self.live
            .iter()
            .map(|(key, (_, read))| (key.clone(), *read))
            .collect()
    }
}

async fn apply(cluster: &Cluster, user: &str, token: &str, model: &mut Model, step: &Step) {
    match step {
        Step::Subscribe { device, node } => {
            let response = cluster
                .http
                .post(format!("{}/me/notifications/subscriptions", cluster.base(*node)))
                .bearer_auth(token)
                .json(&json!({"platform": "android", "registrationToken": format!("{user}-device{device}")}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            let subscribed: Value = response.json().await.unwrap();
            let id = subscribed["id"].as_str().unwrap().to_owned();
            if let Some(known) = model.devices.get(device) {
                assert_eq!(&id, known, "subscribing again renews, keeping the id");
            }
            model.devices.insert(*device, id);
        }
        Step::Unsubscribe { device, node } => {
            let Some(id) = model.devices.remove(device) else {
                return;
            };
            let (status, _) = cluster
                .call(
                    *node,
                    reqwest::Method::DELETE,
                    &format!("/me/notifications/subscriptions/{id}"),
                    token,
                )
                .await;
            assert_eq!(status, 204);
        }
        Step::Create { key, node } => {
            let key = format!("k{key}");
            let created = cluster.create(*node, token, &key).await.unwrap();
            let id = created["id"].as_str().unwrap().to_owned();
            if let Some((kept, _)) = model.live.get(&key) {
                assert_eq!(&id, kept, "a replace keeps the id");
            }
            // A replace resets the read state.
            model.live.insert(key, (id, false));
        }
        Step::Read { key, node } => {
            // Only a live notification is read: its id is the model's.
            let Some((id, read)) = model.live.get_mut(&format!("k{key}")) else {
                return;
            };
            let response = cluster
                .http
                .patch(format!("{}/me/notifications/{id}", cluster.base(*node)))
                .bearer_auth(token)
                .json(&json!({"readState": "read"}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            *read = true;
        }
        Step::Delete { key, node } => {
            let key = format!("k{key}");
            let response = cluster
                .http
                .delete(format!(
                    "{}/me/notifications?appNotificationId={key}",
                    cluster.base(*node)
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            match model.live.remove(&key) {
                Some(_) => assert!(response.status().is_success(), "{}", response.status()),
                None => assert_eq!(response.status(), 404),
            }
        }
    }
}

/// Both nodes list what the model holds, and replaying the change log converges to it.
async fn check(cluster: &Cluster, token: &str, model: &Model) {
    for node in 0..2 {
        let (status, page) = cluster
            .call(node, reqwest::Method::GET, "/me/notifications", token)
            .await;
        assert_eq!(status, 200);
        let listed: BTreeMap<String, bool> = page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|notification| {
                (
                    notification["appNotificationId"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    notification["readState"] == "read",
                )
            })
            .collect();
        assert_eq!(listed, model.read_states(), "node {node}'s listing");
        let (status, changes) = cluster
            .call(
                node,
                reqwest::Method::GET,
                "/me/notifications/changes",
                token,
            )
            .await;
        assert_eq!(status, 200);
        let mut replayed: BTreeMap<String, bool> = BTreeMap::new();
        for change in changes["value"].as_array().unwrap() {
            let key = change["appNotificationId"].as_str().unwrap().to_owned();
            if change["status"] == "deleted" {
                replayed.remove(&key);
            } else {
                replayed.insert(key, change["readState"] == "read");
            }
        }
        assert_eq!(replayed, model.read_states(), "node {node}'s change replay");
        let (status, subscriptions) = cluster
            .call(
                node,
                reqwest::Method::GET,
                "/me/notifications/subscriptions",
                token,
            )
            .await;
        assert_eq!(status, 200);
        let listed: BTreeSet<String> = subscriptions["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|subscription| subscription["id"].as_str().unwrap().to_owned())
            .collect();
        let expected: BTreeSet<String> = model.devices.values().cloned().collect();
        assert_eq!(listed, expected, "node {node}'s subscriptions");
    }
}

#[test]
fn the_cluster_agrees_with_the_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = runtime.block_on(Cluster::start(Events::Notify));
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&proptest::collection::vec(step(), 1..25), |steps| {
            // A user of its own per case: the cases share the cluster.
            let user = format!(
                "user{}",
                case.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            runtime.block_on(async {
                let token = cluster.sign_in(0, &user).await;
                let mut model = Model::default();
                for step in &steps {
                    apply(&cluster, &user, &token, &mut model, step).await;
                    check(&cluster, &token, &model).await;
                }
            });
            Ok(())
        })
        .unwrap();
    drop(cluster);
}
