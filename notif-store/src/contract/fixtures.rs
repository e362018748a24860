//! The suite's fixtures: a harness over a store with a fixed clock, apps, principals, drafts.

use std::sync::Arc;
use std::time::Duration;

use notif_core::app::{App, Principal, SCOPE_CREATED_BY_APP};
use notif_core::ids::{AppId, ClientId, HostName, UserId};
use notif_core::notification::{Limits, NotificationDraft, VisualContentDraft};
use notif_core::ports::{AppRegistry, FeedEvents};
use notif_core::service::{Caller, NotifService, Ports};
use notif_core::subscription::{ChannelDraft, ChannelPolicy};
use notif_core::testing::{FixedClock, SequentialIds};
use notif_core::time::Timestamp;

use super::{StoreFactory, StorePorts};

/// The fixed clock's start.
pub const START: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);
/// The demo app's host name.
pub const DEMO_HOST: &str = "graphnotifications.sample.windows.com";

/// Two apps: `demo` (service `demo-app-service`, device `demo-client`) and `other`.
#[derive(Debug)]
pub struct StaticApps(Vec<App>);

impl StaticApps {
    /// The two apps.
    pub fn new() -> Self {
        let app = |id: &str, host: &str, clients: &[&str]| App {
            id: AppId::new(id).unwrap(),
            host_name: HostName::new(host).unwrap(),
            display_name: id.into(),
            client_ids: clients.iter().map(|c| ClientId::new(*c).unwrap()).collect(),
            credentials: vec![],
        };
        Self(vec![
            app("demo", DEMO_HOST, &["demo-app-service", "demo-client"]),
            app(
                "other",
                "other.example.com",
                &["other-service", "other-client"],
            ),
        ])
    }
}

impl Default for StaticApps {
    fn default() -> Self {
        Self::new()
    }
}

impl AppRegistry for StaticApps {
    fn app_for_client(&self, client: &ClientId) -> Option<App> {
        self.0
            .iter()
            .find(|app| app.client_ids.contains(client))
            .cloned()
    }
}

/// A store under test with the use cases over it, a fixed clock and two apps.
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn StorePorts>,
    /// The use cases over it.
    pub service: NotifService,
    /// The clock the use cases read.
    pub clock: Arc<FixedClock>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Harness")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A harness over a fresh store from `factory`.
    pub fn new(factory: &dyn StoreFactory) -> Self {
        Self::over(factory.fresh(), crate::LocalEvents::new())
    }

    /// A harness over `store` whose use cases announce their writes to `events`.
    pub fn over(store: Arc<dyn StorePorts>, events: Arc<dyn FeedEvents>) -> Self {
        let clock = Arc::new(FixedClock::new(START));
        let ports = Ports {
            notifications: store.clone(),
            subscriptions: store.clone(),
            apps: Arc::new(StaticApps::new()),
            clock: clock.clone(),
            ids: Arc::new(SequentialIds::new()),
            events,
        };
        let policy = ChannelPolicy {
            allow_loopback: true,
            ..ChannelPolicy::default()
        };
        Self {
            store,
            service: NotifService::new(ports, Limits::default(), policy),
            clock,
        }
    }

    /// Moves the clock on by `duration`.
    pub fn advance(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

/// A delegated principal for `name` on the demo device client.
pub fn user(name: &str) -> Principal {
    delegated(name, "demo-client")
}

/// A delegated principal for `name` on `client`.
pub fn delegated(name: &str, client: &str) -> Principal {
    Principal {
        user: Some(UserId::new(name).unwrap()),
        client_id: ClientId::new(client).unwrap(),
        scopes: [SCOPE_CREATED_BY_APP.to_owned()].into(),
        roles: Default::default(),
    }
}

/// An app-only principal of `client`.
pub fn app_only(client: &str) -> Principal {
    Principal {
        user: None,
        client_id: ClientId::new(client).unwrap(),
        scopes: Default::default(),
        roles: [SCOPE_CREATED_BY_APP.to_owned()].into(),
    }
}

/// `principal` calling without a subscription id.
pub fn caller(principal: &Principal) -> Caller<'_> {
    Caller {
        principal,
        subscription_id: None,
    }
}

/// A visual notification `key` for the demo app.
pub fn draft(key: &str) -> NotificationDraft {
    NotificationDraft {
        target_host_name: Some(DEMO_HOST.into()),
        app_notification_id: Some(key.into()),
        visual_content: Some(VisualContentDraft {
            title: Some(format!("title of {key}")),
            body: Some("body".into()),
        }),
        ..NotificationDraft::default()
    }
}

/// [`draft`] in `group`.
pub fn grouped(key: &str, group: &str) -> NotificationDraft {
    NotificationDraft {
        group_name: Some(group.into()),
        ..draft(key)
    }
}

/// A channel of `platform` for `device`, valid without loopback.
pub fn channel(platform: &str, device: u32) -> ChannelDraft {
    let base = ChannelDraft {
        platform: Some(platform.into()),
        ..ChannelDraft::default()
    };
    match platform {
        "windows" => ChannelDraft {
            channel_uri: Some(format!("https://db5p.notify.windows.com/?token={device}")),
            ..base
        },
        "android" => ChannelDraft {
            registration_token: Some(format!("fcm-token-{device}")),
            ..base
        },
        "ios" => ChannelDraft {
            device_token: Some(format!("{device:064x}")),
            topic: Some("com.example.app".into()),
            ..base
        },
        _ => ChannelDraft {
            endpoint: Some(format!("https://fcm.googleapis.com/fcm/send/{device}")),
            p256dh: Some(format!("BA{}", "A".repeat(85))),
            auth: Some("A".repeat(22)),
            ..base
        },
    }
}
