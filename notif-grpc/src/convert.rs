//! Conversions between protobuf messages and domain types, in one place: `TryFrom` for inputs,
//! `From` for outputs.

use notif_core::delivery::{DeliveryRecord, DeliveryState};
use notif_core::fallback::FallbackPolicyDraft;
use notif_core::feed::{StateChange, Target};
use notif_core::ids::{AppNotificationId, GroupName, NotificationId, SubscriptionId};
use notif_core::notification::{
    ChangeSeq, Notification, NotificationDraft, ReadState, Scalar, Status, UserActionState,
    VisualContentDraft,
};
use notif_core::platform::{Platform, Priority};
use notif_core::ports::ListQuery;
use notif_core::subscription::{ChannelDraft, Subscription};
use notif_core::time::Timestamp;

use crate::error::ApiError;
use crate::pb;

/// A domain instant as a protobuf timestamp.
pub(crate) fn timestamp(time: Timestamp) -> prost_types::Timestamp {
    let millis = time.unix_millis();
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: i32::try_from(millis.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

fn from_timestamp(time: &prost_types::Timestamp) -> Timestamp {
    let nanos_as_millis = i64::from(time.nanos.clamp(0, 999_999_999)) / 1_000_000;
    Timestamp::from_unix_millis(
        time.seconds
            .saturating_mul(1000)
            .saturating_add(nanos_as_millis),
    )
}

pub(crate) fn platform(platform: Platform) -> pb::Platform {
    match platform {
        Platform::Windows => pb::Platform::Windows,
        Platform::Android => pb::Platform::Android,
        Platform::Ios => pb::Platform::Ios,
        Platform::WebPush => pb::Platform::WebPush,
    }
}

fn priority(priority: Priority) -> pb::Priority {
    match priority {
        Priority::None => pb::Priority::None,
        Priority::High => pb::Priority::High,
        Priority::Low => pb::Priority::Low,
    }
}

fn read_state(state: ReadState) -> pb::ReadState {
    match state {
        ReadState::Unread => pb::ReadState::Unread,
        ReadState::Read => pb::ReadState::Read,
    }
}

fn user_action_state(state: UserActionState) -> pb::UserActionState {
    match state {
        UserActionState::NoInteraction => pb::UserActionState::NoInteraction,
        UserActionState::Activated => pb::UserActionState::Activated,
        UserActionState::Dismissed => pb::UserActionState::Dismissed,
        UserActionState::Snoozed => pb::UserActionState::Snoozed,
    }
}

fn status(status: Status) -> pb::Status {
    match status {
        Status::Active => pb::Status::Active,
        Status::Deleted => pb::Status::Deleted,
    }
}

impl From<&Notification> for pb::Notification {
    fn from(notification: &Notification) -> Self {
        Self {
            id: notification.id.to_string(),
            app_notification_id: notification.app_notification_id.as_str().to_owned(),
            group_name: notification
                .group_name
                .as_ref()
                .map(|group| group.as_str().to_owned()),
            target_host_name: notification.target_host_name.as_str().to_owned(),
            visual_content: notification
                .payload
                .visual()
                .map(|visual| pb::VisualContent {
                    title: visual.title.clone(),
                    body: visual.body.clone(),
                }),
            raw_content: notification.payload.raw().map(str::to_owned),
            platform_types: notification
                .target_policy
                .platforms()
                .map(|p| platform(p) as i32)
                .collect(),
            priority: priority(notification.priority) as i32,
            display_time_to_live: notification
                .display_time_to_live
                .map(|ttl| i64::from(ttl.seconds())),
            expiration: Some(timestamp(notification.expiration)),
            created_at: Some(timestamp(notification.created_at)),
            last_modified_at: notification.last_modified_at.map(timestamp),
            status: status(notification.status) as i32,
            read_state: read_state(notification.read_state) as i32,
            user_action_state: user_action_state(notification.user_action_state) as i32,
            change_seq: notification.change_seq.value(),
            fallback_policy: notification.fallback_policy.as_ref().map(|policy| {
                pb::FallbackPolicy {
                    platform_types: policy.platforms().map(|p| platform(p) as i32).collect(),
                    fallback_delay_in_seconds: u32::from(policy.delay_seconds()),
                }
            }),
        }
    }
}

impl From<pb::CreateNotificationRequest> for NotificationDraft {
    fn from(request: pb::CreateNotificationRequest) -> Self {
        Self {
            target_host_name: Some(request.target_host_name).filter(|host| !host.is_empty()),
            app_notification_id: Some(request.app_notification_id),
            group_name: request.group_name,
            visual_content: request.visual_content.map(|visual| VisualContentDraft {
                title: Some(visual.title),
                body: visual.body,
            }),
            raw_content: request.raw_content,
            platform_types: request.platform_types,
            fallback_policy: request.fallback_policy.map(|policy| FallbackPolicyDraft {
                platform_types: policy.platform_types,
                fallback_delay_in_seconds: policy.fallback_delay_in_seconds.map(Scalar::Number),
            }),
            priority: request.priority.map(Scalar::Text),
            display_time_to_live: request.display_time_to_live.map(Scalar::Number),
            expiration_date_time: request
                .expiration
                .map(|time| from_timestamp(&time).to_rfc3339()),
        }
    }
}

/// Parses a notification id from `field`.
pub(crate) fn notification_id(field: &str, text: &str) -> Result<NotificationId, ApiError> {
    NotificationId::parse(text).map_err(|error| ApiError::invalid(field, error.to_string()))
}

/// Parses a subscription id from `field`.
pub(crate) fn subscription_id(field: &str, text: &str) -> Result<SubscriptionId, ApiError> {
    SubscriptionId::parse(text).map_err(|error| ApiError::invalid(field, error.to_string()))
}

/// A target from an `id` / `app_notification_id` oneof.
fn target_by_id_or_key(id: Option<&str>, key: Option<&str>) -> Result<Target, ApiError> {
    match (id, key) {
        (Some(id), _) => Ok(Target::Id(notification_id("id", id)?)),
        (None, Some(key)) => AppNotificationId::new(key)
            .map(Target::AppNotificationId)
            .map_err(|error| ApiError::invalid("app_notification_id", error.to_string())),
        (None, None) => Err(ApiError::invalid(
            "target",
            "id or app_notification_id is required",
        )),
    }
}

/// Reads the `target` oneof (`id` or `app_notification_id`) of a request message.
macro_rules! target_from_wire {
    ($function:ident, $message:ident) => {
        /// The notification the request's `target` oneof names.
        pub(crate) fn $function(target: Option<&pb::$message::Target>) -> Result<Target, ApiError> {
            match target {
                Some(pb::$message::Target::Id(id)) => target_by_id_or_key(Some(id), None),
                Some(pb::$message::Target::AppNotificationId(key)) => {
                    target_by_id_or_key(None, Some(key))
                }
                None => target_by_id_or_key(None, None),
            }
        }
    };
}

target_from_wire!(update_target, update_notification_state_request);
target_from_wire!(delete_target, delete_notification_request);

/// A group target.
pub(crate) fn group_target(field: &str, name: &str) -> Result<Target, ApiError> {
    GroupName::new(name)
        .map(Target::Group)
        .map_err(|error| ApiError::invalid(field, error.to_string()))
}

fn domain_read_state(value: i32) -> Result<Option<ReadState>, ApiError> {
    match pb::ReadState::try_from(value) {
        Ok(pb::ReadState::Unspecified) => Ok(None),
        Ok(pb::ReadState::Unread) => Ok(Some(ReadState::Unread)),
        Ok(pb::ReadState::Read) => Ok(Some(ReadState::Read)),
        Err(_) => Err(ApiError::invalid(
            "read_state",
            format!("unknown value {value}"),
        )),
    }
}

fn domain_user_action_state(value: i32) -> Result<Option<UserActionState>, ApiError> {
    match pb::UserActionState::try_from(value) {
        Ok(pb::UserActionState::Unspecified) => Ok(None),
        Ok(pb::UserActionState::NoInteraction) => Ok(Some(UserActionState::NoInteraction)),
        Ok(pb::UserActionState::Activated) => Ok(Some(UserActionState::Activated)),
        Ok(pb::UserActionState::Dismissed) => Ok(Some(UserActionState::Dismissed)),
        Ok(pb::UserActionState::Snoozed) => Ok(Some(UserActionState::Snoozed)),
        Err(_) => Err(ApiError::invalid(
            "user_action_state",
            format!("unknown value {value}"),
        )),
    }
}

/// A state change from the request's enums (unspecified = unchanged).
pub(crate) fn state_change(read: i32, action: i32) -> Result<StateChange, ApiError> {
    Ok(StateChange::new(
        domain_read_state(read)?,
        domain_user_action_state(action)?,
    )?)
}

impl TryFrom<&pb::ListNotificationsRequest> for ListQuery {
    type Error = ApiError;

    fn try_from(request: &pb::ListNotificationsRequest) -> Result<Self, ApiError> {
        let status = if request.include_deleted {
            None
        } else {
            match pb::Status::try_from(request.status) {
                Ok(pb::Status::Unspecified | pb::Status::Active) => Some(Status::Active),
                Ok(pb::Status::Deleted) => Some(Status::Deleted),
                Err(_) => {
                    return Err(ApiError::invalid(
                        "status",
                        format!("unknown value {}", request.status),
                    ));
                }
            }
        };
        Ok(ListQuery {
            status,
            read_state: domain_read_state(request.read_state)?,
            user_action_state: domain_user_action_state(request.user_action_state)?,
            group: request
                .group_name
                .as_deref()
                .map(|name| {
                    GroupName::new(name)
                        .map_err(|error| ApiError::invalid("group_name", error.to_string()))
                })
                .transpose()?,
            page_size: if request.page_size == 0 {
                50
            } else {
                request.page_size as usize
            },
            page_token: match request.page_token.as_str() {
                "" => None,
                token => Some(notification_id("page_token", token)?),
            },
            scan_budget: notif_core::ports::LIST_SCAN_BUDGET,
        })
    }
}

impl From<pb::SubscribeRequest> for ChannelDraft {
    fn from(request: pb::SubscribeRequest) -> Self {
        let present = |text: String| Some(text).filter(|text| !text.is_empty());
        Self {
            platform: present(request.platform),
            channel_uri: present(request.channel_uri),
            registration_token: present(request.registration_token),
            device_token: present(request.device_token),
            topic: present(request.topic),
            environment: present(request.environment),
            endpoint: present(request.endpoint),
            p256dh: present(request.p256dh),
            auth: present(request.auth),
        }
    }
}

impl From<&Subscription> for pb::Subscription {
    fn from(subscription: &Subscription) -> Self {
        Self {
            id: subscription.id.to_string(),
            platform: platform(subscription.channel.platform()) as i32,
            expiration: Some(timestamp(subscription.expires_at)),
            created_at: Some(timestamp(subscription.created_at)),
            client_id: subscription.client_id.as_str().to_owned(),
        }
    }
}

impl From<&DeliveryRecord> for pb::EndpointDelivery {
    fn from(record: &DeliveryRecord) -> Self {
        let text_shortened = matches!(
            record.state,
            DeliveryState::Delivered {
                text_shortened: true,
                ..
            } | DeliveryState::FallbackDelivered {
                text_shortened: true,
                ..
            }
        );
        let (state, at, reason) = match &record.state {
            DeliveryState::Pending => (pb::DeliveryState::Pending, None, String::new()),
            DeliveryState::Delivered { at, .. } => (
                pb::DeliveryState::Delivered,
                Some(timestamp(*at)),
                String::new(),
            ),
            DeliveryState::Retrying { next_attempt } => (
                pb::DeliveryState::Retrying,
                Some(timestamp(*next_attempt)),
                String::new(),
            ),
            DeliveryState::Failed { reason } => (pb::DeliveryState::Failed, None, reason.clone()),
            DeliveryState::EndpointGone => (pb::DeliveryState::EndpointGone, None, String::new()),
            DeliveryState::Expired => (pb::DeliveryState::Expired, None, String::new()),
            DeliveryState::AwaitingFetch { fallback_at } => (
                pb::DeliveryState::AwaitingFetch,
                Some(timestamp(*fallback_at)),
                String::new(),
            ),
            DeliveryState::Fetched { at } => (
                pb::DeliveryState::Fetched,
                Some(timestamp(*at)),
                String::new(),
            ),
            DeliveryState::FallbackDelivered { at, .. } => (
                pb::DeliveryState::FallbackDelivered,
                Some(timestamp(*at)),
                String::new(),
            ),
        };
        Self {
            subscription_id: record.subscription.to_string(),
            platform: platform(record.platform) as i32,
            state: state as i32,
            attempts: record.attempts,
            at,
            reason,
            updated_at: Some(timestamp(record.updated_at)),
            text_shortened,
        }
    }
}

/// A change cursor from the wire.
pub(crate) fn cursor(value: u64, from_latest: bool) -> notif_core::service::Cursor {
    if from_latest {
        notif_core::service::Cursor::Latest
    } else {
        notif_core::service::Cursor::After(ChangeSeq::new(value))
    }
}
