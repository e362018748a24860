//! The on-disk record types: private, versioned (a leading version byte, then postcard), and
//! converted to and from the domain in one place. Decoding re-validates every field, so a
//! corrupt record is reported by key instead of entering the domain.

use notif_core::delivery::{DeliveryRecord, DeliveryState};
use notif_core::fanout::{ChangeKind, DeliveryJob};
use notif_core::ids::{
    AppId, AppNotificationId, ClientId, GroupName, HostName, NotificationId, SubscriptionId, UserId,
};
use notif_core::notification::{
    ChangeSeq, DisplayTimeToLive, FeedKey, Notification, Payload, ReadState, Status, TargetPolicy,
    UserActionState, VisualContent,
};
use notif_core::platform::{Platform, Priority};
use notif_core::ports::StoreError;
use notif_core::subscription::{ApnsEnvironment, ChannelUrl, PushChannel, Subscription};
use notif_core::time::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The record format written by this version.
const VERSION: u8 = 1;

/// Encodes a record: the version byte, then postcard.
pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = vec![VERSION];
    // postcard only fails on writers that run out of space or on types serde cannot
    // express; a Vec writer and these plain records can do neither.
    if let Ok(encoded) = postcard::to_stdvec(record) {
        bytes.extend_from_slice(&encoded);
    }
    bytes
}

/// Decodes a record written by [`encode`], naming `key` when it cannot.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|error| corrupt(key, error.to_string()))
        }
        Some((version, _)) => Err(corrupt(key, format!("unknown record version {version}"))),
        None => Err(corrupt(key, "empty record".into())),
    }
}

/// A corrupt-record error naming `key` in hex.
pub(crate) fn corrupt(key: &[u8], reason: String) -> StoreError {
    let key = key.iter().map(|byte| format!("{byte:02x}")).collect();
    StoreError::Corrupt { key, reason }
}

fn field<T, E: std::fmt::Display>(
    key: &[u8],
    name: &str,
    result: Result<T, E>,
) -> Result<T, StoreError> {
    result.map_err(|error| corrupt(key, format!("{name}: {error}")))
}

fn platform_code(platform: Platform) -> u8 {
    match platform {
        Platform::Windows => 0,
        Platform::Android => 1,
        Platform::Ios => 2,
        Platform::WebPush => 3,
    }
}

fn platform_from(key: &[u8], code: u8) -> Result<Platform, StoreError> {
    Platform::ALL
        .get(usize::from(code))
        .copied()
        .ok_or_else(|| corrupt(key, format!("platform code {code}")))
}

fn code_of<T: PartialEq + Copy>(values: &[T], value: T) -> u8 {
    values
        .iter()
        .position(|candidate| *candidate == value)
        .and_then(|index| u8::try_from(index).ok())
        .unwrap_or(u8::MAX)
}

fn value_of<T: Copy>(key: &[u8], name: &str, values: &[T], code: u8) -> Result<T, StoreError> {
    values
        .get(usize::from(code))
        .copied()
        .ok_or_else(|| corrupt(key, format!("{name} code {code}")))
}

const PRIORITIES: [Priority; 3] = [Priority::None, Priority::Low, Priority::High];
const STATUSES: [Status; 2] = [Status::Active, Status::Deleted];
const READ_STATES: [ReadState; 2] = [ReadState::Unread, ReadState::Read];
const ACTION_STATES: [UserActionState; 4] = [
    UserActionState::NoInteraction,
    UserActionState::Activated,
    UserActionState::Dismissed,
    UserActionState::Snoozed,
];
const CHANGE_KINDS: [ChangeKind; 4] = [
    ChangeKind::Created,
    ChangeKind::Replaced,
    ChangeKind::State,
    ChangeKind::Deleted,
];

/// A notification on disk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NotificationRecord {
    id: [u8; 16],
    app: String,
    user: String,
    app_notification_id: String,
    group_name: Option<String>,
    target_host_name: String,
    visual: Option<(String, Option<String>)>,
    raw: Option<String>,
    platforms: Vec<u8>,
    priority: u8,
    display_time_to_live: Option<u32>,
    expiration: i64,
    created_at: i64,
    last_modified_at: Option<i64>,
    status: u8,
    read_state: u8,
    user_action_state: u8,
    change_seq: u64,
}

impl From<&Notification> for NotificationRecord {
    fn from(notification: &Notification) -> Self {
        Self {
            id: *notification.id.as_bytes(),
            app: notification.feed.app.as_str().to_owned(),
            user: notification.feed.user.as_str().to_owned(),
            app_notification_id: notification.app_notification_id.as_str().to_owned(),
            group_name: notification
                .group_name
                .as_ref()
                .map(|g| g.as_str().to_owned()),
            target_host_name: notification.target_host_name.as_str().to_owned(),
            visual: notification
                .payload
                .visual()
                .map(|visual| (visual.title.clone(), visual.body.clone())),
            raw: notification.payload.raw().map(str::to_owned),
            platforms: notification
                .target_policy
                .platforms()
                .map(platform_code)
                .collect(),
            priority: code_of(&PRIORITIES, notification.priority),
            display_time_to_live: notification
                .display_time_to_live
                .map(DisplayTimeToLive::seconds),
            expiration: notification.expiration.unix_millis(),
            created_at: notification.created_at.unix_millis(),
            last_modified_at: notification.last_modified_at.map(Timestamp::unix_millis),
            status: code_of(&STATUSES, notification.status),
            read_state: code_of(&READ_STATES, notification.read_state),
            user_action_state: code_of(&ACTION_STATES, notification.user_action_state),
            change_seq: notification.change_seq.value(),
        }
    }
}

impl NotificationRecord {
    /// Back to the domain, re-validating every field.
    pub(crate) fn into_domain(self, key: &[u8]) -> Result<Notification, StoreError> {
        let visual = self
            .visual
            .map(|(title, body)| VisualContent { title, body });
        let platforms = self
            .platforms
            .iter()
            .map(|&code| platform_from(key, code))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Notification {
            id: NotificationId::from_uuid(Uuid::from_bytes(self.id)),
            feed: FeedKey {
                app: field(key, "app", AppId::new(self.app))?,
                user: field(key, "user", UserId::new(self.user))?,
            },
            app_notification_id: field(
                key,
                "appNotificationId",
                AppNotificationId::new(self.app_notification_id),
            )?,
            group_name: self
                .group_name
                .map(|group| field(key, "groupName", GroupName::new(group)))
                .transpose()?,
            target_host_name: field(key, "targetHostName", HostName::new(self.target_host_name))?,
            payload: field(key, "payload", Payload::new(visual, self.raw))?,
            target_policy: TargetPolicy::new(platforms),
            priority: value_of(key, "priority", &PRIORITIES, self.priority)?,
            display_time_to_live: self
                .display_time_to_live
                .map(|seconds| {
                    field(
                        key,
                        "displayTimeToLive",
                        DisplayTimeToLive::new(seconds.into()),
                    )
                })
                .transpose()?,
            expiration: Timestamp::from_unix_millis(self.expiration),
            created_at: Timestamp::from_unix_millis(self.created_at),
            last_modified_at: self.last_modified_at.map(Timestamp::from_unix_millis),
            status: value_of(key, "status", &STATUSES, self.status)?,
            read_state: value_of(key, "readState", &READ_STATES, self.read_state)?,
            user_action_state: value_of(
                key,
                "userActionState",
                &ACTION_STATES,
                self.user_action_state,
            )?,
            change_seq: ChangeSeq::new(self.change_seq),
        })
    }
}

/// A push channel on disk.
#[derive(Debug, Serialize, Deserialize)]
enum ChannelRecord {
    Wns(String),
    Fcm(String),
    Apns {
        device_token: String,
        topic: String,
        sandbox: bool,
    },
    WebPush {
        endpoint: String,
        p256dh: Vec<u8>,
        auth: Vec<u8>,
    },
}

/// A subscription on disk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SubscriptionRecord {
    id: [u8; 16],
    app: String,
    user: String,
    client_id: String,
    channel: ChannelRecord,
    created_at: i64,
    expires_at: i64,
}

impl From<&Subscription> for SubscriptionRecord {
    fn from(subscription: &Subscription) -> Self {
        let channel = match &subscription.channel {
            PushChannel::Wns { channel_uri } => ChannelRecord::Wns(channel_uri.as_str().to_owned()),
            PushChannel::Fcm { registration_token } => {
                ChannelRecord::Fcm(registration_token.clone())
            }
            PushChannel::Apns {
                device_token,
                topic,
                environment,
            } => ChannelRecord::Apns {
                device_token: device_token.clone(),
                topic: topic.clone(),
                sandbox: *environment == ApnsEnvironment::Sandbox,
            },
            PushChannel::WebPush {
                endpoint,
                p256dh,
                auth,
            } => ChannelRecord::WebPush {
                endpoint: endpoint.as_str().to_owned(),
                p256dh: p256dh.clone(),
                auth: auth.clone(),
            },
        };
        Self {
            id: *subscription.id.as_bytes(),
            app: subscription.feed.app.as_str().to_owned(),
            user: subscription.feed.user.as_str().to_owned(),
            client_id: subscription.client_id.as_str().to_owned(),
            channel,
            created_at: subscription.created_at.unix_millis(),
            expires_at: subscription.expires_at.unix_millis(),
        }
    }
}

impl SubscriptionRecord {
    /// Back to the domain, re-validating every field.
    pub(crate) fn into_domain(self, key: &[u8]) -> Result<Subscription, StoreError> {
        let url =
            |text: &str| field(key, "channel", url::Url::parse(text)).map(ChannelUrl::from_trusted);
        let channel = match self.channel {
            ChannelRecord::Wns(uri) => PushChannel::Wns {
                channel_uri: url(&uri)?,
            },
            ChannelRecord::Fcm(registration_token) => PushChannel::Fcm { registration_token },
            ChannelRecord::Apns {
                device_token,
                topic,
                sandbox,
            } => PushChannel::Apns {
                device_token,
                topic,
                environment: if sandbox {
                    ApnsEnvironment::Sandbox
                } else {
                    ApnsEnvironment::Production
                },
            },
            ChannelRecord::WebPush {
                endpoint,
                p256dh,
                auth,
            } => PushChannel::WebPush {
                endpoint: url(&endpoint)?,
                p256dh,
                auth,
            },
        };
        Ok(Subscription {
            id: SubscriptionId::from_uuid(Uuid::from_bytes(self.id)),
            feed: FeedKey {
                app: field(key, "app", AppId::new(self.app))?,
                user: field(key, "user", UserId::new(self.user))?,
            },
            client_id: field(key, "clientId", ClientId::new(self.client_id))?,
            channel,
            created_at: Timestamp::from_unix_millis(self.created_at),
            expires_at: Timestamp::from_unix_millis(self.expires_at),
        })
    }
}

/// A delivery job on disk; the (notification, subscription) pair is its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    app: String,
    user: String,
    platform: u8,
    change: u8,
    change_seq: u64,
    due: i64,
    attempts: u32,
    expires_at: i64,
    /// Set while the job is leased: when the lease ends.
    leased_until: Option<i64>,
    /// Whether the job waits for an in-flight send of an older change to the same endpoint,
    /// so pushes of one notification never overtake each other.
    waits_for_in_flight: bool,
}

impl JobRecord {
    /// The record of `job` in `feed`.
    pub(crate) fn new(job: &DeliveryJob, feed: &FeedKey) -> Self {
        Self {
            app: feed.app.as_str().to_owned(),
            user: feed.user.as_str().to_owned(),
            platform: platform_code(job.platform),
            change: code_of(&CHANGE_KINDS, job.change),
            change_seq: job.change_seq.value(),
            due: job.due.unix_millis(),
            attempts: job.attempts,
            expires_at: job.expires_at.unix_millis(),
            leased_until: None,
            waits_for_in_flight: false,
        }
    }

    /// Marks the job leased until `until`.
    pub(crate) fn leased_until(mut self, until: Timestamp) -> Self {
        self.leased_until = Some(until.unix_millis());
        self
    }

    /// Marks the job as waiting for an older in-flight send.
    pub(crate) fn waiting_for_in_flight(mut self, waiting: bool) -> Self {
        self.waits_for_in_flight = waiting;
        self
    }

    /// When the lease of a leased job ends.
    pub(crate) fn lease_end(&self) -> Option<Timestamp> {
        self.leased_until.map(Timestamp::from_unix_millis)
    }

    /// Whether it waits for an older in-flight send.
    pub(crate) fn waits_for_in_flight(&self) -> bool {
        self.waits_for_in_flight
    }

    /// What this stored job is, at `now`, to a newer job for its key — the queue rules'
    /// view of it. `withdraw_handed_over` is asked only about a job leased now: whether it
    /// was only handed over to the dispatcher, never taken (and is withdrawn).
    pub(crate) fn queued(
        &self,
        now: Timestamp,
        withdraw_handed_over: impl FnOnce() -> bool,
    ) -> notif_core::queue::Queued {
        use notif_core::queue::Queued;
        let change_seq = ChangeSeq::new(self.change_seq);
        match self.lease_end().filter(|lease_end| *lease_end > now) {
            Some(_) if withdraw_handed_over() => Queued::HandedOver { change_seq },
            Some(lease_end) => Queued::InFlight {
                change_seq,
                lease_end,
            },
            None if self.waits_for_in_flight && Timestamp::from_unix_millis(self.due) > now => {
                Queued::Waiting {
                    change_seq,
                    until: Timestamp::from_unix_millis(self.due),
                }
            }
            None => Queued::Pending { change_seq },
        }
    }

    /// Whether this stored job is `leased`, under the lease that returned it: the same
    /// change, and the lease's end (its token) unchanged since.
    pub(crate) fn is_lease_of(&self, leased: &DeliveryJob) -> bool {
        self.change_seq == leased.change_seq.value() && self.lease_end() == Some(leased.due)
    }

    /// The change this job pushes.
    pub(crate) fn change_seq(&self) -> ChangeSeq {
        ChangeSeq::new(self.change_seq)
    }

    /// Back to the domain: the feed and the job.
    pub(crate) fn into_domain(self, key: &[u8]) -> Result<(FeedKey, DeliveryJob), StoreError> {
        let notification =
            crate::keys::uuid_at(key, 0).ok_or_else(|| corrupt(key, "job key".into()))?;
        let subscription =
            crate::keys::uuid_at(key, 16).ok_or_else(|| corrupt(key, "job key".into()))?;
        let feed = FeedKey {
            app: field(key, "app", AppId::new(self.app))?,
            user: field(key, "user", UserId::new(self.user))?,
        };
        let job = DeliveryJob {
            notification: NotificationId::from_uuid(notification),
            subscription: SubscriptionId::from_uuid(subscription),
            platform: platform_from(key, self.platform)?,
            change: value_of(key, "change", &CHANGE_KINDS, self.change)?,
            change_seq: ChangeSeq::new(self.change_seq),
            due: Timestamp::from_unix_millis(self.due),
            attempts: self.attempts,
            expires_at: Timestamp::from_unix_millis(self.expires_at),
        };
        Ok((feed, job))
    }
}

/// A delivery state on disk.
#[derive(Debug, Serialize, Deserialize)]
enum StateRecord {
    Pending,
    Delivered(i64),
    Retrying(i64),
    Failed(String),
    EndpointGone,
    Expired,
    /// Delivered with the alert text shortened to fit (added after `Expired`, so records
    /// written before it still decode).
    DeliveredShortened(i64),
}

/// A delivery-status record on disk; the (notification, subscription) pair is its key.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StatusRecord {
    platform: u8,
    state: StateRecord,
    attempts: u32,
    updated_at: i64,
}

impl From<&DeliveryRecord> for StatusRecord {
    fn from(record: &DeliveryRecord) -> Self {
        let state = match &record.state {
            DeliveryState::Pending => StateRecord::Pending,
            DeliveryState::Delivered {
                at,
                text_shortened: false,
            } => StateRecord::Delivered(at.unix_millis()),
            DeliveryState::Delivered {
                at,
                text_shortened: true,
            } => StateRecord::DeliveredShortened(at.unix_millis()),
            DeliveryState::Retrying { next_attempt } => {
                StateRecord::Retrying(next_attempt.unix_millis())
            }
            DeliveryState::Failed { reason } => StateRecord::Failed(reason.clone()),
            DeliveryState::EndpointGone => StateRecord::EndpointGone,
            DeliveryState::Expired => StateRecord::Expired,
        };
        Self {
            platform: platform_code(record.platform),
            state,
            attempts: record.attempts,
            updated_at: record.updated_at.unix_millis(),
        }
    }
}

impl StatusRecord {
    /// Back to the domain.
    pub(crate) fn into_domain(self, key: &[u8]) -> Result<DeliveryRecord, StoreError> {
        let notification =
            crate::keys::uuid_at(key, 0).ok_or_else(|| corrupt(key, "status key".into()))?;
        let subscription =
            crate::keys::uuid_at(key, 16).ok_or_else(|| corrupt(key, "status key".into()))?;
        let state = match self.state {
            StateRecord::Pending => DeliveryState::Pending,
            StateRecord::Delivered(at) => DeliveryState::Delivered {
                at: Timestamp::from_unix_millis(at),
                text_shortened: false,
            },
            StateRecord::DeliveredShortened(at) => DeliveryState::Delivered {
                at: Timestamp::from_unix_millis(at),
                text_shortened: true,
            },
            StateRecord::Retrying(at) => DeliveryState::Retrying {
                next_attempt: Timestamp::from_unix_millis(at),
            },
            StateRecord::Failed(reason) => DeliveryState::Failed { reason },
            StateRecord::EndpointGone => DeliveryState::EndpointGone,
            StateRecord::Expired => DeliveryState::Expired,
        };
        Ok(DeliveryRecord {
            notification: NotificationId::from_uuid(notification),
            subscription: SubscriptionId::from_uuid(subscription),
            platform: platform_from(key, self.platform)?,
            state,
            attempts: self.attempts,
            updated_at: Timestamp::from_unix_millis(self.updated_at),
        })
    }
}

/// A feed's counters on disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FeedMeta {
    /// The last change number taken.
    pub(crate) last_seq: u64,
    /// Active unread notifications.
    pub(crate) unread: u64,
}

/// The ids of a group's notifications on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    /// The members.
    pub(crate) ids: Vec<[u8; 16]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use notif_core::notification::{
        DraftContext, Limits, NotificationDraft, Scalar, VisualContentDraft,
    };

    fn notification() -> Notification {
        let feed = FeedKey {
            app: AppId::new("demo").unwrap(),
            user: UserId::new("alice").unwrap(),
        };
        let host = HostName::new("graphnotifications.sample.windows.com").unwrap();
        let draft = NotificationDraft {
            target_host_name: Some(host.to_string()),
            app_notification_id: Some("n1".into()),
            group_name: Some("g".into()),
            visual_content: Some(VisualContentDraft {
                title: Some("t".into()),
                body: Some("b".into()),
            }),
            raw_content: Some("raw".into()),
            platform_types: vec!["ios".into(), "web".into()],
            priority: Some(Scalar::Text("low".into())),
            display_time_to_live: Some(Scalar::Number(30)),
            expiration_date_time: None,
        };
        let mut notification = draft
            .validate(
                NotificationId::from_parts(5, [3; 10]),
                DraftContext {
                    feed: &feed,
                    app_host: &host,
                    now: Timestamp::from_unix_millis(1_000),
                    limits: &Limits::default(),
                },
            )
            .unwrap();
        notification.read_state = ReadState::Read;
        notification.user_action_state = UserActionState::Snoozed;
        notification.status = Status::Deleted;
        notification.last_modified_at = Some(Timestamp::from_unix_millis(2_000));
        notification.change_seq = ChangeSeq::new(42);
        notification
    }

    #[test]
    fn a_notification_reads_back_unchanged() {
        let original = notification();
        let bytes = encode(&NotificationRecord::from(&original));
        assert_eq!(bytes[0], VERSION);
        let decoded = decode::<NotificationRecord>(b"k", &bytes)
            .unwrap()
            .into_domain(b"k")
            .unwrap();
        assert_eq!(decoded, original);
    }

    #[test]
    fn every_channel_reads_back_unchanged() {
        let url = |text: &str| ChannelUrl::from_trusted(url::Url::parse(text).unwrap());
        let channels = [
            PushChannel::Wns {
                channel_uri: url("https://db5.notify.windows.com/?token=a"),
            },
            PushChannel::Fcm {
                registration_token: "tok".into(),
            },
            PushChannel::Apns {
                device_token: "ab".repeat(32),
                topic: "com.example".into(),
                environment: ApnsEnvironment::Sandbox,
            },
            PushChannel::WebPush {
                endpoint: url("https://fcm.googleapis.com/fcm/send/x"),
                p256dh: vec![4; 65],
                auth: vec![1; 16],
            },
        ];
        for channel in channels {
            let original = Subscription {
                id: SubscriptionId::from_parts(9, [1; 10]),
                feed: notification().feed,
                client_id: ClientId::new("device").unwrap(),
                channel,
                created_at: Timestamp::from_unix_millis(10),
                expires_at: Timestamp::from_unix_millis(20),
            };
            let bytes = encode(&SubscriptionRecord::from(&original));
            let decoded = decode::<SubscriptionRecord>(b"k", &bytes)
                .unwrap()
                .into_domain(b"k")
                .unwrap();
            assert_eq!(decoded, original);
        }
    }

    #[test]
    fn jobs_and_statuses_read_back_unchanged() {
        let feed = notification().feed;
        let job = DeliveryJob {
            notification: NotificationId::from_parts(1, [1; 10]),
            subscription: SubscriptionId::from_parts(2, [2; 10]),
            platform: Platform::Windows,
            change: ChangeKind::Deleted,
            change_seq: ChangeSeq::new(7),
            due: Timestamp::from_unix_millis(-5),
            attempts: 3,
            expires_at: Timestamp::from_unix_millis(99),
        };
        let key = crate::keys::job_key(job.notification, job.subscription);
        let bytes = encode(&JobRecord::new(&job, &feed));
        let decoded = decode::<JobRecord>(&key, &bytes)
            .unwrap()
            .into_domain(&key)
            .unwrap();
        assert_eq!(decoded, (feed, job.clone()));
        for state in [
            DeliveryState::Pending,
            DeliveryState::Delivered {
                at: Timestamp::from_unix_millis(3),
                text_shortened: false,
            },
            DeliveryState::Delivered {
                at: Timestamp::from_unix_millis(3),
                text_shortened: true,
            },
            DeliveryState::Retrying {
                next_attempt: Timestamp::from_unix_millis(4),
            },
            DeliveryState::Failed {
                reason: "BadTopic".into(),
            },
            DeliveryState::EndpointGone,
            DeliveryState::Expired,
        ] {
            let record = DeliveryRecord {
                state,
                ..DeliveryRecord::pending(&job, Timestamp::from_unix_millis(8))
            };
            let bytes = encode(&StatusRecord::from(&record));
            let decoded = decode::<StatusRecord>(&key, &bytes)
                .unwrap()
                .into_domain(&key)
                .unwrap();
            assert_eq!(decoded, record);
        }
    }

    #[test]
    fn garbage_is_reported_with_its_key() {
        for bytes in [&[][..], &[VERSION, 0xff, 0xff][..], &[99, 1, 2][..]] {
            match decode::<NotificationRecord>(&[0xab, 0x01], bytes) {
                Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "ab01"),
                other => panic!("expected a corrupt-record error, got {other:?}"),
            }
        }
    }
}

/// A signing key of the identity provider on disk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SigningKeyRecord {
    kid: String,
    pkcs8: Vec<u8>,
}

impl From<&notif_core::ports::StoredSigningKey> for SigningKeyRecord {
    fn from(key: &notif_core::ports::StoredSigningKey) -> Self {
        Self {
            kid: key.kid.clone(),
            pkcs8: key.pkcs8.clone(),
        }
    }
}

impl From<SigningKeyRecord> for notif_core::ports::StoredSigningKey {
    fn from(record: SigningKeyRecord) -> Self {
        Self {
            kid: record.kid,
            pkcs8: record.pkcs8,
        }
    }
}

/// A refresh token's grant on disk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GrantRecord {
    user: String,
    client: String,
    expires_at: i64,
    used: bool,
}

impl GrantRecord {
    /// An unspent grant.
    pub(crate) fn new(grant: &notif_core::ports::RefreshGrant) -> Self {
        Self {
            user: grant.user.as_str().to_owned(),
            client: grant.client.as_str().to_owned(),
            expires_at: grant.expires_at.unix_millis(),
            used: false,
        }
    }

    /// When it expires.
    pub(crate) fn expires_at(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.expires_at)
    }

    /// Spends it, by the rule every store keeps: once, by its own client, before it expires.
    pub(crate) fn spend(
        &mut self,
        key: &[u8],
        client: &ClientId,
        now: Timestamp,
    ) -> Result<notif_core::ports::SpentRefresh, StoreError> {
        use notif_core::ports::{RefreshGrant, SpentRefresh};
        if let Some(refused) =
            refresh_refusal(self.used, &self.client, client, self.expires_at(), now)
        {
            return Ok(refused);
        }
        self.used = true;
        Ok(SpentRefresh::Granted(RefreshGrant {
            user: field(key, "user", UserId::new(self.user.clone()))?,
            client: field(key, "client", ClientId::new(self.client.clone()))?,
            expires_at: self.expires_at(),
        }))
    }
}

/// Why a refresh token presented by `presented_by` at `now` cannot be spent, by the rule
/// every store keeps — once, by the client it was issued to, before it expires; `None` when
/// it can.
pub(crate) fn refresh_refusal(
    used: bool,
    issued_to: &str,
    presented_by: &ClientId,
    expires_at: Timestamp,
    now: Timestamp,
) -> Option<notif_core::ports::SpentRefresh> {
    use notif_core::ports::SpentRefresh;
    if used {
        Some(SpentRefresh::AlreadyUsed)
    } else if issued_to != presented_by.as_str() {
        Some(SpentRefresh::OtherClient)
    } else if expires_at <= now {
        Some(SpentRefresh::Expired)
    } else {
        None
    }
}
