//! The use cases, written once against the ports: every server and embedder calls these.

use std::fmt;
use std::sync::Arc;

use crate::app::{Action, App, NamedSubscription, Principal, authorize};
use crate::delivery::DeliveryRecord;
use crate::error::Error;
use crate::fanout::ChangeKind;
use crate::feed::{FeedOp, FeedWrite, StateChange, Target};
use crate::ids::{NotificationId, SubscriptionId};
use crate::notification::{
    ChangeSeq, DraftContext, FeedKey, Limits, Notification, NotificationDraft,
};
use crate::ports::{
    AppRegistry, ChangePage, Clock, FeedEvents, IdGenerator, ListPage, ListQuery,
    NotificationStore, SubscribeOutcome, SubscriptionStore,
};
use crate::subscription::{ChannelDraft, ChannelPolicy, Subscription};
use crate::validation::ValidationErrors;

/// The ports the use cases run on.
#[derive(Debug, Clone)]
pub struct Ports {
    /// Feeds, change log, jobs and delivery status.
    pub notifications: Arc<dyn NotificationStore>,
    /// Device subscriptions.
    pub subscriptions: Arc<dyn SubscriptionStore>,
    /// The cross-device apps.
    pub apps: Arc<dyn AppRegistry>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Where durable writes are announced: feed watchers and the dispatcher wake on them.
    pub events: Arc<dyn FeedEvents>,
}

/// Who is calling: the verified principal and, for app-only callers, the subscription id
/// that names the user (`X-UNS-ID`).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The verified principal.
    pub principal: &'a Principal,
    /// The subscription id an app-only caller names the user with, as received.
    pub subscription_id: Option<&'a str>,
}

/// The result of a create: the stored notification and whether it replaced a live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The notification as stored (a replacement keeps the replaced one's id).
    pub notification: Notification,
    /// Whether a live notification with the same `appNotificationId` was replaced.
    pub replaced: bool,
}

/// Where a reader of a feed's changes starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// After this change (zero: from the beginning).
    After(ChangeSeq),
    /// After the feed's last change: only changes from now on (the Graph reader's "start
    /// position End").
    Latest,
}

/// The notif use cases.
pub struct NotifService {
    ports: Ports,
    limits: Limits,
    channel_policy: ChannelPolicy,
}

impl fmt::Debug for NotifService {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("NotifService")
            .field("limits", &self.limits)
            .field("channel_policy", &self.channel_policy)
            .finish_non_exhaustive()
    }
}

impl NotifService {
    /// The use cases over `ports`, with content limits and the channel URL policy.
    pub fn new(ports: Ports, limits: Limits, channel_policy: ChannelPolicy) -> Self {
        Self {
            ports,
            limits,
            channel_policy,
        }
    }

    /// The ports, for components (such as the dispatcher) that share them.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Resolves the one feed (and app) the caller acts in — the CreatedByApp rule.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] or [`Error::NotFound`] (for a foreign or missing
    /// subscription id), or [`Error::Invalid`] for a malformed subscription id.
    pub async fn authorize(
        &self,
        caller: Caller<'_>,
        action: Action,
    ) -> Result<(FeedKey, App), Error> {
        let app = self.ports.apps.app_for_client(&caller.principal.client_id);
        let found;
        let named = match caller.subscription_id {
            None => NamedSubscription::None,
            // A delegated caller is its own user; a subscription id it sends is not consulted.
            Some(_) if caller.principal.is_delegated() => NamedSubscription::None,
            Some(text) => {
                let id = SubscriptionId::parse(text).map_err(|error| {
                    ValidationErrors::single("subscriptionId", error.to_string())
                })?;
                found = self.ports.subscriptions.subscription(id).await?;
                found
                    .as_ref()
                    .map_or(NamedSubscription::Missing, NamedSubscription::Found)
            }
        };
        let feed = authorize(caller.principal, app.as_ref(), action, named)?;
        let app = app.ok_or(Error::NotFound)?;
        Ok((feed, app))
    }

    /// Creates a notification, or replaces the caller's live one with the same
    /// `appNotificationId`; its pushes are queued in the same atomic step.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming each bad field, or an authorization or storage error.
    pub async fn create(
        &self,
        caller: Caller<'_>,
        draft: NotificationDraft,
    ) -> Result<Created, Error> {
        let (feed, app) = self.authorize(caller, Action::UseFeed).await?;
        let now = self.ports.clock.now();
        let id = self.ports.ids.notification_id(now);
        let candidate = draft.validate(
            id,
            DraftContext {
                feed: &feed,
                app_host: &app.host_name,
                now,
                limits: &self.limits,
            },
        )?;
        let write = self
            .ports
            .notifications
            .write(&feed, FeedOp::Upsert(Box::new(candidate)), now)
            .await?;
        self.announce(&feed, &write);
        let (notification, kind) = write
            .changes
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("an upsert wrote nothing".into()))?;
        Ok(Created {
            notification,
            replaced: kind == ChangeKind::Replaced,
        })
    }

    /// One notification of the caller's feed, tombstones included.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the feed has no such notification.
    pub async fn get(&self, caller: Caller<'_>, id: NotificationId) -> Result<Notification, Error> {
        let (feed, _) = self.authorize(caller, Action::UseFeed).await?;
        let now = self.ports.clock.now();
        let notification = self
            .ports
            .notifications
            .get(&feed, id, now)
            .await?
            .ok_or(Error::NotFound)?;
        self.note_fetch(caller, &feed, [&notification]).await?;
        Ok(notification)
    }

    /// Records that the device the caller names (`X-UNS-ID`, `subscription_id`) fetched
    /// `read`, so fallbacks of those notifications are not sent to it. Reads that name no
    /// subscription, or read no notification with a fallback policy, write nothing; an
    /// unreadable subscription id fails nothing (the read itself already succeeded).
    async fn note_fetch<'n>(
        &self,
        caller: Caller<'_>,
        feed: &FeedKey,
        read: impl IntoIterator<Item = &'n Notification>,
    ) -> Result<(), Error> {
        let Some(subscription) = caller
            .subscription_id
            .and_then(|text| SubscriptionId::parse(text).ok())
        else {
            return Ok(());
        };
        let now = self.ports.clock.now();
        let ids: Vec<NotificationId> = read
            .into_iter()
            .filter(|notification| {
                notification.fallback_policy.is_some() && notification.is_live(now)
            })
            .map(|notification| notification.id)
            .collect();
        if !ids.is_empty() {
            self.ports
                .notifications
                .record_fetch(feed, subscription, &ids, now)
                .await?;
        }
        Ok(())
    }

    /// The device `subscription` acknowledges one of the caller's notifications: it has it,
    /// so no fallback push follows (`POST /me/notifications/{id}/acknowledge`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the feed has no such live notification or the user no such
    /// subscription; authorization or storage errors.
    pub async fn acknowledge(
        &self,
        caller: Caller<'_>,
        id: NotificationId,
        subscription: SubscriptionId,
    ) -> Result<(), Error> {
        let (feed, _) = self.authorize(caller, Action::UseFeed).await?;
        let now = self.ports.clock.now();
        let notification = self.ports.notifications.get(&feed, id, now).await?;
        let device = self.ports.subscriptions.subscription(subscription).await?;
        let live = notification.is_some_and(|notification| notification.is_live(now));
        let users_device = device.is_some_and(|device| device.feed == feed);
        if !(live && users_device) {
            return Err(Error::NotFound);
        }
        self.ports
            .notifications
            .record_fetch(&feed, subscription, &[id], now)
            .await?;
        Ok(())
    }

    /// A page of the caller's feed, newest first.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero page size; authorization or storage errors.
    pub async fn list(&self, caller: Caller<'_>, query: &ListQuery) -> Result<ListPage, Error> {
        if query.page_size == 0 || query.page_size > 1000 {
            return Err(ValidationErrors::single("pageSize", "must be between 1 and 1000").into());
        }
        let (feed, _) = self.authorize(caller, Action::UseFeed).await?;
        let now = self.ports.clock.now();
        let page = self.ports.notifications.list(&feed, query, now).await?;
        self.note_fetch(caller, &feed, &page.notifications).await?;
        Ok(page)
    }

    /// Changes the read and/or user-action state of the targeted notification(s); the change
    /// is synced to the user's other endpoints (not Web Push). A notification already in the
    /// requested state is returned as it is: nothing is written, synced or pushed for it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when nothing live is targeted.
    pub async fn update_state(
        &self,
        caller: Caller<'_>,
        target: Target,
        change: StateChange,
    ) -> Result<Vec<Notification>, Error> {
        self.write(caller, FeedOp::UpdateState { target, change })
            .await
    }

    /// Deletes the targeted notification(s), leaving tombstones that sync the removal.
    ///
    /// # Errors
    /// [`Error::NotFound`] when nothing live is targeted.
    pub async fn delete(
        &self,
        caller: Caller<'_>,
        target: Target,
    ) -> Result<Vec<Notification>, Error> {
        self.write(caller, FeedOp::Delete(target)).await
    }

    async fn write(&self, caller: Caller<'_>, op: FeedOp) -> Result<Vec<Notification>, Error> {
        let (feed, _) = self.authorize(caller, Action::UseFeed).await?;
        let now = self.ports.clock.now();
        let write = self.ports.notifications.write(&feed, op, now).await?;
        self.announce(&feed, &write);
        let mut addressed: Vec<Notification> = write
            .changes
            .into_iter()
            .map(|(notification, _)| notification)
            .chain(write.unchanged)
            .collect();
        addressed.sort_by_key(|notification| notification.id);
        Ok(addressed)
    }

    /// Announces a durable write: its feed's new last change number, and due jobs. A write
    /// that changed nothing announces nothing.
    fn announce(&self, feed: &FeedKey, write: &FeedWrite) {
        if write.changes.is_empty() {
            return;
        }
        self.ports.events.feed_changed(feed, write.last_seq);
        if !write.jobs.is_empty() {
            self.ports.events.jobs_due();
        }
    }

    /// The changes of the caller's feed after `cursor`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero limit; authorization or storage errors.
    pub async fn changes_since(
        &self,
        caller: Caller<'_>,
        cursor: ChangeSeq,
        limit: usize,
    ) -> Result<ChangePage, Error> {
        if limit == 0 || limit > 1000 {
            return Err(ValidationErrors::single("limit", "must be between 1 and 1000").into());
        }
        let (feed, _) = self.authorize(caller, Action::UseFeed).await?;
        let page = self
            .ports
            .notifications
            .changes_since(&feed, cursor, limit, self.ports.clock.now())
            .await?;
        self.note_fetch(caller, &feed, &page.changes).await?;
        Ok(page)
    }

    /// Where the caller's feed reading starts for `cursor`: after the given change, or — for
    /// [`Cursor::Latest`] — after the feed's last change, so only changes from now on follow.
    ///
    /// # Errors
    /// Authorization or storage errors.
    pub async fn resolve_cursor(
        &self,
        caller: Caller<'_>,
        cursor: Cursor,
    ) -> Result<ChangeSeq, Error> {
        match cursor {
            Cursor::After(seq) => Ok(seq),
            Cursor::Latest => {
                let (feed, _) = self.authorize(caller, Action::UseFeed).await?;
                Ok(self.ports.notifications.last_change(&feed).await?)
            }
        }
    }

    /// The delivery status of one of the caller's notifications at each endpoint.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the feed has no such notification.
    pub async fn delivery_status(
        &self,
        caller: Caller<'_>,
        id: NotificationId,
    ) -> Result<Vec<DeliveryRecord>, Error> {
        let (feed, _) = self.authorize(caller, Action::UseFeed).await?;
        let now = self.ports.clock.now();
        if self
            .ports
            .notifications
            .get(&feed, id, now)
            .await?
            .is_none()
        {
            return Err(Error::NotFound);
        }
        Ok(self.ports.notifications.delivery_status(&feed, id).await?)
    }

    /// Registers (or renews) a device endpoint of the calling user.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the bad channel field; [`Error::LimitExceeded`] at the cap.
    pub async fn subscribe(
        &self,
        caller: Caller<'_>,
        draft: ChannelDraft,
    ) -> Result<SubscribeOutcome, Error> {
        let (feed, _) = self.authorize(caller, Action::ManageSubscriptions).await?;
        let channel = draft.validate(&self.channel_policy)?;
        let now = self.ports.clock.now();
        let candidate = Subscription {
            id: self.ports.ids.subscription_id(now),
            feed,
            client_id: caller.principal.client_id.clone(),
            channel,
            created_at: now,
            expires_at: now.saturating_add(self.limits.subscription_lifetime),
        };
        Ok(self
            .ports
            .subscriptions
            .subscribe(candidate, self.limits.max_subscriptions_per_user)
            .await?)
    }

    /// The calling user's live subscriptions in the app.
    ///
    /// # Errors
    /// Authorization or storage errors.
    pub async fn subscriptions(&self, caller: Caller<'_>) -> Result<Vec<Subscription>, Error> {
        let (feed, _) = self.authorize(caller, Action::ManageSubscriptions).await?;
        let now = self.ports.clock.now();
        let mut subscriptions = self.ports.subscriptions.subscriptions(&feed).await?;
        // Lapsed ones receive nothing and are swept soon; they are not the user's any more.
        subscriptions.retain(|subscription| subscription.is_live(now));
        Ok(subscriptions)
    }

    /// Removes one of the calling user's subscriptions.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the user has no such subscription.
    pub async fn unsubscribe(&self, caller: Caller<'_>, id: SubscriptionId) -> Result<(), Error> {
        let (feed, _) = self.authorize(caller, Action::ManageSubscriptions).await?;
        Ok(self.ports.subscriptions.unsubscribe(&feed, id).await?)
    }
}
