//! Fan-out planning: which device endpoints a change goes to, as delivery jobs.

use crate::fallback::JobFallback;
use crate::ids::{NotificationId, SubscriptionId};
use crate::notification::{ChangeSeq, Notification};
use crate::platform::Platform;
use crate::subscription::Subscription;
use crate::time::Timestamp;

/// What happened to a notification, as carried in push envelopes and change streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Newly created.
    Created,
    /// Replaced by a create with the same `appNotificationId`.
    Replaced,
    /// Read or user-action state changed.
    State,
    /// Deleted (now a tombstone).
    Deleted,
}

impl ChangeKind {
    /// The envelope name: `created`, `replaced`, `state`, `deleted`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Replaced => "replaced",
            ChangeKind::State => "state",
            ChangeKind::Deleted => "deleted",
        }
    }

    /// Whether the change only syncs state a device already has content for. Such changes are
    /// never pushed to Web Push endpoints: a browser must show something for every push, so
    /// web clients learn of them through the feed instead.
    pub const fn is_sync(self) -> bool {
        matches!(self, ChangeKind::State | ChangeKind::Deleted)
    }
}

/// One push to deliver: the latest change of one notification to one subscription.
///
/// Jobs are keyed by (notification, subscription): a newer change supersedes a pending job
/// for the same pair, so a device never receives stale pushes queued behind fresh ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryJob {
    /// The notification.
    pub notification: NotificationId,
    /// The endpoint.
    pub subscription: SubscriptionId,
    /// The endpoint's platform.
    pub platform: Platform,
    /// The change being pushed.
    pub change: ChangeKind,
    /// The change's sequence number; completing a job only removes it if it is still this one.
    pub change_seq: ChangeSeq,
    /// When the next attempt is due.
    pub due: Timestamp,
    /// Attempts made so far.
    pub attempts: u32,
    /// The notification's expiration: the job is dropped after it.
    pub expires_at: Timestamp,
    /// Its fallback stage: an ordinary push, a raw push a visual one may follow, or that
    /// visual push.
    pub fallback: JobFallback,
}

impl DeliveryJob {
    /// The job's identity: the (notification, subscription) pair.
    pub fn key(&self) -> (NotificationId, SubscriptionId) {
        (self.notification, self.subscription)
    }
}

/// Plans the pushes for one change of `notification`: one job per live subscription of the
/// same app and user whose platform the target policy includes — except that sync changes
/// (state, deletion) skip Web Push, and an expired notification is not pushed at all. A
/// content-carrying push to a platform of the notification's fallback policy is armed.
pub fn plan_fan_out(
    notification: &Notification,
    change: ChangeKind,
    subscriptions: &[Subscription],
    now: Timestamp,
) -> Vec<DeliveryJob> {
    if notification.expiration <= now {
        return Vec::new();
    }
    subscriptions
        .iter()
        .filter(|subscription| subscription.feed == notification.feed)
        .filter(|subscription| subscription.is_live(now))
        .filter(|subscription| {
            let platform = subscription.channel.platform();
            notification.target_policy.includes(platform)
                && !(change.is_sync() && platform == Platform::WebPush)
        })
        .map(|subscription| {
            let platform = subscription.channel.platform();
            DeliveryJob {
                notification: notification.id,
                subscription: subscription.id,
                platform,
                change,
                change_seq: notification.change_seq,
                due: now,
                attempts: 0,
                expires_at: notification.expiration,
                fallback: notification.fallback_for(platform, change),
            }
        })
        .collect()
}
