//! Feed writes as pure functions: create-or-replace, state updates and deletes, each producing
//! the new notification versions, their change numbers and their delivery jobs. Stores apply
//! the result atomically; the rules live only here.

use crate::fanout::{ChangeKind, DeliveryJob, plan_fan_out};
use crate::ids::{AppNotificationId, GroupName, NotificationId};
use crate::notification::{ChangeSeq, Notification, ReadState, Status, UserActionState};
use crate::subscription::Subscription;
use crate::time::Timestamp;
use crate::validation::ValidationErrors;

/// Which notifications an operation addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One notification by its server id.
    Id(NotificationId),
    /// One notification by the app's own key.
    AppNotificationId(AppNotificationId),
    /// Every notification of a group.
    Group(GroupName),
}

impl Target {
    /// Whether `notification` is addressed by this target.
    pub fn matches(&self, notification: &Notification) -> bool {
        match self {
            Target::Id(id) => notification.id == *id,
            Target::AppNotificationId(key) => notification.app_notification_id == *key,
            Target::Group(group) => notification.group_name.as_ref() == Some(group),
        }
    }
}

/// A change of read and/or user-action state; at least one is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    read_state: Option<ReadState>,
    user_action_state: Option<UserActionState>,
}

impl StateChange {
    /// A change of either state or both.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming `readState` when neither is given.
    pub fn new(
        read_state: Option<ReadState>,
        user_action_state: Option<UserActionState>,
    ) -> Result<Self, ValidationErrors> {
        if read_state.is_none() && user_action_state.is_none() {
            return Err(ValidationErrors::single(
                "readState",
                "readState or userActionState is required",
            ));
        }
        Ok(Self {
            read_state,
            user_action_state,
        })
    }

    /// The new read state, if it changes.
    pub fn read_state(&self) -> Option<ReadState> {
        self.read_state
    }

    /// The new user-action state, if it changes.
    pub fn user_action_state(&self) -> Option<UserActionState> {
        self.user_action_state
    }
}

/// A write to one feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedOp {
    /// Create this (validated, new) notification, or replace the live one with the same
    /// `appNotificationId`.
    Upsert(Box<Notification>),
    /// Change the state of the targeted live notification(s).
    UpdateState {
        /// What to change.
        target: Target,
        /// The new state.
        change: StateChange,
    },
    /// Delete the targeted live notification(s), leaving tombstones.
    Delete(Target),
}

impl FeedOp {
    /// The target the store must resolve to current notifications before [`apply`]: for an
    /// upsert, the live notification with the same `appNotificationId`.
    pub fn target(&self) -> Target {
        match self {
            FeedOp::Upsert(candidate) => {
                Target::AppNotificationId(candidate.app_notification_id.clone())
            }
            FeedOp::UpdateState { target, .. } | FeedOp::Delete(target) => target.clone(),
        }
    }
}

/// What one feed write produces, for the store to persist in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedWrite {
    /// The new version of every notification written, each with its change kind and its own
    /// change number, in order.
    pub changes: Vec<(Notification, ChangeKind)>,
    /// The addressed notifications the write leaves as they are (a state update to the state
    /// they already have): no new version, no change number, no push.
    pub unchanged: Vec<Notification>,
    /// The pushes to deliver; each supersedes a pending job for the same pair.
    pub jobs: Vec<DeliveryJob>,
    /// The feed's last change number after the write.
    pub last_seq: ChangeSeq,
}

/// Why a feed write cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The target addresses no live notification of the feed.
    #[error("notification not found")]
    NotFound,
}

/// The current state a write is applied to, as the store read it.
#[derive(Debug, Clone, Copy)]
pub struct FeedState<'a> {
    /// The notifications the op's [`FeedOp::target`] resolved to (the store may include
    /// non-live ones; they are ignored).
    pub current: &'a [Notification],
    /// The feed's last change number.
    pub last_seq: ChangeSeq,
    /// The user's subscriptions in the app.
    pub subscriptions: &'a [Subscription],
    /// The current time.
    pub now: Timestamp,
}

/// Applies `op` to the feed state, returning everything the store must write.
///
/// # Errors
/// [`FeedError::NotFound`] when a state update or delete addresses no live notification.
pub fn apply(op: FeedOp, state: FeedState<'_>) -> Result<FeedWrite, FeedError> {
    let FeedState {
        current,
        last_seq,
        subscriptions,
        now,
    } = state;
    let target = op.target();
    let mut live: Vec<&Notification> = current
        .iter()
        .filter(|notification| notification.is_live(now) && target.matches(notification))
        .collect();
    live.sort_by_key(|notification| notification.id);

    let mut last_seq = last_seq;
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    let mut next_version = |mut notification: Notification, kind: ChangeKind| {
        last_seq = last_seq.next();
        notification.change_seq = last_seq;
        changes.push((notification, kind));
    };
    match op {
        FeedOp::Upsert(candidate) => match live.first() {
            None => next_version(*candidate, ChangeKind::Created),
            Some(existing) => next_version(
                Notification {
                    id: existing.id,
                    created_at: existing.created_at,
                    last_modified_at: Some(now),
                    ..*candidate
                },
                ChangeKind::Replaced,
            ),
        },
        FeedOp::UpdateState { change, .. } => {
            if live.is_empty() {
                return Err(FeedError::NotFound);
            }
            for existing in live {
                let mut updated = existing.clone();
                updated.read_state = change.read_state.unwrap_or(updated.read_state);
                updated.user_action_state = change
                    .user_action_state
                    .unwrap_or(updated.user_action_state);
                let changes_nothing = updated.read_state == existing.read_state
                    && updated.user_action_state == existing.user_action_state;
                if changes_nothing {
                    // Devices repeat state they already sent: it is no change to sync.
                    unchanged.push(updated);
                    continue;
                }
                updated.last_modified_at = Some(now);
                next_version(updated, ChangeKind::State);
            }
        }
        FeedOp::Delete(_) => {
            if live.is_empty() {
                return Err(FeedError::NotFound);
            }
            for existing in live {
                let mut tombstone = existing.clone();
                tombstone.status = Status::Deleted;
                tombstone.last_modified_at = Some(now);
                next_version(tombstone, ChangeKind::Deleted);
            }
        }
    }
    let jobs = changes
        .iter()
        .flat_map(|(notification, kind)| plan_fan_out(notification, *kind, subscriptions, now))
        .collect();
    Ok(FeedWrite {
        changes,
        unchanged,
        jobs,
        last_seq,
    })
}
