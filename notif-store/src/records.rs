//! The on-disk record types: private, versioned (a leading version byte, then postcard), and
//! converted to and from the domain in one place. Decoding re-validates every field, so a
//! corrupt record is reported by key instead of entering the domain.

use notif_core::delivery::{DeliveryRecord, DeliveryState};
use notif_core::fallback::{FallbackPolicy, JobFallback};
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

/// A record type on disk: postcard behind a leading version byte.
///
/// A record that gains fields gets a new version; its earlier versions keep decoding, with
/// the added fields at their defaults. Records nest their first version's fields first, so
/// a later version is the earlier one's bytes followed by the added fields.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// The version this build writes.
    const VERSION: u8 = 1;

    /// Decodes the postcard of a record of an earlier `version`.
    fn decode_earlier(version: u8, bytes: &[u8]) -> Result<Self, String> {
        let _ = bytes;
        Err(format!("unknown record version {version}"))
    }
}

/// Encodes a record: the version byte, then postcard.
pub(crate) fn encode<T: Record>(record: &T) -> Vec<u8> {
    let mut bytes = vec![T::VERSION];
    // postcard only fails on writers that run out of space or on types serde cannot
    // express; a Vec writer and these plain records can do neither.
    if let Ok(encoded) = postcard::to_stdvec(record) {
        bytes.extend_from_slice(&encoded);
    }
    bytes
}

/// Decodes a record written by [`encode`] (of this version or an earlier one), naming `key`
/// when it cannot.
pub(crate) fn decode<T: Record>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&version, rest)) if version == T::VERSION => {
            postcard::from_bytes(rest).map_err(|error| corrupt(key, error.to_string()))
        }
        Some((&version, rest)) if version < T::VERSION => {
            T::decode_earlier(version, rest).map_err(|reason| corrupt(key, reason))
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

/// A notification on disk (version 2: version 1's fields, then the fallback policy).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NotificationRecord {
    first: NotificationFields,
    fallback: Option<FallbackRecord>,
}

/// A fallback policy on disk.
#[derive(Debug, Serialize, Deserialize)]
struct FallbackRecord {
    platforms: Vec<u8>,
    delay_seconds: u16,
}

impl Record for NotificationRecord {
    const VERSION: u8 = 2;

    fn decode_earlier(version: u8, bytes: &[u8]) -> Result<Self, String> {
        match version {
            1 => Ok(Self {
                first: postcard::from_bytes(bytes).map_err(|error| error.to_string())?,
                fallback: None,
            }),
            _ => Err(format!("unknown record version {version}")),
        }
    }
}

/// A notification's fields as version 1 wrote them.
#[derive(Debug, Serialize, Deserialize)]
struct NotificationFields {
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
        let fallback = notification
            .fallback_policy
            .as_ref()
            .map(|policy| FallbackRecord {
                platforms: policy.platforms().map(platform_code).collect(),
                delay_seconds: policy.delay_seconds(),
            });
        let first = NotificationFields {
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
        };
        Self { first, fallback }
    }
}

impl NotificationRecord {
    /// Back to the domain, re-validating every field.
    pub(crate) fn into_domain(self, key: &[u8]) -> Result<Notification, StoreError> {
        let fallback_policy = self
            .fallback
            .map(|fallback| {
                let platforms = fallback
                    .platforms
                    .iter()
                    .map(|&code| platform_from(key, code))
                    .collect::<Result<Vec<_>, _>>()?;
                field(
                    key,
                    "fallbackPolicy",
                    FallbackPolicy::new(platforms, fallback.delay_seconds.into()),
                )
            })
            .transpose()?;
        let first = self.first;
        let visual = first
            .visual
            .map(|(title, body)| VisualContent { title, body });
        let platforms = first
            .platforms
            .iter()
            .map(|&code| platform_from(key, code))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Notification {
            id: NotificationId::from_uuid(Uuid::from_bytes(first.id)),
            feed: FeedKey {
                app: field(key, "app", AppId::new(first.app))?,
                user: field(key, "user", UserId::new(first.user))?,
            },
            app_notification_id: field(
                key,
                "appNotificationId",
                AppNotificationId::new(first.app_notification_id),
            )?,
            group_name: first
                .group_name
                .map(|group| field(key, "groupName", GroupName::new(group)))
                .transpose()?,
            target_host_name: field(key, "targetHostName", HostName::new(first.target_host_name))?,
            payload: field(key, "payload", Payload::new(visual, first.raw))?,
            target_policy: TargetPolicy::new(platforms),
            fallback_policy,
            priority: value_of(key, "priority", &PRIORITIES, first.priority)?,
            display_time_to_live: first
                .display_time_to_live
                .map(|seconds| {
                    field(
                        key,
                        "displayTimeToLive",
                        DisplayTimeToLive::new(seconds.into()),
                    )
                })
                .transpose()?,
            expiration: Timestamp::from_unix_millis(first.expiration),
            created_at: Timestamp::from_unix_millis(first.created_at),
            last_modified_at: first.last_modified_at.map(Timestamp::from_unix_millis),
            status: value_of(key, "status", &STATUSES, first.status)?,
            read_state: value_of(key, "readState", &READ_STATES, first.read_state)?,
            user_action_state: value_of(
                key,
                "userActionState",
                &ACTION_STATES,
                first.user_action_state,
            )?,
            change_seq: ChangeSeq::new(first.change_seq),
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

impl Record for SubscriptionRecord {}

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

/// A delivery job on disk (version 2: version 1's fields, then the fallback stage); the
/// (notification, subscription) pair is its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    first: JobFields,
    fallback: FallbackStage,
}

/// A job's fallback stage on disk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum FallbackStage {
    None,
    /// Armed, with the delay in milliseconds.
    Armed(u64),
    Visual,
}

impl From<JobFallback> for FallbackStage {
    fn from(fallback: JobFallback) -> Self {
        match fallback {
            JobFallback::None => FallbackStage::None,
            JobFallback::Armed { after } => {
                FallbackStage::Armed(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
            }
            JobFallback::Visual => FallbackStage::Visual,
        }
    }
}

impl From<FallbackStage> for JobFallback {
    fn from(stage: FallbackStage) -> Self {
        match stage {
            FallbackStage::None => JobFallback::None,
            FallbackStage::Armed(millis) => JobFallback::Armed {
                after: std::time::Duration::from_millis(millis),
            },
            FallbackStage::Visual => JobFallback::Visual,
        }
    }
}

impl Record for JobRecord {
    const VERSION: u8 = 2;

    fn decode_earlier(version: u8, bytes: &[u8]) -> Result<Self, String> {
        match version {
            1 => Ok(Self {
                first: postcard::from_bytes(bytes).map_err(|error| error.to_string())?,
                fallback: FallbackStage::None,
            }),
            _ => Err(format!("unknown record version {version}")),
        }
    }
}

/// A job's fields as version 1 wrote them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobFields {
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
        let first = JobFields {
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
        };
        Self {
            first,
            fallback: job.fallback.into(),
        }
    }

    /// Marks the job leased until `until`.
    pub(crate) fn leased_until(mut self, until: Timestamp) -> Self {
        self.first.leased_until = Some(until.unix_millis());
        self
    }

    /// Marks the job as waiting for an older in-flight send.
    pub(crate) fn waiting_for_in_flight(mut self, waiting: bool) -> Self {
        self.first.waits_for_in_flight = waiting;
        self
    }

    /// The same job, its fallback disarmed: no visual push follows its raw one.
    pub(crate) fn disarmed(mut self) -> Self {
        self.fallback = FallbackStage::None;
        self
    }

    /// When the lease of a leased job ends.
    pub(crate) fn lease_end(&self) -> Option<Timestamp> {
        self.first.leased_until.map(Timestamp::from_unix_millis)
    }

    /// Whether it waits for an older in-flight send.
    pub(crate) fn waits_for_in_flight(&self) -> bool {
        self.first.waits_for_in_flight
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
        let change_seq = ChangeSeq::new(self.first.change_seq);
        match self.lease_end().filter(|lease_end| *lease_end > now) {
            Some(_) if withdraw_handed_over() => Queued::HandedOver { change_seq },
            Some(lease_end) => Queued::InFlight {
                change_seq,
                lease_end,
            },
            None if self.first.waits_for_in_flight
                && Timestamp::from_unix_millis(self.first.due) > now =>
            {
                Queued::Waiting {
                    change_seq,
                    until: Timestamp::from_unix_millis(self.first.due),
                }
            }
            None => Queued::Pending { change_seq },
        }
    }

    /// Whether this stored job is `leased`, under the lease that returned it: the same
    /// change, and the lease's end (its token) unchanged since.
    pub(crate) fn is_lease_of(&self, leased: &DeliveryJob) -> bool {
        self.first.change_seq == leased.change_seq.value() && self.lease_end() == Some(leased.due)
    }

    /// The change this job pushes.
    pub(crate) fn change_seq(&self) -> ChangeSeq {
        ChangeSeq::new(self.first.change_seq)
    }

    /// Back to the domain: the feed and the job.
    pub(crate) fn into_domain(self, key: &[u8]) -> Result<(FeedKey, DeliveryJob), StoreError> {
        let notification =
            crate::keys::uuid_at(key, 0).ok_or_else(|| corrupt(key, "job key".into()))?;
        let subscription =
            crate::keys::uuid_at(key, 16).ok_or_else(|| corrupt(key, "job key".into()))?;
        let feed = FeedKey {
            app: field(key, "app", AppId::new(self.first.app))?,
            user: field(key, "user", UserId::new(self.first.user))?,
        };
        let job = DeliveryJob {
            notification: NotificationId::from_uuid(notification),
            subscription: SubscriptionId::from_uuid(subscription),
            platform: platform_from(key, self.first.platform)?,
            change: value_of(key, "change", &CHANGE_KINDS, self.first.change)?,
            change_seq: ChangeSeq::new(self.first.change_seq),
            due: Timestamp::from_unix_millis(self.first.due),
            attempts: self.first.attempts,
            expires_at: Timestamp::from_unix_millis(self.first.expires_at),
            fallback: self.fallback.into(),
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
    /// written before it still decode; so are the ones below).
    DeliveredShortened(i64),
    /// A fallback's raw push delivered; the visual push due then.
    AwaitingFetch(i64),
    /// Fetched by the device then.
    Fetched(i64),
    /// A fallback's visual push delivered then; whether its text was shortened.
    FallbackDelivered(i64, bool),
}

/// A delivery-status record on disk; the (notification, subscription) pair is its key.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StatusRecord {
    platform: u8,
    state: StateRecord,
    attempts: u32,
    updated_at: i64,
}

impl Record for StatusRecord {}

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
            DeliveryState::AwaitingFetch { fallback_at } => {
                StateRecord::AwaitingFetch(fallback_at.unix_millis())
            }
            DeliveryState::Fetched { at } => StateRecord::Fetched(at.unix_millis()),
            DeliveryState::FallbackDelivered { at, text_shortened } => {
                StateRecord::FallbackDelivered(at.unix_millis(), *text_shortened)
            }
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
            StateRecord::AwaitingFetch(at) => DeliveryState::AwaitingFetch {
                fallback_at: Timestamp::from_unix_millis(at),
            },
            StateRecord::Fetched(at) => DeliveryState::Fetched {
                at: Timestamp::from_unix_millis(at),
            },
            StateRecord::FallbackDelivered(at, text_shortened) => {
                DeliveryState::FallbackDelivered {
                    at: Timestamp::from_unix_millis(at),
                    text_shortened,
                }
            }
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

impl Record for FeedMeta {}

/// The ids of a group's notifications on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    /// The members.
    pub(crate) ids: Vec<[u8; 16]>,
}

impl Record for GroupRecord {}

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
            fallback_policy: Some(notif_core::fallback::FallbackPolicyDraft {
                platform_types: vec!["iOS".into(), "android".into()],
                fallback_delay_in_seconds: Some(Scalar::Number(90)),
            }),
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
        assert!(original.fallback_policy.is_some());
        let bytes = encode(&NotificationRecord::from(&original));
        assert_eq!(bytes[0], NotificationRecord::VERSION);
        let decoded = decode::<NotificationRecord>(b"k", &bytes)
            .unwrap()
            .into_domain(b"k")
            .unwrap();
        assert_eq!(decoded, original);
    }

    #[test]
    fn records_written_before_the_fallback_policy_still_decode() {
        let original = notification();
        let mut version_1 = vec![1];
        version_1.extend(postcard::to_stdvec(&NotificationRecord::from(&original).first).unwrap());
        let decoded = decode::<NotificationRecord>(b"k", &version_1)
            .unwrap()
            .into_domain(b"k")
            .unwrap();
        assert_eq!(
            decoded,
            Notification {
                fallback_policy: None,
                ..original.clone()
            }
        );
        let job = DeliveryJob {
            notification: NotificationId::from_parts(1, [1; 10]),
            subscription: SubscriptionId::from_parts(2, [2; 10]),
            platform: Platform::Ios,
            change: ChangeKind::Created,
            change_seq: ChangeSeq::new(7),
            due: Timestamp::from_unix_millis(5),
            attempts: 0,
            expires_at: Timestamp::from_unix_millis(99),
            fallback: JobFallback::Visual,
        };
        let key = crate::keys::job_key(job.notification, job.subscription);
        let mut version_1 = vec![1];
        version_1.extend(postcard::to_stdvec(&JobRecord::new(&job, &original.feed).first).unwrap());
        let (_, decoded) = decode::<JobRecord>(&key, &version_1)
            .unwrap()
            .into_domain(&key)
            .unwrap();
        assert_eq!(
            decoded,
            DeliveryJob {
                fallback: JobFallback::None,
                ..job
            }
        );
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
            fallback: JobFallback::None,
        };
        let key = crate::keys::job_key(job.notification, job.subscription);
        for fallback in [
            JobFallback::None,
            JobFallback::Armed {
                after: std::time::Duration::from_secs(600),
            },
            JobFallback::Visual,
        ] {
            let job = DeliveryJob {
                fallback,
                ..job.clone()
            };
            let bytes = encode(&JobRecord::new(&job, &feed));
            let decoded = decode::<JobRecord>(&key, &bytes)
                .unwrap()
                .into_domain(&key)
                .unwrap();
            assert_eq!(decoded, (feed.clone(), job));
        }
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
            DeliveryState::AwaitingFetch {
                fallback_at: Timestamp::from_unix_millis(5),
            },
            DeliveryState::Fetched {
                at: Timestamp::from_unix_millis(6),
            },
            DeliveryState::FallbackDelivered {
                at: Timestamp::from_unix_millis(7),
                text_shortened: true,
            },
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
        for bytes in [
            &[][..],
            &[NotificationRecord::VERSION, 0xff, 0xff][..],
            &[1, 0xff][..],
            &[99, 1, 2][..],
        ] {
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

impl Record for SigningKeyRecord {}

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

impl Record for GrantRecord {}

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
