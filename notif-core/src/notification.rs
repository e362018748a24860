//! The notification: its validated fields, its state, and the draft → notification constructor.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::fallback::{FallbackPolicy, FallbackPolicyDraft, JobFallback};
use crate::fanout::ChangeKind;
use crate::ids::{
    AppId, AppNotificationId, GroupName, HostName, NotificationId, UserId, check_text,
};
use crate::platform::{Platform, Priority};
use crate::time::Timestamp;
use crate::validation::{ValidationErrors, Violations};

/// Limits on notification content and lifetime. Configuration, with the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest `visualContent.title`, in characters (default 256).
    pub max_title_chars: usize,
    /// Longest `visualContent.body`, in characters (default 4096).
    pub max_body_chars: usize,
    /// Largest `rawContent`, in bytes (default 64 KiB).
    pub max_raw_content_bytes: usize,
    /// Expiration when the request names none (default 7 days).
    pub default_expiration: Duration,
    /// Furthest allowed expiration from now (default 30 days).
    pub max_expiration: Duration,
    /// How long a subscription lives before it must be renewed (default 30 days).
    pub subscription_lifetime: Duration,
    /// Most subscriptions one user may hold in one app (default 100).
    pub max_subscriptions_per_user: usize,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_title_chars: 256,
            max_body_chars: 4096,
            max_raw_content_bytes: 64 * 1024,
            default_expiration: DAY * 7,
            max_expiration: DAY * 30,
            subscription_lifetime: DAY * 30,
            max_subscriptions_per_user: 100,
        }
    }
}

/// The visible part of a notification, rendered by the operating system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisualContent {
    /// The title; never empty.
    pub title: String,
    /// The body, if any.
    pub body: Option<String>,
}

/// What a notification carries: visual content, raw content for the app, or both (never neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    visual: Option<VisualContent>,
    raw: Option<String>,
}

impl Payload {
    /// A payload with visual content, raw content or both.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming `payload` when both are absent.
    pub fn new(
        visual: Option<VisualContent>,
        raw: Option<String>,
    ) -> Result<Self, ValidationErrors> {
        if visual.is_none() && raw.is_none() {
            return Err(ValidationErrors::single(
                "payload",
                "visualContent or rawContent is required",
            ));
        }
        Ok(Self { visual, raw })
    }

    /// The visual content, if any.
    pub fn visual(&self) -> Option<&VisualContent> {
        self.visual.as_ref()
    }

    /// The raw content, if any.
    pub fn raw(&self) -> Option<&str> {
        self.raw.as_deref()
    }
}

/// The platforms a notification goes to. Empty means every platform.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    platforms: BTreeSet<Platform>,
}

impl TargetPolicy {
    /// A policy for exactly these platforms; no platforms means all of them.
    pub fn new(platforms: impl IntoIterator<Item = Platform>) -> Self {
        Self {
            platforms: platforms.into_iter().collect(),
        }
    }

    /// Whether a subscription on `platform` is targeted.
    pub fn includes(&self, platform: Platform) -> bool {
        self.platforms.is_empty() || self.platforms.contains(&platform)
    }

    /// The platforms named; empty when all are targeted.
    pub fn platforms(&self) -> impl Iterator<Item = Platform> + '_ {
        self.platforms.iter().copied()
    }
}

/// How long the toast stays in the OS notification centre, in seconds; positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DisplayTimeToLive(u32);

impl DisplayTimeToLive {
    /// A positive number of seconds that fits Graph's Int32.
    ///
    /// # Errors
    /// A reason text when the value is zero, negative or beyond `i32::MAX`.
    pub fn new(seconds: i64) -> Result<Self, &'static str> {
        if seconds <= 0 {
            return Err("must be a positive number of seconds");
        }
        u32::try_from(seconds)
            .ok()
            .filter(|&seconds| seconds <= i32::MAX.unsigned_abs())
            .map(Self)
            .ok_or("must fit a 32-bit signed integer")
    }

    /// The seconds.
    pub const fn seconds(self) -> u32 {
        self.0
    }
}

/// Whether the user has read a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ReadState {
    /// Not read yet (the state of every new or replaced notification).
    #[default]
    Unread,
    /// Read on some device.
    Read,
}

/// What the user did with a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum UserActionState {
    /// Nothing yet.
    #[default]
    NoInteraction,
    /// Opened (clicked).
    Activated,
    /// Dismissed; a dismissed notification stays in the feed until it expires or is deleted.
    Dismissed,
    /// Snoozed.
    Snoozed,
}

/// Whether a notification is live or a tombstone kept for device sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Status {
    /// Live.
    #[default]
    Active,
    /// Deleted: kept in the change log until its expiration so devices learn of the removal.
    Deleted,
}

macro_rules! named_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Parses the Graph name, ignoring case.
            ///
            /// # Errors
            /// [`UnknownName`](crate::platform::UnknownName) for any other text.
            pub fn parse(text: &str) -> Result<Self, crate::platform::UnknownName> {
                $(if text.trim().eq_ignore_ascii_case($text) {
                    return Ok($name::$variant);
                })+
                Err(crate::platform::UnknownName {
                    value: text.to_owned(),
                    expected: concat!($($text, " "),+),
                })
            }

            /// The Graph name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(self.as_str())
            }
        }
    };
}

named_enum!(ReadState { Unread => "unread", Read => "read" });
named_enum!(UserActionState {
    NoInteraction => "noInteraction",
    Activated => "activated",
    Dismissed => "dismissed",
    Snoozed => "snoozed",
});
named_enum!(Status { Active => "active", Deleted => "deleted" });

/// A position in one (app, user) feed's change sequence. Every write takes the next number;
/// `ChangeSeq::ZERO` is the cursor that precedes every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChangeSeq(u64);

impl ChangeSeq {
    /// The cursor before the first change.
    pub const ZERO: ChangeSeq = ChangeSeq(0);

    /// Wraps a sequence number.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The number.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// The number after this one.
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// The feed a notification lives in: one user of one cross-device app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedKey {
    /// The cross-device app.
    pub app: AppId,
    /// The user.
    pub user: UserId,
}

/// A stored notification.
///
/// Every field holds a validated type, so the fields are public; the cross-field rules of a
/// *new* notification (expiration window, host name of the app) are checked by
/// [`NotificationDraft::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Server-assigned id (UUID v7).
    pub id: NotificationId,
    /// The feed it belongs to.
    pub feed: FeedKey,
    /// The app's own key.
    pub app_notification_id: AppNotificationId,
    /// Optional group.
    pub group_name: Option<GroupName>,
    /// The app's host name, as requested.
    pub target_host_name: HostName,
    /// Visual and/or raw content.
    pub payload: Payload,
    /// Platforms targeted.
    pub target_policy: TargetPolicy,
    /// The visual push that follows an unfetched raw push, if any.
    pub fallback_policy: Option<FallbackPolicy>,
    /// Priority (applies to raw notifications).
    pub priority: Priority,
    /// How long the toast stays on screen.
    pub display_time_to_live: Option<DisplayTimeToLive>,
    /// When the notification leaves the feed entirely.
    pub expiration: Timestamp,
    /// When it was first created.
    pub created_at: Timestamp,
    /// When it was last replaced or changed; `None` until then.
    pub last_modified_at: Option<Timestamp>,
    /// Live or tombstone.
    pub status: Status,
    /// Read or not.
    pub read_state: ReadState,
    /// What the user did.
    pub user_action_state: UserActionState,
    /// The feed sequence number of its latest change.
    pub change_seq: ChangeSeq,
}

impl Notification {
    /// Whether the notification is live at `now`: active and not expired.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.status == Status::Active && self.expiration > now
    }

    /// The fallback stage of the push of `change` to an endpoint on `platform`: armed for
    /// the content-carrying changes (create, replace) to a platform the fallback policy
    /// lists; none otherwise.
    pub fn fallback_for(&self, platform: Platform, change: ChangeKind) -> JobFallback {
        match &self.fallback_policy {
            Some(policy)
                if policy.includes(platform)
                    && matches!(change, ChangeKind::Created | ChangeKind::Replaced) =>
            {
                JobFallback::Armed {
                    after: policy.delay(),
                }
            }
            _ => JobFallback::None,
        }
    }
}

/// A number that clients may send either as a JSON number or as a string holding one
/// (Graph samples send `"displayTimeToLive": "60"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// A number.
    Number(i64),
    /// A text, expected to hold a number or a name.
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Number(number) => write!(formatter, "{number}"),
            Scalar::Text(text) => formatter.write_str(text),
        }
    }
}

/// Unvalidated visual content, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisualContentDraft {
    /// `payload.visualContent.title`.
    pub title: Option<String>,
    /// `payload.visualContent.body`.
    pub body: Option<String>,
}

/// An unvalidated create request, field for field as the Graph `POST /me/notifications` body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationDraft {
    /// `targetHostName`.
    pub target_host_name: Option<String>,
    /// `appNotificationId`.
    pub app_notification_id: Option<String>,
    /// `groupName`.
    pub group_name: Option<String>,
    /// `payload.visualContent`.
    pub visual_content: Option<VisualContentDraft>,
    /// `payload.rawContent`.
    pub raw_content: Option<String>,
    /// `targetPolicy.platformTypes`.
    pub platform_types: Vec<String>,
    /// `fallbackPolicy`.
    pub fallback_policy: Option<FallbackPolicyDraft>,
    /// `priority`: a name or the client enum number.
    pub priority: Option<Scalar>,
    /// `displayTimeToLive`: seconds, as a number or a numeric string.
    pub display_time_to_live: Option<Scalar>,
    /// `expirationDateTime`, RFC 3339.
    pub expiration_date_time: Option<String>,
}

/// What a draft is validated against: who creates it, when, and under which limits.
#[derive(Debug, Clone, Copy)]
pub struct DraftContext<'a> {
    /// The feed the notification is created in.
    pub feed: &'a FeedKey,
    /// The calling app's verified host name; `targetHostName` must equal it.
    pub app_host: &'a HostName,
    /// The current time.
    pub now: Timestamp,
    /// Content and lifetime limits.
    pub limits: &'a Limits,
}

impl NotificationDraft {
    /// Turns the draft into a new, active, unread notification with the given id, checking every
    /// field and reporting every violation by its Graph name (`payload.visualContent.title`).
    ///
    /// # Errors
    /// [`ValidationErrors`] listing each offending field.
    pub fn validate(
        self,
        id: NotificationId,
        context: DraftContext<'_>,
    ) -> Result<Notification, ValidationErrors> {
        let DraftContext {
            feed,
            app_host,
            now,
            limits,
        } = context;
        let mut violations = Violations::default();

        let target_host_name = match self.target_host_name.as_deref() {
            None => {
                violations.push("targetHostName", "required");
                None
            }
            Some(text) => violations
                .check("targetHostName", HostName::new(text))
                .and_then(|host| {
                    if &host == app_host {
                        Some(host)
                    } else {
                        violations.push("targetHostName", "is not the calling app's host name");
                        None
                    }
                }),
        };
        let app_notification_id = violations.check(
            "appNotificationId",
            AppNotificationId::new(self.app_notification_id.unwrap_or_default()),
        );
        let group_name = match self.group_name {
            None => Some(None),
            Some(text) => violations
                .check("groupName", GroupName::new(text))
                .map(Some),
        };
        let has_raw = self.raw_content.is_some();
        let has_visual = self.visual_content.is_some();
        let payload = validate_payload(
            self.visual_content,
            self.raw_content,
            limits,
            &mut violations,
        );
        let fallback_policy = match self.fallback_policy {
            None => Some(None),
            Some(draft) => draft
                .validate(has_raw, has_visual, &mut violations)
                .map(Some),
        };

        let mut platforms = Vec::new();
        for (index, text) in self.platform_types.iter().enumerate() {
            let field = format!("targetPolicy.platformTypes[{index}]");
            if let Some(platform) = violations.check(&field, Platform::parse(text)) {
                platforms.push(platform);
            }
        }

        let priority = match self.priority {
            None => Some(Priority::None),
            Some(value) => violations.check("priority", Priority::parse(&value.to_string())),
        };
        let display_time_to_live = match self.display_time_to_live {
            None => Some(None),
            Some(value) => violations
                .check("displayTimeToLive", parse_seconds(&value))
                .map(Some),
        };
        let expiration = match self.expiration_date_time {
            None => Some(now.saturating_add(limits.default_expiration)),
            Some(text) => violations
                .check("expirationDateTime", Timestamp::parse_rfc3339(&text))
                .and_then(|expiration| {
                    if expiration <= now {
                        violations.push("expirationDateTime", "must be in the future");
                        None
                    } else if expiration > now.saturating_add(limits.max_expiration) {
                        violations.push(
                            "expirationDateTime",
                            format!(
                                "must be at most {} days ahead",
                                limits.max_expiration.as_secs() / DAY.as_secs()
                            ),
                        );
                        None
                    } else {
                        Some(expiration)
                    }
                }),
        };

        violations.finish(|| {
            Some(Notification {
                id,
                feed: feed.clone(),
                app_notification_id: app_notification_id?,
                group_name: group_name?,
                target_host_name: target_host_name?,
                payload: payload?,
                target_policy: TargetPolicy::new(platforms),
                fallback_policy: fallback_policy?,
                priority: priority?,
                display_time_to_live: display_time_to_live?,
                expiration: expiration?,
                created_at: now,
                last_modified_at: None,
                status: Status::Active,
                read_state: ReadState::Unread,
                user_action_state: UserActionState::NoInteraction,
                change_seq: ChangeSeq::ZERO,
            })
        })
    }
}

fn validate_payload(
    visual_content: Option<VisualContentDraft>,
    raw_content: Option<String>,
    limits: &Limits,
    violations: &mut Violations,
) -> Option<Payload> {
    let mut valid = true;
    let visual = visual_content.map(|draft| {
        let title = draft.title.unwrap_or_default();
        if let Err(error) = check_text_allowing_newlines(&title, limits.max_title_chars) {
            violations.push("payload.visualContent.title", error.to_string());
            valid = false;
        }
        if let Some(body) = &draft.body
            && body.chars().count() > limits.max_body_chars
        {
            violations.push(
                "payload.visualContent.body",
                format!("longer than {} characters", limits.max_body_chars),
            );
            valid = false;
        }
        VisualContent {
            title,
            body: draft.body,
        }
    });
    if let Some(raw) = &raw_content
        && raw.len() > limits.max_raw_content_bytes
    {
        violations.push(
            "payload.rawContent",
            format!("larger than {} bytes", limits.max_raw_content_bytes),
        );
        valid = false;
    }
    if !valid {
        return None;
    }
    violations.merge(Payload::new(visual, raw_content))
}

/// A title may hold line breaks (toasts wrap), but no other control characters.
fn check_text_allowing_newlines(text: &str, max: usize) -> Result<(), crate::ids::TextError> {
    check_text(&text.replace(['\n', '\r', '\t'], " "), max)
}

fn parse_seconds(value: &Scalar) -> Result<DisplayTimeToLive, String> {
    let seconds = match value {
        Scalar::Number(number) => *number,
        Scalar::Text(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{text:?} is not a whole number of seconds"))?,
    };
    DisplayTimeToLive::new(seconds).map_err(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

    fn feed() -> FeedKey {
        FeedKey {
            app: AppId::new("demo").unwrap(),
            user: UserId::new("alice").unwrap(),
        }
    }

    fn host() -> HostName {
        HostName::new("graphnotifications.sample.windows.com").unwrap()
    }

    fn seed_draft() -> NotificationDraft {
        NotificationDraft {
            target_host_name: Some("graphnotifications.sample.windows.com".into()),
            app_notification_id: Some("testDirectToastNotification".into()),
            group_name: Some("TestGroup".into()),
            visual_content: Some(VisualContentDraft {
                title: Some("Hello World!".into()),
                body: Some("Notifications are Great!".into()),
            }),
            raw_content: None,
            platform_types: vec!["windows".into(), "android".into()],
            priority: Some(Scalar::Text("High".into())),
            display_time_to_live: Some(Scalar::Text("23".into())),
            expiration_date_time: Some("2023-11-15T00:00:00.000Z".into()),
            fallback_policy: None,
        }
    }

    fn validate(draft: NotificationDraft) -> Result<Notification, ValidationErrors> {
        let feed = feed();
        let host = host();
        let limits = Limits::default();
        let id = NotificationId::from_parts(1, [0; 10]);
        draft.validate(
            id,
            DraftContext {
                feed: &feed,
                app_host: &host,
                now: NOW,
                limits: &limits,
            },
        )
    }

    fn only_violation(draft: NotificationDraft) -> String {
        let errors = validate(draft).unwrap_err();
        assert_eq!(errors.violations().len(), 1, "{errors}");
        errors.violations()[0].field.clone()
    }

    #[test]
    fn the_seed_request_validates() {
        let notification = validate(seed_draft()).unwrap();
        assert_eq!(notification.priority, Priority::High);
        assert_eq!(notification.display_time_to_live.unwrap().seconds(), 23);
        assert!(notification.target_policy.includes(Platform::Windows));
        assert!(notification.target_policy.includes(Platform::Android));
        assert!(!notification.target_policy.includes(Platform::Ios));
        assert_eq!(notification.status, Status::Active);
        assert_eq!(notification.read_state, ReadState::Unread);
        assert_eq!(notification.last_modified_at, None);
    }

    #[test]
    fn expiration_defaults_to_seven_days() {
        let draft = NotificationDraft {
            expiration_date_time: None,
            ..seed_draft()
        };
        let notification = validate(draft).unwrap();
        assert_eq!(notification.expiration.duration_since(NOW), DAY * 7);
    }

    #[test]
    fn missing_title_is_named() {
        let draft = NotificationDraft {
            visual_content: Some(VisualContentDraft::default()),
            ..seed_draft()
        };
        assert_eq!(only_violation(draft), "payload.visualContent.title");
    }

    #[test]
    fn empty_payload_is_named() {
        let draft = NotificationDraft {
            visual_content: None,
            raw_content: None,
            ..seed_draft()
        };
        assert_eq!(only_violation(draft), "payload");
    }

    #[test]
    fn raw_only_payload_is_accepted() {
        let draft = NotificationDraft {
            visual_content: None,
            raw_content: Some("{\"k\":1}".into()),
            ..seed_draft()
        };
        assert_eq!(validate(draft).unwrap().payload.raw(), Some("{\"k\":1}"));
    }

    #[test]
    fn oversize_fields_are_named() {
        let limits = Limits::default();
        let cases = [
            (
                NotificationDraft {
                    visual_content: Some(VisualContentDraft {
                        title: Some("t".repeat(limits.max_title_chars + 1)),
                        body: None,
                    }),
                    ..seed_draft()
                },
                "payload.visualContent.title",
            ),
            (
                NotificationDraft {
                    visual_content: Some(VisualContentDraft {
                        title: Some("t".into()),
                        body: Some("b".repeat(limits.max_body_chars + 1)),
                    }),
                    ..seed_draft()
                },
                "payload.visualContent.body",
            ),
            (
                NotificationDraft {
                    raw_content: Some("r".repeat(limits.max_raw_content_bytes + 1)),
                    ..seed_draft()
                },
                "payload.rawContent",
            ),
            (
                NotificationDraft {
                    app_notification_id: Some("a".repeat(257)),
                    ..seed_draft()
                },
                "appNotificationId",
            ),
            (
                NotificationDraft {
                    group_name: Some("g".repeat(257)),
                    ..seed_draft()
                },
                "groupName",
            ),
        ];
        for (draft, field) in cases {
            assert_eq!(only_violation(draft), field);
        }
    }

    #[test]
    fn required_fields_are_named() {
        let draft = NotificationDraft {
            app_notification_id: None,
            ..seed_draft()
        };
        assert_eq!(only_violation(draft), "appNotificationId");
        let draft = NotificationDraft {
            target_host_name: None,
            ..seed_draft()
        };
        assert_eq!(only_violation(draft), "targetHostName");
    }

    #[test]
    fn another_apps_host_is_refused() {
        let draft = NotificationDraft {
            target_host_name: Some("evil.example.com".into()),
            ..seed_draft()
        };
        assert_eq!(only_violation(draft), "targetHostName");
    }

    #[test]
    fn unknown_platform_is_named_with_its_index() {
        let draft = NotificationDraft {
            platform_types: vec!["windows".into(), "symbian".into()],
            ..seed_draft()
        };
        assert_eq!(only_violation(draft), "targetPolicy.platformTypes[1]");
    }

    #[test]
    fn bad_priority_and_ttl_are_named() {
        let draft = NotificationDraft {
            priority: Some(Scalar::Text("urgent".into())),
            ..seed_draft()
        };
        assert_eq!(only_violation(draft), "priority");
        for ttl in [
            Scalar::Number(0),
            Scalar::Number(-5),
            Scalar::Text("soon".into()),
            Scalar::Number(i64::from(i32::MAX) + 1),
        ] {
            let draft = NotificationDraft {
                display_time_to_live: Some(ttl),
                ..seed_draft()
            };
            assert_eq!(only_violation(draft), "displayTimeToLive");
        }
        let draft = NotificationDraft {
            display_time_to_live: Some(Scalar::Number(60)),
            priority: Some(Scalar::Number(2)),
            ..seed_draft()
        };
        let notification = validate(draft).unwrap();
        assert_eq!(notification.priority, Priority::Low);
        assert_eq!(notification.display_time_to_live.unwrap().seconds(), 60);
    }

    #[test]
    fn expiration_must_be_in_the_window() {
        let past = NOW.saturating_sub(Duration::from_secs(1)).to_rfc3339();
        let far = NOW.saturating_add(DAY * 31).to_rfc3339();
        for text in [past, far, "tomorrow".to_owned()] {
            let draft = NotificationDraft {
                expiration_date_time: Some(text),
                ..seed_draft()
            };
            assert_eq!(only_violation(draft), "expirationDateTime");
        }
        let edge = NOW.saturating_add(DAY * 30).to_rfc3339();
        let draft = NotificationDraft {
            expiration_date_time: Some(edge),
            ..seed_draft()
        };
        assert!(validate(draft).is_ok());
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let draft = NotificationDraft {
            app_notification_id: None,
            priority: Some(Scalar::Text("x".into())),
            visual_content: None,
            ..seed_draft()
        };
        let errors = validate(draft).unwrap_err();
        assert!(errors.names("appNotificationId"));
        assert!(errors.names("priority"));
        assert!(errors.names("payload"));
    }

    #[test]
    fn state_names_parse_in_any_case() {
        assert_eq!(ReadState::parse("Read"), Ok(ReadState::Read));
        assert_eq!(
            UserActionState::parse("DISMISSED"),
            Ok(UserActionState::Dismissed)
        );
        assert_eq!(Status::parse("deleted"), Ok(Status::Deleted));
        assert!(UserActionState::parse("archived").is_err());
    }
}
