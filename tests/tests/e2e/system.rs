//! The system state machine: random operations by three principals (two users of one app, one
//! user of another) over HTTP and gRPC, with server restarts on the same data directory and a clock moved past expirations,
//! checked after every step against a reference model — answers, listings (tombstones
//! included), change replay — and, at the end, every push belongs to the right user and never
//! goes backwards in changeSeq per (device, notification).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use notif_core::ports::Clock as _;
use notif_core::testing::FixedClock;
use notif_core::time::Timestamp;
use notif_delivery::SystemClock;

use notif_grpc::pb;
use notif_tests::{DEMO_HOST, OTHER_HOST, TestServer, TestStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const ACTORS: [(&str, &str, &str); 3] = [
    ("demo-client", "alice", DEMO_HOST),
    ("demo-client", "bob", DEMO_HOST),
    ("other-client", "alice", OTHER_HOST),
];

#[derive(Debug, Clone)]
enum Op {
    Create {
        actor: usize,
        key: u8,
        group: u8,
        grpc: bool,
    },
    Read {
        actor: usize,
        key: u8,
    },
    Dismiss {
        actor: usize,
        key: u8,
    },
    DeleteKey {
        actor: usize,
        key: u8,
        by_id: bool,
    },
    DeleteGroup {
        actor: usize,
        group: u8,
    },
    Subscribe {
        actor: usize,
        device: u8,
    },
    Unsubscribe {
        actor: usize,
        device: u8,
    },
    Restart,
    /// Moves the clock forward; notifications live 7 days.
    Advance {
        days: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let actor = 0..ACTORS.len();
    prop_oneof![
        5 => (actor.clone(), 0u8..3, 0u8..2, any::<bool>()).prop_map(|(actor, key, group, grpc)| Op::Create { actor, key, group, grpc }),
        2 => (actor.clone(), 0u8..3).prop_map(|(actor, key)| Op::Read { actor, key }),
        1 => (actor.clone(), 0u8..3).prop_map(|(actor, key)| Op::Dismiss { actor, key }),
        2 => (actor.clone(), 0u8..3, any::<bool>()).prop_map(|(actor, key, by_id)| Op::DeleteKey { actor, key, by_id }),
        1 => (actor.clone(), 0u8..2).prop_map(|(actor, group)| Op::DeleteGroup { actor, group }),
        2 => (actor.clone(), 0u8..2).prop_map(|(actor, device)| Op::Subscribe { actor, device }),
        1 => (actor, 0u8..2).prop_map(|(actor, device)| Op::Unsubscribe { actor, device }),
        1 => Just(Op::Restart),
        1 => (1u8..9).prop_map(|days| Op::Advance { days }),
    ]
}

/// An app notification id of key `key`: plain; every printable ASCII character, 256 of
/// them; or letters beyond ASCII.
fn key_name(key: u8) -> String {
    match key {
        0 => "k0".into(),
        1 => (' '..='~').cycle().skip(1).take(256).collect(),
        _ => "k2 é中文😀 #&%+/?=".into(),
    }
}

/// A group name of group `group`, one of them needing percent-encoding in a query.
fn group_name(group: u8) -> String {
    match group {
        0 => "g0".into(),
        _ => "g1 a+b#c%41&d".into(),
    }
}

/// The content a create sends beside its raw payload.
#[derive(Debug, Clone, Default)]
struct Content {
    title: Option<String>,
    body: Option<String>,
    expiration: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    id: String,
    key: u8,
    group: u8,
    deleted: bool,
    read: bool,
    action: &'static str,
    seq: u64,
    expiration: Timestamp,
}

/// What a client observes of a notification: id, deleted, read, user action, change number.
type State = (String, bool, bool, String, u64);

impl Entry {
    /// What the service should show of this entry.
    fn state(&self) -> State {
        (
            self.id.clone(),
            self.deleted,
            self.read,
            self.action.to_owned(),
            self.seq,
        )
    }
}

#[derive(Debug, Default)]
struct Model {
    entries: Vec<Vec<Entry>>,
    seq: Vec<u64>,
    subscriptions: Vec<BTreeMap<u8, String>>,
    /// Every id each principal ever created, expired ones included (their pushes may still
    /// arrive).
    created: Vec<std::collections::BTreeSet<String>>,
}

impl Model {
    fn new() -> Self {
        Self {
            entries: vec![Vec::new(); ACTORS.len()],
            seq: vec![0; ACTORS.len()],
            subscriptions: vec![BTreeMap::new(); ACTORS.len()],
            created: vec![std::collections::BTreeSet::new(); ACTORS.len()],
        }
    }

    fn live(&mut self, actor: usize, key: u8) -> Option<&mut Entry> {
        self.entries[actor]
            .iter_mut()
            .find(|entry| entry.key == key && !entry.deleted)
    }

    /// At expiration a notification leaves the feed entirely, tombstones included.
    fn expire(&mut self, now: Timestamp) {
        for entries in &mut self.entries {
            entries.retain(|entry| entry.expiration > now);
        }
    }

    fn next_seq(&mut self, actor: usize) -> u64 {
        self.seq[actor] += 1;
        self.seq[actor]
    }
}

struct World {
    server: Option<TestServer>,
    tokens: Vec<String>,
    model: Model,
    clock: Arc<FixedClock>,
    /// Days advanced so far; kept under the 30-day subscription lifetime.
    advanced: u32,
}

fn state_of(value: &Value) -> State {
    (
        value["id"].as_str().unwrap_or_default().to_owned(),
        value["status"] == "deleted",
        value["readState"] == "read",
        value["userActionState"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        value["changeSeq"].as_u64().unwrap_or_default(),
    )
}

impl World {
    fn server(&self) -> &TestServer {
        self.server.as_ref().unwrap()
    }

    async fn request(
        &self,
        actor: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.server()
            .call(method, path, &self.tokens[actor], body.as_ref())
            .await
    }

    /// The states of the notifications a collection GET at `path` returns, in its order.
    async fn observed(&self, actor: usize, path: &str) -> Vec<State> {
        let (_, page) = self.request(actor, reqwest::Method::GET, path, None).await;
        page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(state_of)
            .collect()
    }

    /// What a create of `key` sends: key 0 a raw notification with the default expiration;
    /// keys 1 and 2 visual ones at the limits (a 256-character title; a 4,096-character body
    /// or none) that expire in 30 days less a minute.
    fn content(&self, key: u8) -> Content {
        if key == 0 {
            return Content::default();
        }
        let millis = self
            .clock
            .now()
            .saturating_add(Duration::from_secs(30 * 86_400 - 60))
            .unix_millis();
        let title: String = "Ünïcödé & <tags> \"quoted\" 😀 "
            .chars()
            .cycle()
            .take(256)
            .collect();
        let body: String = "A body & <b>bold</b>, \"quotes\", é, 中文, 😀.\n"
            .chars()
            .cycle()
            .take(4096)
            .collect();
        Content {
            title: Some(title),
            body: (key == 1).then_some(body),
            expiration: Some(Timestamp::from_unix_millis(millis - millis % 1000)),
        }
    }

    async fn create(&mut self, actor: usize, key: u8, group: u8, grpc: bool) {
        let host = ACTORS[actor].2;
        let content = self.content(key);
        let (id, replaced) = if grpc {
            let (mut client, _) = self.server().grpc().await;
            let content = content.clone();
            let mut request = tonic::Request::new(pb::CreateNotificationRequest {
                target_host_name: host.into(),
                app_notification_id: key_name(key),
                group_name: Some(group_name(group)),
                raw_content: Some("r".into()),
                visual_content: content.title.map(|title| pb::VisualContent {
                    title,
                    body: content.body,
                }),
                expiration: content.expiration.map(|at| prost_types::Timestamp {
                    seconds: at.unix_millis() / 1000,
                    nanos: 0,
                }),
                ..Default::default()
            });
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", self.tokens[actor]).parse().unwrap(),
            );
            let created = client
                .create_notification(request)
                .await
                .unwrap()
                .into_inner();
            (created.notification.unwrap().id, created.replaced)
        } else {
            let content = content.clone();
            let mut body = json!({"targetHostName": host, "appNotificationId": key_name(key), "groupName": group_name(group), "payload": {"rawContent": "r"}});
            if let Some(title) = content.title {
                body["payload"]["visualContent"] = json!({"title": title, "body": content.body});
            }
            if let Some(at) = content.expiration {
                body["expirationDateTime"] = json!(at.to_rfc3339());
            }
            let (status, created) = self
                .request(
                    actor,
                    reqwest::Method::POST,
                    "/me/notifications",
                    Some(body),
                )
                .await;
            assert!(
                status == 200 || status == 201,
                "create answered {status}: {created}"
            );
            (created["id"].as_str().unwrap().to_owned(), status == 200)
        };
        let seq = self.model.next_seq(actor);
        let expiration = content.expiration.unwrap_or_else(|| {
            self.clock
                .now()
                .saturating_add(Duration::from_secs(7 * 86_400))
        });
        match self.model.live(actor, key) {
            Some(entry) => {
                assert!(replaced, "a live k{key} exists: must replace");
                assert_eq!(entry.id, id, "a replace keeps the id");
                *entry = Entry {
                    group,
                    read: false,
                    action: "noInteraction",
                    seq,
                    expiration,
                    ..entry.clone()
                };
            }
            None => {
                assert!(!replaced);
                assert!(
                    self.model.entries[actor].iter().all(|entry| entry.id != id),
                    "a new create gets a new id"
                );
                self.model.created[actor].insert(id.clone());
                self.model.entries[actor].push(Entry {
                    id,
                    key,
                    group,
                    deleted: false,
                    read: false,
                    action: "noInteraction",
                    seq,
                    expiration,
                });
            }
        }
    }

    async fn change_state(&mut self, actor: usize, key: u8, body: Value, apply: fn(&mut Entry)) {
        let id = self.model.live(actor, key).map(|entry| entry.id.clone());
        let target = id
            .clone()
            .unwrap_or_else(|| "01900000-0000-7000-8000-000000000000".into());
        let (status, _) = self
            .request(
                actor,
                reqwest::Method::PATCH,
                &format!("/me/notifications/{target}"),
                Some(body),
            )
            .await;
        match id {
            Some(_) => {
                assert_eq!(status, 200);
                let entry = self.model.live(actor, key).unwrap();
                let before = entry.clone();
                apply(entry);
                // A state it already has is no change: no change number, no push.
                if *entry != before {
                    let seq = self.model.next_seq(actor);
                    self.model.live(actor, key).unwrap().seq = seq;
                }
            }
            None => assert_eq!(status, 404),
        }
    }

    async fn apply(&mut self, op: &Op) {
        match *op {
            Op::Create {
                actor,
                key,
                group,
                grpc,
            } => self.create(actor, key, group, grpc).await,
            Op::Read { actor, key } => {
                self.change_state(actor, key, json!({"readState": "read"}), |entry| {
                    entry.read = true
                })
                .await;
            }
            Op::Dismiss { actor, key } => {
                self.change_state(
                    actor,
                    key,
                    json!({"userActionState": "dismissed"}),
                    |entry| entry.action = "dismissed",
                )
                .await;
            }
            Op::DeleteKey { actor, key, by_id } => {
                let path = if by_id {
                    let id = self.model.live(actor, key).map_or_else(
                        || "01900000-0000-7000-8000-000000000002".to_owned(),
                        |entry| entry.id.clone(),
                    );
                    format!("/me/notifications/{id}")
                } else {
                    format!(
                        "/me/notifications?appNotificationId={}",
                        url::form_urlencoded::byte_serialize(key_name(key).as_bytes())
                            .collect::<String>()
                    )
                };
                let (status, _) = self
                    .request(actor, reqwest::Method::DELETE, &path, None)
                    .await;
                if self.model.live(actor, key).is_some() {
                    assert_eq!(status, 204);
                    let seq = self.model.next_seq(actor);
                    let entry = self.model.live(actor, key).unwrap();
                    entry.deleted = true;
                    entry.seq = seq;
                } else {
                    assert_eq!(status, 404);
                }
            }
            Op::DeleteGroup { actor, group } => {
                let (status, _) = self
                    .request(
                        actor,
                        reqwest::Method::DELETE,
                        &format!(
                            "/me/notifications?groupName={}",
                            url::form_urlencoded::byte_serialize(group_name(group).as_bytes())
                                .collect::<String>()
                        ),
                        None,
                    )
                    .await;
                let mut members: Vec<usize> = (0..self.model.entries[actor].len())
                    .filter(|&index| {
                        let entry = &self.model.entries[actor][index];
                        entry.group == group && !entry.deleted
                    })
                    .collect();
                members.sort_by(|a, b| {
                    self.model.entries[actor][*a]
                        .id
                        .cmp(&self.model.entries[actor][*b].id)
                });
                if members.is_empty() {
                    assert_eq!(status, 404);
                }
                for index in members {
                    assert_eq!(status, 204);
                    let seq = self.model.next_seq(actor);
                    let entry = &mut self.model.entries[actor][index];
                    entry.deleted = true;
                    entry.seq = seq;
                }
            }
            Op::Subscribe { actor, device } => {
                let body = json!({"platform": "android", "registrationToken": format!("sys-{actor}-{device}")});
                let (status, subscribed) = self
                    .request(
                        actor,
                        reqwest::Method::POST,
                        "/me/notifications/subscriptions",
                        Some(body),
                    )
                    .await;
                let id = subscribed["id"].as_str().unwrap().to_owned();
                match self.model.subscriptions[actor].get(&device) {
                    Some(existing) => {
                        assert_eq!(status, 200);
                        assert_eq!(existing, &id, "renewal keeps the id");
                    }
                    None => {
                        assert_eq!(status, 201);
                        self.model.subscriptions[actor].insert(device, id);
                    }
                }
            }
            Op::Unsubscribe { actor, device } => {
                let id = self.model.subscriptions[actor].remove(&device);
                let target = id
                    .clone()
                    .unwrap_or_else(|| "01900000-0000-7000-8000-000000000001".into());
                let (status, _) = self
                    .request(
                        actor,
                        reqwest::Method::DELETE,
                        &format!("/me/notifications/subscriptions/{target}"),
                        None,
                    )
                    .await;
                assert_eq!(status, if id.is_some() { 204 } else { 404 });
            }
            Op::Restart => {
                let server = self.server.take().unwrap();
                self.server = Some(server.restart().await);
            }
            Op::Advance { days } => {
                if self.advanced + u32::from(days) < 30 {
                    self.advanced += u32::from(days);
                    self.clock
                        .advance(Duration::from_secs(u64::from(days) * 86_400));
                    self.model.expire(self.clock.now());
                }
            }
        }
    }

    async fn check(&self) {
        for actor in 0..ACTORS.len() {
            for entry in &self.model.entries[actor] {
                let (status, fetched) = self
                    .request(
                        actor,
                        reqwest::Method::GET,
                        &format!("/me/notifications/{}", entry.id),
                        None,
                    )
                    .await;
                if entry.deleted {
                    // Gone for Graph clients; the change log below still shows the tombstone.
                    assert_eq!(status, 404, "get of deleted {} of actor {actor}", entry.id);
                    continue;
                }
                assert_eq!(status, 200, "get {} of actor {actor}", entry.id);
                assert_eq!(state_of(&fetched), entry.state(), "get of actor {actor}");
            }
            let middle = self.model.seq[actor] / 2;
            let mut expected_tail: Vec<_> = self.model.entries[actor]
                .iter()
                .filter(|entry| entry.seq > middle)
                .map(Entry::state)
                .collect();
            expected_tail.sort_by_key(|entry| entry.4);
            let tail = self
                .observed(
                    actor,
                    &format!("/me/notifications/changes?cursor={middle}&limit=1000"),
                )
                .await;
            assert_eq!(
                tail, expected_tail,
                "changes of actor {actor} after {middle}"
            );
            let observed = self
                .observed(actor, "/me/notifications?status=all&$top=1000")
                .await;
            let mut expected: Vec<_> = self.model.entries[actor].iter().map(Entry::state).collect();
            expected.sort_by(|a, b| b.0.cmp(&a.0));
            assert_eq!(observed, expected, "the listing of actor {actor}");

            let replayed = self
                .observed(actor, "/me/notifications/changes?cursor=0&limit=1000")
                .await;
            let mut by_seq = expected.clone();
            by_seq.sort_by_key(|entry| entry.4);
            assert_eq!(replayed, by_seq, "the change replay of actor {actor}");

            let (_, subscriptions) = self
                .request(
                    actor,
                    reqwest::Method::GET,
                    "/me/notifications/subscriptions",
                    None,
                )
                .await;
            let mut ids: Vec<String> = subscriptions["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            let mut expected_ids: Vec<String> =
                self.model.subscriptions[actor].values().cloned().collect();
            expected_ids.sort();
            assert_eq!(ids, expected_ids, "the subscriptions of actor {actor}");
        }
    }

    fn check_pushes(&self) {
        let refusals = self.server().sandbox.refusals();
        assert!(
            refusals.is_empty(),
            "the providers refused pushes: {refusals:?}"
        );
        let mut last_seq: BTreeMap<(String, String), u64> = BTreeMap::new();
        for push in self.server().sandbox.pushes() {
            let message: Value = serde_json::from_slice(&push.body).unwrap();
            let token = message["message"]["token"].as_str().unwrap().to_owned();
            let actor: usize = token.split('-').nth(1).unwrap().parse().unwrap();
            let envelope = push.envelope.unwrap();
            let id = envelope["id"].as_str().unwrap().to_owned();
            assert!(
                self.model.created[actor].contains(&id),
                "a push of another principal's notification reached {token}"
            );
            let seq = envelope["changeSeq"].as_u64().unwrap();
            let previous = last_seq
                .insert((token.clone(), id.clone()), seq)
                .unwrap_or(0);
            assert!(
                seq >= previous,
                "changeSeq went backwards at {token} for {id}: {previous} then {seq}"
            );
        }
    }
}

#[test]
fn the_system_agrees_with_the_model_on_sled() {
    the_system_agrees_with_the_model(TestStore::Sled);
}

#[test]
fn the_system_agrees_with_the_model_on_postgres() {
    the_system_agrees_with_the_model(TestStore::Postgres);
}

fn the_system_agrees_with_the_model(store: TestStore) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..30), |ops| {
            runtime.block_on(async {
                let clock = Arc::new(FixedClock::new(SystemClock.now()));
                let data_dir = tempfile::tempdir().unwrap();
                let config = notif_tests::test_config_on(data_dir.path(), store);
                let server =
                    TestServer::start_with_clock(config, data_dir, Some(clock.clone())).await;
                let mut tokens = Vec::new();
                for (client, user, _) in ACTORS {
                    tokens.push(server.sign_in(client, user).await);
                }
                let mut world = World {
                    server: Some(server),
                    tokens,
                    model: Model::new(),
                    clock,
                    advanced: 0,
                };
                for op in &ops {
                    world.apply(op).await;
                    world.check().await;
                }
                world.check_pushes();
                world.server.take().unwrap().stop().await;
            });
            Ok(())
        })
        .unwrap();
}
