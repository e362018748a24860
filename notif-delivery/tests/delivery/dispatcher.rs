//! The dispatcher over a real store and the sandbox: delivery despite random failures with
//! Retry-After honoured, the concurrency bound, pruning only on gone signals, and draining.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notif_core::app::{App, Principal, SCOPE_CREATED_BY_APP};
use notif_core::delivery::{DeliveryState, RetryPolicy};
use notif_core::ids::{AppId, ClientId, HostName, UserId};
use notif_core::notification::Limits;
use notif_core::platform::Platform;
use notif_core::ports::FeedEvents as _;
use notif_core::ports::{AppRegistry, NotificationStore};
use notif_core::service::{Caller, NotifService, Ports};
use notif_core::subscription::ChannelPolicy;
use notif_core::testing::SequentialIds;
use notif_delivery::sandbox::{Chaos, FakeResponse};
use notif_delivery::{Dispatcher, DispatcherConfig, Gateways, SystemClock};
use notif_store::{LocalEvents, MemoryStore};
use tokio::sync::oneshot;

use crate::fixtures::{HOST, Sandbox, visual_draft};

#[derive(Debug)]
struct DemoApp(App);

impl AppRegistry for DemoApp {
    fn app_for_client(&self, client: &ClientId) -> Option<App> {
        self.0.client_ids.contains(client).then(|| self.0.clone())
    }
}

struct Harness {
    sandbox: Sandbox,
    store: Arc<MemoryStore>,
    events: Arc<LocalEvents>,
    service: NotifService,
    alice: Principal,
}

impl Harness {
    async fn start() -> Self {
        let store = Arc::new(MemoryStore::new());
        let events = LocalEvents::new();
        let app = App {
            id: AppId::new("demo").unwrap(),
            host_name: HostName::new(HOST).unwrap(),
            display_name: "demo".into(),
            client_ids: [ClientId::new("demo-client").unwrap()].into(),
            credentials: vec![],
        };
        let ports = Ports {
            notifications: store.clone(),
            subscriptions: store.clone(),
            apps: Arc::new(DemoApp(app)),
            clock: Arc::new(SystemClock),
            ids: Arc::new(SequentialIds::new()),
            events: events.clone(),
        };
        let policy = ChannelPolicy {
            allow_loopback: true,
            ..ChannelPolicy::default()
        };
        Self {
            sandbox: Sandbox::start().await,
            store,
            events,
            service: NotifService::new(ports, Limits::default(), policy),
            alice: Principal {
                user: Some(UserId::new("alice").unwrap()),
                client_id: ClientId::new("demo-client").unwrap(),
                scopes: [SCOPE_CREATED_BY_APP.to_owned()].into(),
                roles: Default::default(),
            },
        }
    }

    fn caller(&self) -> Caller<'_> {
        Caller {
            principal: &self.alice,
            subscription_id: None,
        }
    }

    async fn subscribe(&self, platform: Platform, device: u32) {
        self.service
            .subscribe(self.caller(), self.sandbox.channel(platform, device))
            .await
            .unwrap();
    }

    fn dispatcher(&self, concurrency: usize) -> Dispatcher {
        let demo = || [AppId::new("demo").unwrap()];
        let mut gateways = Gateways::new();
        for platform in Platform::ALL {
            gateways.add(demo(), self.sandbox.gateway(platform), concurrency);
        }
        let config = DispatcherConfig {
            lease: Duration::from_secs(5),
            retry: RetryPolicy {
                initial_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(300),
                ..RetryPolicy::default()
            },
            max_idle: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(5),
            ..DispatcherConfig::default()
        };
        Dispatcher::new(
            self.store.clone(),
            gateways,
            Arc::new(SystemClock),
            config,
            self.events.watch_jobs(),
        )
    }

    /// Creates `count` notifications, returning their ids; the service's events wake the
    /// dispatcher.
    async fn create(&self, count: usize) -> Vec<notif_core::ids::NotificationId> {
        let mut ids = Vec::new();
        for index in 0..count {
            let created = self
                .service
                .create(self.caller(), visual_draft(&format!("n{index}")))
                .await
                .unwrap();
            ids.push(created.notification.id);
        }
        ids
    }

    async fn states(&self, ids: &[notif_core::ids::NotificationId]) -> Vec<DeliveryState> {
        let mut states = Vec::new();
        for id in ids {
            let feed = notif_core::notification::FeedKey {
                app: AppId::new("demo").unwrap(),
                user: UserId::new("alice").unwrap(),
            };
            states.extend(
                self.store
                    .delivery_status(&feed, *id)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.state),
            );
        }
        states
    }
}

/// Waits until `condition` holds, checking every few milliseconds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_delivered(states: &[DeliveryState], expected: usize) -> bool {
    states.len() == expected
        && states
            .iter()
            .all(|state| matches!(state, DeliveryState::Delivered { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_arrives_despite_random_failures() {
    let harness = Harness::start().await;
    for (device, platform) in Platform::ALL.into_iter().enumerate() {
        harness
            .subscribe(platform, u32::try_from(device).unwrap())
            .await;
    }
    harness.sandbox.providers.set_chaos(Some(Chaos {
        failure_rate: 0.3,
        hang: Duration::from_secs(1),
        seed: 7,
    }));
    let dispatcher = harness.dispatcher(16);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    let ids = harness.create(15).await;
    eventually(Duration::from_secs(60), || async {
        all_delivered(&harness.states(&ids).await, 60)
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap();

    let subscriptions = harness
        .service
        .subscriptions(harness.caller())
        .await
        .unwrap();
    assert_eq!(
        subscriptions.len(),
        4,
        "no failure of the chaos kind prunes a subscription"
    );
    let pushes = harness.sandbox.providers.pushes();
    let failures = pushes
        .iter()
        .filter(|push| push.answered != FakeResponse::Accept)
        .count();
    assert!(
        failures > 5,
        "the chaos injected failures ({failures} of {})",
        pushes.len()
    );
    let retries = harness.sandbox.providers.throttled_retries();
    assert!(!retries.is_empty(), "some pushes were throttled");
    for (asked, waited) in retries {
        // Timestamps are milliseconds: allow for rounding.
        assert!(
            waited + Duration::from_millis(10) >= asked,
            "asked {asked:?}, retried after {waited:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_never_exceeds_the_bound() {
    let harness = Harness::start().await;
    harness.subscribe(Platform::Android, 1).await;
    harness.sandbox.providers.script(
        Platform::Android,
        std::iter::repeat_n(FakeResponse::Hang(Duration::from_millis(60)), 40),
    );
    let dispatcher = harness.dispatcher(4);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    let ids = harness.create(40).await;
    eventually(Duration::from_secs(30), || async {
        all_delivered(&harness.states(&ids).await, 40)
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap();
    let most = harness.sandbox.providers.max_in_flight();
    assert!(most <= 4, "{most} sends were in flight at once");
    assert!(most >= 2, "sends overlapped ({most})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_gone_signals_prune_subscriptions() {
    let harness = Harness::start().await;
    harness.subscribe(Platform::Ios, 1).await;
    harness.subscribe(Platform::Android, 2).await;
    harness
        .sandbox
        .providers
        .script(Platform::Ios, [FakeResponse::Gone]);
    harness.sandbox.providers.script(
        Platform::Android,
        [FakeResponse::ServerError(503), FakeResponse::Reset],
    );
    let dispatcher = harness.dispatcher(4);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    let ids = harness.create(1).await;
    eventually(Duration::from_secs(20), || async {
        let states = harness.states(&ids).await;
        states.contains(&DeliveryState::EndpointGone)
            && states
                .iter()
                .any(|state| matches!(state, DeliveryState::Delivered { .. }))
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap();
    let remaining: BTreeSet<Platform> = harness
        .service
        .subscriptions(harness.caller())
        .await
        .unwrap()
        .iter()
        .map(|subscription| subscription.channel.platform())
        .collect();
    assert_eq!(remaining, [Platform::Android].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_sends_in_flight() {
    let harness = Harness::start().await;
    harness.subscribe(Platform::Android, 1).await;
    harness.sandbox.providers.script(
        Platform::Android,
        std::iter::repeat_n(FakeResponse::Hang(Duration::from_millis(300)), 3),
    );
    let dispatcher = harness.dispatcher(8);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    let ids = harness.create(3).await;
    eventually(Duration::from_secs(10), || async {
        harness.sandbox.providers.pushes().len() == 3
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap();
    assert!(
        all_delivered(&harness.states(&ids).await, 3),
        "in-flight sends were settled before run returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_holds_up_only_its_own_pushes() {
    let harness = Harness::start().await;
    harness.subscribe(Platform::Ios, 1).await;
    harness.subscribe(Platform::Android, 2).await;
    // APNs never answers: every attempt waits out the client's timeout, one at a time.
    harness.sandbox.providers.script(
        Platform::Ios,
        std::iter::repeat_n(FakeResponse::Hang(Duration::from_secs(3600)), 1000),
    );
    let dispatcher = harness.dispatcher(1);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    let ids = harness.create(40).await;
    let delivered_to = |platform: Platform| {
        harness
            .sandbox
            .providers
            .pushes()
            .iter()
            .filter(|push| push.platform == platform && push.answered == FakeResponse::Accept)
            .filter_map(|push| {
                push.envelope
                    .as_ref()
                    .map(|envelope| envelope["id"].to_string())
            })
            .collect::<BTreeSet<_>>()
            .len()
    };
    eventually(Duration::from_secs(60), || async {
        delivered_to(Platform::Android) == ids.len()
    })
    .await;
    let apns_attempts = harness
        .sandbox
        .providers
        .pushes()
        .iter()
        .filter(|push| push.platform == Platform::Ios)
        .count();
    assert!(
        apns_attempts < ids.len() / 2,
        "Android finished only after {apns_attempts} APNs attempts: it waited behind APNs"
    );
    assert_eq!(delivered_to(Platform::Ios), 0);
    stop.send(()).unwrap();
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_says_whether_it_runs() {
    let harness = Harness::start().await;
    let dispatcher = harness.dispatcher(1);
    let stats = dispatcher.stats();
    assert!(!stats.running());
    let (stop, stopped) = oneshot::channel::<()>();
    let run = dispatcher.run(async move {
        let _ = stopped.await;
    });
    assert!(
        stats.running(),
        "running from the call, before the first poll"
    );
    let running = tokio::spawn(run);
    stop.send(()).unwrap();
    running.await.unwrap();
    assert!(!stats.running());
}
