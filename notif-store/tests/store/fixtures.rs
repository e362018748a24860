//! Shared fixtures: a harness over either store with a fixed clock, apps, principals, drafts.

use std::sync::Arc;
use std::time::Duration;

use notif_core::app::{App, Principal, SCOPE_CREATED_BY_APP};
use notif_core::ids::{AppId, ClientId, HostName, UserId};
use notif_core::notification::{Limits, NotificationDraft, VisualContentDraft};
use notif_core::ports::{AppRegistry, DeliveryQueue, NotificationStore, SubscriptionStore};
use notif_core::service::{Caller, NotifService, Ports};
use notif_core::subscription::{ChannelDraft, ChannelPolicy};
use notif_core::testing::{FixedClock, SequentialIds};
use notif_core::time::Timestamp;
use notif_store::{MemoryStore, SledStore};
use tempfile::TempDir;

pub(crate) const START: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);
pub(crate) const DEMO_HOST: &str = "graphnotifications.sample.windows.com";

/// All three storage ports in one object.
pub(crate) trait StorePorts: NotificationStore + SubscriptionStore + DeliveryQueue {}
impl<T: NotificationStore + SubscriptionStore + DeliveryQueue> StorePorts for T {}

/// Two apps: `demo` (service `demo-app-service`, device `demo-client`) and `other`.
#[derive(Debug)]
pub(crate) struct StaticApps(Vec<App>);

impl StaticApps {
    pub(crate) fn new() -> Self {
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

impl AppRegistry for StaticApps {
    fn app_for_client(&self, client: &ClientId) -> Option<App> {
        self.0
            .iter()
            .find(|app| app.client_ids.contains(client))
            .cloned()
    }
}

pub(crate) struct Harness {
    pub(crate) store: Arc<dyn StorePorts>,
    pub(crate) service: NotifService,
    pub(crate) clock: Arc<FixedClock>,
    _directory: Option<TempDir>,
}

impl Harness {
    pub(crate) fn memory() -> Self {
        Self::over(Arc::new(MemoryStore::new()), None)
    }

    pub(crate) fn sled() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let store = SledStore::open(directory.path()).unwrap();
        Self::over(Arc::new(store), Some(directory))
    }

    fn over(store: Arc<dyn StorePorts>, directory: Option<TempDir>) -> Self {
        let clock = Arc::new(FixedClock::new(START));
        let ports = Ports {
            notifications: store.clone(),
            subscriptions: store.clone(),
            apps: Arc::new(StaticApps::new()),
            clock: clock.clone(),
            ids: Arc::new(SequentialIds::new()),
            events: notif_store::LocalEvents::new(),
        };
        let policy = ChannelPolicy {
            allow_loopback: true,
            ..ChannelPolicy::default()
        };
        Self {
            store,
            service: NotifService::new(ports, Limits::default(), policy),
            clock,
            _directory: directory,
        }
    }

    pub(crate) fn advance(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

pub(crate) fn user(name: &str) -> Principal {
    delegated(name, "demo-client")
}

pub(crate) fn delegated(name: &str, client: &str) -> Principal {
    Principal {
        user: Some(UserId::new(name).unwrap()),
        client_id: ClientId::new(client).unwrap(),
        scopes: [SCOPE_CREATED_BY_APP.to_owned()].into(),
        roles: Default::default(),
    }
}

pub(crate) fn app_only(client: &str) -> Principal {
    Principal {
        user: None,
        client_id: ClientId::new(client).unwrap(),
        scopes: Default::default(),
        roles: [SCOPE_CREATED_BY_APP.to_owned()].into(),
    }
}

pub(crate) fn caller(principal: &Principal) -> Caller<'_> {
    Caller {
        principal,
        subscription_id: None,
    }
}

pub(crate) fn draft(key: &str) -> NotificationDraft {
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

pub(crate) fn grouped(key: &str, group: &str) -> NotificationDraft {
    NotificationDraft {
        group_name: Some(group.into()),
        ..draft(key)
    }
}

pub(crate) fn channel(platform: &str, device: u32) -> ChannelDraft {
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
