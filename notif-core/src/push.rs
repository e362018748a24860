//! What a push says and how it is sent: the envelope, the shoulder-tap rule, and the
//! per-platform mapping decisions (priority, TTL, collapse keys) that every adapter follows.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::fallback::JobFallback;
use crate::fanout::{ChangeKind, DeliveryJob};
use crate::ids::{AppNotificationId, GroupName, NotificationId};
use crate::notification::{
    ChangeSeq, Notification, Payload, ReadState, UserActionState, VisualContent,
};
use crate::platform::Platform;
use crate::platform::Priority;
use crate::subscription::Subscription;
use crate::time::Timestamp;

/// The small document every push carries, so a device can apply the change or, for a
/// shoulder tap, fetch it by cursor. Adapters serialize it (JSON keys in camelCase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `id`.
    pub id: NotificationId,
    /// `appNotificationId`.
    pub app_notification_id: AppNotificationId,
    /// `groupName`.
    pub group_name: Option<GroupName>,
    /// `change`.
    pub change: ChangeKind,
    /// `changeSeq`: devices discard anything older than what they applied.
    pub change_seq: ChangeSeq,
    /// `readState`.
    pub read_state: ReadState,
    /// `userActionState`.
    pub user_action_state: UserActionState,
    /// `payload`: present for creates and replaces unless this is a shoulder tap.
    pub payload: Option<Payload>,
}

impl Envelope {
    /// The envelope for `change` of `notification`; content travels only with creates and replaces.
    pub fn new(notification: &Notification, change: ChangeKind) -> Self {
        let carries_content = matches!(change, ChangeKind::Created | ChangeKind::Replaced);
        Self {
            id: notification.id,
            app_notification_id: notification.app_notification_id.clone(),
            group_name: notification.group_name.clone(),
            change,
            change_seq: notification.change_seq,
            read_state: notification.read_state,
            user_action_state: notification.user_action_state,
            payload: carries_content.then(|| notification.payload.clone()),
        }
    }

    /// The same envelope without payload: the device fetches the change by cursor.
    pub fn shoulder_tap(&self) -> Self {
        Self {
            payload: None,
            ..self.clone()
        }
    }
}

/// Whether a rendered push body of `rendered_len` bytes fits the platform's limit; when it
/// does not, the adapter sends [`Envelope::shoulder_tap`] instead.
pub fn fits(platform: Platform, rendered_len: usize) -> bool {
    rendered_len <= platform.payload_limit()
}

/// How urgently a push should reach the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// May wait for the device to wake.
    Low,
    /// Ordinary.
    Normal,
    /// Now.
    High,
}

impl Urgency {
    /// FCM `android.priority`: `HIGH` or `NORMAL`.
    pub const fn fcm_priority(self) -> &'static str {
        match self {
            Urgency::High => "HIGH",
            Urgency::Normal | Urgency::Low => "NORMAL",
        }
    }

    /// WNS `X-WNS-Priority`: 1 (high) or 3 (low).
    pub const fn wns_priority(self) -> u8 {
        match self {
            Urgency::High => 1,
            Urgency::Normal | Urgency::Low => 3,
        }
    }

    /// Web Push `Urgency` header.
    pub const fn web_push_urgency(self) -> &'static str {
        match self {
            Urgency::High => "high",
            Urgency::Normal => "normal",
            Urgency::Low => "low",
        }
    }
}

/// Whether the OS shows the push or hands it to the app silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushKind {
    /// Shown by the OS: APNs alert, FCM `notification`, WNS `wns/toast`.
    Alert {
        /// The title.
        title: String,
        /// The body, if any.
        body: Option<String>,
    },
    /// Given to the app: APNs background push, FCM `data`, WNS `wns/raw`, Web Push.
    Background,
}

impl PushKind {
    /// APNs `apns-priority`: 10 for alerts, 5 for background pushes (Apple requires 5 there).
    pub const fn apns_priority(&self) -> u8 {
        match self {
            PushKind::Alert { .. } => 10,
            PushKind::Background => 5,
        }
    }

    /// APNs `apns-push-type`.
    pub const fn apns_push_type(&self) -> &'static str {
        match self {
            PushKind::Alert { .. } => "alert",
            PushKind::Background => "background",
        }
    }
}

/// A push, fully decided, for an adapter to render onto its provider's wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    /// The endpoint.
    pub subscription: Subscription,
    /// Shown or silent.
    pub kind: PushKind,
    /// How urgent.
    pub urgency: Urgency,
    /// Time left until the notification expires, at most the platform's maximum
    /// ([`Platform::clamp_time_to_live`]): providers drop the push after that, while the
    /// feed keeps the notification until its expiration.
    pub time_to_live: Duration,
    /// The notification's expiration (APNs `apns-expiration`).
    pub expires_at: Timestamp,
    /// The app's notification key: APNs `apns-collapse-id`, FCM `collapse_key` and tag,
    /// WNS `X-WNS-Tag`, Web Push `Topic` (each through [`collapse_key`]).
    pub collapse: String,
    /// The group: APNs `thread-id`, WNS `X-WNS-Group`.
    pub group: Option<String>,
    /// The document the push carries.
    pub envelope: Envelope,
}

/// Decides the push for `job` of `notification` to `subscription` at `now`.
pub fn plan_push(
    notification: &Notification,
    job: &DeliveryJob,
    subscription: Subscription,
    now: Timestamp,
) -> PushMessage {
    let platform = subscription.channel.platform();
    let shows_content = matches!(job.change, ChangeKind::Created | ChangeKind::Replaced);
    let alert = |visual: &VisualContent| PushKind::Alert {
        title: visual.title.clone(),
        body: visual.body.clone(),
    };
    let kind = match (notification.payload.visual(), job.fallback) {
        // A fallback's first push is the raw one; its visual push is the alert.
        (_, JobFallback::Armed { .. }) => PushKind::Background,
        (Some(visual), JobFallback::Visual) => alert(visual),
        (Some(visual), JobFallback::None) if shows_content && platform != Platform::WebPush => {
            alert(visual)
        }
        _ => PushKind::Background,
    };
    // Visual notifications are always delivered high priority; priority applies to raw ones.
    let urgency = match (&kind, notification.priority) {
        (PushKind::Alert { .. }, _) | (_, Priority::High) => Urgency::High,
        (_, Priority::None) => Urgency::Normal,
        (_, Priority::Low) => Urgency::Low,
    };
    PushMessage {
        subscription,
        kind,
        urgency,
        time_to_live: platform.clamp_time_to_live(notification.expiration.duration_since(now)),
        expires_at: notification.expiration,
        collapse: notification.app_notification_id.as_str().to_owned(),
        group: notification
            .group_name
            .as_ref()
            .map(|group| group.as_str().to_owned()),
        envelope: Envelope::new(notification, job.change),
    }
}

/// A key that fits a provider's length limit: the text itself when it fits in `max_len`
/// bytes of the allowed alphabet, else a stable hash of it.
///
/// Providers limit these keys: `X-WNS-Tag`/`X-WNS-Group` to 16 alphanumeric characters, Web
/// Push `Topic` to 32 base64url characters, `apns-collapse-id` to 64 bytes. The hash is
/// written in the alphabet's own characters (hexadecimal for [`KeyAlphabet::Alphanumeric`]).
pub fn collapse_key(text: &str, max_len: usize, alphabet: KeyAlphabet) -> String {
    let fits_as_is = text.len() <= max_len && text.chars().all(|c| alphabet.allows(c));
    if fits_as_is {
        return text.to_owned();
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut key = match alphabet {
        KeyAlphabet::Alphanumeric => digest.iter().map(|byte| format!("{byte:02x}")).collect(),
        KeyAlphabet::Base64Url | KeyAlphabet::PrintableAscii => URL_SAFE_NO_PAD.encode(digest),
    };
    key.truncate(max_len);
    key
}

/// The characters a provider accepts in a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlphabet {
    /// ASCII letters and digits only (WNS `X-WNS-Tag` and `X-WNS-Group`).
    Alphanumeric,
    /// Base64url characters only (Web Push `Topic`).
    Base64Url,
    /// Any printable ASCII (APNs collapse ids, FCM collapse keys).
    PrintableAscii,
}

impl KeyAlphabet {
    fn allows(self, c: char) -> bool {
        match self {
            KeyAlphabet::Alphanumeric => c.is_ascii_alphanumeric(),
            KeyAlphabet::Base64Url => c.is_ascii_alphanumeric() || c == '-' || c == '_',
            KeyAlphabet::PrintableAscii => c.is_ascii_graphic() || c == ' ',
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_pass_through_and_long_ones_hash_stably() {
        assert_eq!(
            collapse_key("news", 16, KeyAlphabet::PrintableAscii),
            "news"
        );
        let long = "testDirectToastNotification";
        let tag = collapse_key(long, 16, KeyAlphabet::PrintableAscii);
        assert_eq!(tag.len(), 16);
        assert_eq!(tag, collapse_key(long, 16, KeyAlphabet::PrintableAscii));
        assert_ne!(
            tag,
            collapse_key(
                "testDirectToastNotification2",
                16,
                KeyAlphabet::PrintableAscii
            )
        );
        let topic = collapse_key("a.b", 32, KeyAlphabet::Base64Url);
        assert_eq!(topic.len(), 32);
        assert!(
            topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(
            collapse_key("héllo", 64, KeyAlphabet::PrintableAscii).len(),
            43
        );
    }

    #[test]
    fn alphanumeric_keys_never_carry_punctuation() {
        assert_eq!(
            collapse_key("order42", 16, KeyAlphabet::Alphanumeric),
            "order42"
        );
        for text in ["order-42", "a_b", "x y", "testDirectToastNotification"] {
            let tag = collapse_key(text, 16, KeyAlphabet::Alphanumeric);
            assert_eq!(tag.len(), 16, "{text}");
            assert!(
                tag.chars().all(|c| c.is_ascii_alphanumeric()),
                "{text}: {tag}"
            );
        }
    }

    #[test]
    fn urgency_maps_to_each_provider() {
        assert_eq!(Urgency::High.fcm_priority(), "HIGH");
        assert_eq!(Urgency::Low.fcm_priority(), "NORMAL");
        assert_eq!(Urgency::High.wns_priority(), 1);
        assert_eq!(Urgency::Normal.wns_priority(), 3);
        assert_eq!(Urgency::Low.web_push_urgency(), "low");
        assert_eq!(PushKind::Background.apns_priority(), 5);
        assert_eq!(
            PushKind::Alert {
                title: "t".into(),
                body: None
            }
            .apns_priority(),
            10
        );
    }

    #[test]
    fn size_limits_follow_the_providers() {
        assert!(fits(Platform::WebPush, 3993));
        assert!(!fits(Platform::WebPush, 3994));
        assert!(fits(Platform::Windows, 5000));
        assert!(!fits(Platform::Ios, 4097));
    }
}
