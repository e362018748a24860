//! Values for the crate's unit tests: a feed, a notification in it, a subscription to it.

use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use notif_core::notification::{DraftContext, FeedKey, Limits, Notification, NotificationDraft};
use notif_core::subscription::{PushChannel, Subscription};
use notif_core::time::Timestamp;

/// The instant the fixtures are made at.
pub(crate) const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

/// Alice's feed in the demo app.
pub(crate) fn feed() -> FeedKey {
    FeedKey {
        app: AppId::new("demo").unwrap_or_else(|error| panic!("{error}")),
        user: UserId::new("alice").unwrap_or_else(|error| panic!("{error}")),
    }
}

/// A raw notification `key` in [`feed`], expiring in a week.
pub(crate) fn notification(key: &str) -> Notification {
    let host = HostName::new("graphnotifications.sample.windows.com")
        .unwrap_or_else(|error| panic!("{error}"));
    NotificationDraft {
        target_host_name: Some(host.to_string()),
        app_notification_id: Some(key.into()),
        raw_content: Some("raw".into()),
        ..NotificationDraft::default()
    }
    .validate(
        NotificationId::from_parts(1, [7; 10]),
        DraftContext {
            feed: &feed(),
            app_host: &host,
            now: NOW,
            limits: &Limits::default(),
        },
    )
    .unwrap_or_else(|error| panic!("{error}"))
}

/// An Android subscription `index` to [`feed`], live for a day.
pub(crate) fn subscription(index: u8) -> Subscription {
    Subscription {
        id: SubscriptionId::from_parts(1, [index; 10]),
        feed: feed(),
        client_id: ClientId::new("demo-client").unwrap_or_else(|error| panic!("{error}")),
        channel: PushChannel::Fcm {
            registration_token: format!("token-{index}"),
        },
        created_at: NOW,
        expires_at: NOW.saturating_add(std::time::Duration::from_secs(86_400)),
    }
}
