//! The sandbox with one gateway per platform, and notifications, subscriptions and pushes.

use std::sync::Arc;
use std::time::Duration;

use notif_core::fanout::{ChangeKind, plan_fan_out};
use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use notif_core::notification::{
    DraftContext, FeedKey, Limits, Notification, NotificationDraft, Scalar, VisualContentDraft,
};
use notif_core::platform::Platform;
use notif_core::ports::{Clock, PushGateway};
use notif_core::push::{PushMessage, plan_push};
use notif_core::subscription::{ChannelDraft, ChannelPolicy, Subscription};
use notif_delivery::sandbox::SandboxProviders;
use notif_delivery::{
    ApnsGateway, FcmGateway, HttpConfig, P256Key, SystemClock, WebPushGateway, WnsGateway,
};

pub(crate) const HOST: &str = "graphnotifications.sample.windows.com";

pub(crate) fn http() -> HttpConfig {
    HttpConfig {
        request_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_millis(400),
        http2_only: false,
    }
}

pub(crate) struct Sandbox {
    pub(crate) providers: SandboxProviders,
    pub(crate) apns: Arc<dyn PushGateway>,
    pub(crate) fcm: Arc<dyn PushGateway>,
    pub(crate) wns: Arc<dyn PushGateway>,
    pub(crate) web_push: Arc<dyn PushGateway>,
}

impl Sandbox {
    pub(crate) async fn start() -> Self {
        let providers = SandboxProviders::start().await.unwrap();
        Self {
            apns: Arc::new(ApnsGateway::new(providers.apns_config(http())).unwrap()),
            fcm: Arc::new(FcmGateway::new(providers.fcm_config(http())).unwrap()),
            wns: Arc::new(WnsGateway::new(providers.wns_config(http())).unwrap()),
            web_push: Arc::new(WebPushGateway::new(providers.web_push_config(http())).unwrap()),
            providers,
        }
    }

    pub(crate) fn gateway(&self, platform: Platform) -> Arc<dyn PushGateway> {
        match platform {
            Platform::Ios => self.apns.clone(),
            Platform::Android => self.fcm.clone(),
            Platform::Windows => self.wns.clone(),
            Platform::WebPush => self.web_push.clone(),
        }
    }

    /// A channel on the sandbox for `platform` and `device`; Web Push keys are registered so
    /// the sandbox decrypts.
    pub(crate) fn channel(&self, platform: Platform, device: u32) -> ChannelDraft {
        let base = ChannelDraft {
            platform: Some(platform.as_str().into()),
            ..ChannelDraft::default()
        };
        match platform {
            Platform::Windows => ChannelDraft {
                channel_uri: Some(self.providers.wns_channel_url(&format!("device{device}"))),
                ..base
            },
            Platform::Android => ChannelDraft {
                registration_token: Some(format!("fcm-token-{device}")),
                ..base
            },
            Platform::Ios => ChannelDraft {
                device_token: Some(format!("{device:064x}")),
                topic: Some("com.example.app".into()),
                ..base
            },
            Platform::WebPush => {
                use base64::Engine as _;
                let name = format!("browser{device}");
                let P256Key {
                    private_key,
                    public_key,
                } = P256Key::generate();
                let auth = vec![u8::try_from(device % 200).unwrap() + 1; 16];
                self.providers
                    .register_web_push_keys(&name, private_key, auth.clone());
                let encode =
                    |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                ChannelDraft {
                    endpoint: Some(self.providers.web_push_endpoint(&name)),
                    p256dh: Some(encode(&public_key)),
                    auth: Some(encode(&auth)),
                    ..base
                }
            }
        }
    }

    pub(crate) fn subscription(&self, platform: Platform, device: u32) -> Subscription {
        let policy = ChannelPolicy {
            allow_loopback: true,
            ..ChannelPolicy::default()
        };
        let now = SystemClock.now();
        Subscription {
            id: SubscriptionId::from_parts(1, [u8::try_from(device % 250).unwrap(); 10]),
            feed: feed(),
            client_id: ClientId::new("demo-client").unwrap(),
            channel: self.channel(platform, device).validate(&policy).unwrap(),
            created_at: now,
            expires_at: now.saturating_add(Duration::from_secs(3_600)),
        }
    }
}

pub(crate) fn feed() -> FeedKey {
    FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new("alice").unwrap(),
    }
}

pub(crate) fn visual_draft(key: &str) -> NotificationDraft {
    NotificationDraft {
        target_host_name: Some(HOST.into()),
        app_notification_id: Some(key.into()),
        group_name: Some("TestGroup".into()),
        visual_content: Some(VisualContentDraft {
            title: Some("Hello <World> & \"friends\"".into()),
            body: Some("Notifications are Great!".into()),
        }),
        priority: Some(Scalar::Text("High".into())),
        ..NotificationDraft::default()
    }
}

pub(crate) fn raw_draft(key: &str, raw: String) -> NotificationDraft {
    NotificationDraft {
        target_host_name: Some(HOST.into()),
        app_notification_id: Some(key.into()),
        raw_content: Some(raw),
        priority: Some(Scalar::Text("Low".into())),
        ..NotificationDraft::default()
    }
}

pub(crate) fn notification(draft: NotificationDraft) -> Notification {
    let now = SystemClock.now();
    let mut notification = draft
        .validate(
            NotificationId::from_parts(u64::try_from(now.unix_millis()).unwrap(), [9; 10]),
            DraftContext {
                feed: &feed(),
                app_host: &HostName::new(HOST).unwrap(),
                now,
                limits: &Limits::default(),
            },
        )
        .unwrap();
    notification.change_seq = notif_core::notification::ChangeSeq::new(1);
    notification
}

pub(crate) fn push(
    notification: &Notification,
    change: ChangeKind,
    subscription: Subscription,
) -> PushMessage {
    let now = SystemClock.now();
    let job = plan_fan_out(
        notification,
        change,
        std::slice::from_ref(&subscription),
        now,
    )
    .pop()
    .unwrap_or_else(|| {
        panic!(
            "{change:?} is not pushed to {:?}",
            subscription.channel.platform()
        )
    });
    plan_push(notification, &job, subscription, now)
}
