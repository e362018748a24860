//! notif embedded in another binary, without notifd: the use cases over an in-memory store
//! and in-process events, a `Runtime` (dispatcher and expiry sweeper) pushing through the
//! sandbox providers, one device subscribed, one notification created — and its push seen
//! arriving at the provider.
//!
//! `cargo run -p notif-delivery --example embedded`

// An example: it prints what happens, and a failure may panic.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use notif_core::app::{App, Principal, SCOPE_CREATED_BY_APP};
use notif_core::ids::{AppId, ClientId, HostName, UserId};
use notif_core::notification::{Limits, NotificationDraft, VisualContentDraft};
use notif_core::ports::{AppRegistry, Storage};
use notif_core::service::{Caller, NotifService, Ports};
use notif_core::subscription::{ChannelDraft, ChannelPolicy};
use notif_core::testing::SequentialIds;
use notif_delivery::sandbox::SandboxProviders;
use notif_delivery::{FcmGateway, Gateways, HttpConfig, Runtime, RuntimeConfig, SystemClock};
use notif_store::{LocalEvents, MemoryStore};

const HOST: &str = "notifications.contoso.com";

#[derive(Debug)]
struct OneApp(App);

impl AppRegistry for OneApp {
    fn app_for_client(&self, client: &ClientId) -> Option<App> {
        self.0.client_ids.contains(client).then(|| self.0.clone())
    }
}

#[tokio::main]
async fn main() {
    let storage = Storage::of(Arc::new(MemoryStore::new()));
    let events = LocalEvents::new();
    let app = App {
        id: AppId::new("contoso").unwrap(),
        host_name: HostName::new(HOST).unwrap(),
        display_name: "Contoso".into(),
        client_ids: [ClientId::new("contoso-phone").unwrap()].into(),
        credentials: vec![],
    };
    let service = NotifService::new(
        Ports {
            notifications: Arc::clone(&storage.notifications),
            subscriptions: Arc::clone(&storage.subscriptions),
            apps: Arc::new(OneApp(app)),
            clock: Arc::new(SystemClock),
            ids: Arc::new(SequentialIds::new()),
            events: events.clone(),
        },
        Limits::default(),
        ChannelPolicy::default(),
    );

    // The providers: here the loopback sandbox speaking FCM; in production, FCM itself.
    let sandbox = SandboxProviders::start().await.unwrap();
    let mut gateways = Gateways::new();
    let fcm = FcmGateway::new(sandbox.fcm_config(HttpConfig::default())).unwrap();
    gateways.add([AppId::new("contoso").unwrap()], Arc::new(fcm), 16);
    let runtime = Runtime::new(
        storage,
        events.as_ref(),
        gateways,
        Arc::new(SystemClock),
        RuntimeConfig::default(),
    )
    .start();

    let alice = Principal {
        user: Some(UserId::new("alice").unwrap()),
        client_id: ClientId::new("contoso-phone").unwrap(),
        scopes: [SCOPE_CREATED_BY_APP.to_owned()].into(),
        roles: Default::default(),
    };
    let caller = Caller {
        principal: &alice,
        subscription_id: None,
    };
    let phone = ChannelDraft {
        platform: Some("android".into()),
        registration_token: Some("alices-phone".into()),
        ..ChannelDraft::default()
    };
    service.subscribe(caller, phone).await.unwrap();
    let created = service
        .create(
            caller,
            NotificationDraft {
                target_host_name: Some(HOST.into()),
                app_notification_id: Some("welcome".into()),
                visual_content: Some(VisualContentDraft {
                    title: Some("Welcome!".into()),
                    body: Some("notif, embedded".into()),
                }),
                ..NotificationDraft::default()
            },
        )
        .await
        .unwrap();
    println!("created notification {}", created.notification.id);

    // The create announced its job; the dispatcher pushes it at once.
    let push = loop {
        if let Some(push) = sandbox.pushes().pop() {
            break push;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let envelope = push.envelope.unwrap();
    println!("FCM received {} carrying {envelope}", push.path);
    assert_eq!(envelope["id"], created.notification.id.to_string());
    runtime.stop().await.unwrap();
    println!("stopped");
}
