//! The ports: the traits through which the domain reaches storage, identity, push providers,
//! time and id generation. Each adapter crate implements some of them.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::app::{App, Principal};
use crate::delivery::DeliveryOutcome;
use crate::delivery::{DeliveryRecord, Settlement};
use crate::fanout::DeliveryJob;
use crate::feed::{FeedError, FeedOp, FeedWrite};
use crate::ids::{ClientId, GroupName, NotificationId, SubscriptionId};
use crate::notification::{ChangeSeq, FeedKey, Notification, ReadState, Status, UserActionState};
use crate::platform::Platform;
use crate::push::PushMessage;
use crate::subscription::Subscription;
use crate::time::Timestamp;

/// The source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The source of new ids.
pub trait IdGenerator: Send + Sync + Debug {
    /// A new notification id created at `now` (UUID v7: sorts by creation).
    fn notification_id(&self, now: Timestamp) -> NotificationId;
    /// A new subscription id created at `now`.
    fn subscription_id(&self, now: Timestamp) -> SubscriptionId;
}

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The addressed item does not exist in the caller's feed.
    #[error("not found")]
    NotFound,
    /// A per-user limit would be exceeded.
    #[error("limit reached: at most {limit} {what}")]
    LimitExceeded {
        /// What is limited.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A stored record could not be decoded; the rest of the store keeps serving.
    #[error("stored record {key} could not be decoded: {reason}")]
    Corrupt {
        /// The record's key, printable.
        key: String,
        /// Why decoding failed.
        reason: String,
    },
    /// The storage engine failed or is shutting down; the request may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<FeedError> for StoreError {
    fn from(error: FeedError) -> Self {
        match error {
            FeedError::NotFound => StoreError::NotFound,
        }
    }
}

/// A feed listing request: filters and a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this status (default: active; `None` lists tombstones too).
    pub status: Option<Status>,
    /// Only this read state.
    pub read_state: Option<ReadState>,
    /// Only this user-action state.
    pub user_action_state: Option<UserActionState>,
    /// Only this group.
    pub group: Option<GroupName>,
    /// Most notifications in the page.
    pub page_size: usize,
    /// Continue after this id (the previous page's `next_page_token`).
    pub page_token: Option<NotificationId>,
    /// Most notifications a page may examine (default [`LIST_SCAN_BUDGET`]). A filter that
    /// matches few of them ends the page early, with a `next_page_token` after the last one
    /// examined, so one request never scans a whole large feed.
    pub scan_budget: usize,
}

/// The default [`ListQuery::scan_budget`]: on a 20,000-notification feed, a filter matching
/// nothing costs about as much as an unfiltered page, not a scan of the feed.
pub const LIST_SCAN_BUDGET: usize = 1_000;

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            status: Some(Status::Active),
            read_state: None,
            user_action_state: None,
            group: None,
            page_size: 50,
            page_token: None,
            scan_budget: LIST_SCAN_BUDGET,
        }
    }
}

impl ListQuery {
    /// Whether `notification` passes the filters (not the page bounds) at `now`; expired
    /// notifications never do.
    pub fn matches(&self, notification: &Notification, now: Timestamp) -> bool {
        notification.expiration > now
            && self
                .status
                .is_none_or(|status| notification.status == status)
            && self
                .read_state
                .is_none_or(|state| notification.read_state == state)
            && self
                .user_action_state
                .is_none_or(|state| notification.user_action_state == state)
            && self
                .group
                .as_ref()
                .is_none_or(|group| notification.group_name.as_ref() == Some(group))
    }
}

/// One page of a feed, newest first. It may hold fewer than `page_size` notifications and
/// still have a `next_page_token`, when its scan budget ran out first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The notifications.
    pub notifications: Vec<Notification>,
    /// Where the next page starts; `None` on the last page.
    pub next_page_token: Option<NotificationId>,
    /// Active unread notifications in the whole feed.
    pub unread_count: u64,
}

/// The changes of a feed after a cursor, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// The current version of every notification changed after the cursor, tombstones
    /// included, in change order; each appears once.
    pub changes: Vec<Notification>,
    /// The cursor to continue from.
    pub cursor: ChangeSeq,
    /// Whether more changes follow.
    pub has_more: bool,
}

/// The feeds: notifications, their change log, and their delivery jobs and status.
#[async_trait]
pub trait NotificationStore: Send + Sync + Debug {
    /// Applies `op` to the feed with [`crate::feed::apply`], persisting the new notification
    /// versions, their indexes and change-log entries and all their delivery jobs in one
    /// atomic, durable step; returns what was written.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the op addresses no live notification; otherwise a
    /// storage failure.
    async fn write(
        &self,
        feed: &FeedKey,
        op: FeedOp,
        now: Timestamp,
    ) -> Result<FeedWrite, StoreError>;

    /// A notification of the feed, tombstones included, unless expired.
    ///
    /// # Errors
    /// A storage failure.
    async fn get(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        now: Timestamp,
    ) -> Result<Option<Notification>, StoreError>;

    /// A page of the feed, newest first, with the unread count.
    ///
    /// # Errors
    /// A storage failure.
    async fn list(
        &self,
        feed: &FeedKey,
        query: &ListQuery,
        now: Timestamp,
    ) -> Result<ListPage, StoreError>;

    /// Up to `limit` changes after `cursor`; notifications expired at `now` have left the feed
    /// and are skipped (whether or not a sweep removed them yet).
    ///
    /// # Errors
    /// A storage failure.
    async fn changes_since(
        &self,
        feed: &FeedKey,
        cursor: ChangeSeq,
        limit: usize,
        now: Timestamp,
    ) -> Result<ChangePage, StoreError>;

    /// The feed's last change number: where a reader that wants only changes from now on
    /// starts. Zero for a feed never written.
    ///
    /// # Errors
    /// A storage failure.
    async fn last_change(&self, feed: &FeedKey) -> Result<ChangeSeq, StoreError>;

    /// The delivery status of a notification at each targeted endpoint.
    ///
    /// # Errors
    /// A storage failure.
    async fn delivery_status(
        &self,
        feed: &FeedKey,
        id: NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Records that the device of `subscription` fetched `notifications` of the feed at `now`
    /// (read them naming its subscription, or acknowledged them): a fallback armed or waiting
    /// for that device is stopped as [`crate::fallback::at_fetch`] decides, and its delivery
    /// status becomes [`crate::delivery::DeliveryState::Fetched`]. Returns how many
    /// fallbacks were stopped; jobs of other feeds are never touched.
    ///
    /// # Errors
    /// A storage failure.
    async fn record_fetch(
        &self,
        feed: &FeedKey,
        subscription: SubscriptionId,
        notifications: &[NotificationId],
        now: Timestamp,
    ) -> Result<usize, StoreError>;

    /// Removes up to `limit` notifications (live or tombstones), subscriptions and refresh
    /// grants expired at `now`, with their indexes and jobs; returns how many were removed.
    ///
    /// # Errors
    /// A storage failure.
    async fn expire(&self, now: Timestamp, limit: usize) -> Result<usize, StoreError>;
}

/// The answer to a subscribe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The stored subscription.
    pub subscription: Subscription,
    /// Whether an existing subscription with the same channel was renewed.
    pub renewed: bool,
}

/// Device subscriptions.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + Debug {
    /// Stores `candidate`, or renews the subscription of the same app with the same channel
    /// identity (keeping its id, taking the new user, keys and expiration — a device passed to
    /// another user stops receiving the first user's pushes).
    ///
    /// # Errors
    /// [`StoreError::LimitExceeded`] when the user already holds `max_per_user`.
    async fn subscribe(
        &self,
        candidate: Subscription,
        max_per_user: usize,
    ) -> Result<SubscribeOutcome, StoreError>;

    /// A subscription by id, whoever owns it.
    ///
    /// # Errors
    /// A storage failure.
    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, StoreError>;

    /// The feed's subscriptions, live or not.
    ///
    /// # Errors
    /// A storage failure.
    async fn subscriptions(&self, feed: &FeedKey) -> Result<Vec<Subscription>, StoreError>;

    /// Removes a subscription of the feed, with its pending jobs.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the feed has no such subscription.
    async fn unsubscribe(&self, feed: &FeedKey, id: SubscriptionId) -> Result<(), StoreError>;
}

/// A due job with what it takes to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedJob {
    /// The job.
    pub job: DeliveryJob,
    /// The notification's current version.
    pub notification: Notification,
    /// The endpoint.
    pub subscription: Subscription,
}

/// The durable queue of delivery jobs.
#[async_trait]
pub trait DeliveryQueue: Send + Sync + Debug {
    /// Leases up to `limit` jobs due at `now`: each becomes invisible to other leases for
    /// `lease`, after which it comes back (so a crashed dispatcher's jobs are not lost). Jobs
    /// whose notification expired are dropped and recorded as expired. A store may lease a
    /// job as it writes it, once a dispatcher leases; that lease then runs from the write.
    ///
    /// # Errors
    /// A storage failure.
    async fn lease_due(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedJob>, StoreError>;

    /// Applies the settlements of attempts, in one write, and records their delivery status. A
    /// job superseded by a newer change meanwhile is left to that change.
    ///
    /// # Errors
    /// A storage failure.
    async fn settle(
        &self,
        settlements: Vec<(DeliveryJob, Settlement)>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Gives back leased jobs that were not sent (as [`lease_due`](Self::lease_due) returned
    /// them): each is due again at `due`, its attempts unchanged. A job changed since
    /// (settled, superseded, leased again) is left as it is.
    ///
    /// # Errors
    /// A storage failure.
    async fn release(&self, jobs: Vec<DeliveryJob>, due: Timestamp) -> Result<(), StoreError>;

    /// When the earliest job is due, if any.
    ///
    /// # Errors
    /// A storage failure.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;
}

/// What operating a store takes beyond its data: health, figures for metrics, durability and
/// an orderly stop.
#[async_trait]
pub trait StoreAdmin: Send + Sync + Debug {
    /// Whether the store takes writes now.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] saying why not.
    fn health(&self) -> Result<(), StoreError>;

    /// How many delivery jobs are queued (pending, leased or waiting to retry). May read the
    /// whole queue: for metrics scrapes, not hot paths.
    ///
    /// # Errors
    /// A storage failure.
    async fn pending_jobs(&self) -> Result<u64, StoreError>;

    /// Writes made so far and their total latency (queueing and flush included).
    fn write_latency(&self) -> (u64, Duration);

    /// Waits until every write acknowledged so far is durable.
    ///
    /// # Errors
    /// A storage failure.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Gives back what this process holds (jobs leased but never sent become due again) and
    /// makes everything durable. The store's resources are released when its last handle is
    /// dropped.
    ///
    /// # Errors
    /// A storage failure.
    async fn close(&self) -> Result<(), StoreError>;
}

/// A signing key of the embedded identity provider, as stored: its key id and its private
/// key (a PKCS#8 document). Its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// The key id (`kid`).
    pub kid: String,
    /// The private key, PKCS#8 DER.
    pub pkcs8: Vec<u8>,
}

impl Debug for StoredSigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What a refresh token grants: new tokens for `user` on `client`, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    /// The user.
    pub user: crate::ids::UserId,
    /// The client it was issued to.
    pub client: ClientId,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpentRefresh {
    /// It was live and is spent now: its grant.
    Granted(RefreshGrant),
    /// It was spent before (refresh tokens rotate: a second use is refused).
    AlreadyUsed,
    /// It was issued to another client; it stays unspent.
    OtherClient,
    /// It expired.
    Expired,
    /// No such token.
    Unknown,
}

/// The embedded identity provider's state — its signing keys and its refresh-token grants —
/// kept in the store, so that every node of a cluster signs with the same keys and a refresh
/// token is spent once whichever nodes it is presented to.
#[async_trait]
pub trait IdentityStore: Send + Sync + Debug {
    /// The signing keys, oldest first; the newest signs.
    ///
    /// # Errors
    /// A storage failure.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Adds `key` as the newest signing key. With `first`, only when there is no key yet:
    /// two nodes starting at once each offer one, and both end up with whichever came first.
    /// Returns the keys after.
    ///
    /// # Errors
    /// A storage failure.
    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
        first: bool,
    ) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Records the grant of a refresh token, by the token's hash.
    ///
    /// # Errors
    /// A storage failure.
    async fn grant_refresh(&self, token_hash: &str, grant: RefreshGrant) -> Result<(), StoreError>;

    /// Spends the refresh token whose hash is `token_hash`, presented by `client` at `now`:
    /// at most once, atomically, whichever node it reaches.
    ///
    /// # Errors
    /// A storage failure.
    async fn spend_refresh(
        &self,
        token_hash: &str,
        client: &ClientId,
        now: Timestamp,
    ) -> Result<SpentRefresh, StoreError>;
}

/// Everything a store provides, as the ports the rest of the system holds: one store
/// implementation behind each.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The feeds.
    pub notifications: std::sync::Arc<dyn NotificationStore>,
    /// The device subscriptions.
    pub subscriptions: std::sync::Arc<dyn SubscriptionStore>,
    /// The delivery queue.
    pub queue: std::sync::Arc<dyn DeliveryQueue>,
    /// Operations.
    pub admin: std::sync::Arc<dyn StoreAdmin>,
    /// The embedded identity provider's state.
    pub identity: std::sync::Arc<dyn IdentityStore>,
}

impl Storage {
    /// The ports of `store`, one implementation of all of them.
    pub fn of<S>(store: std::sync::Arc<S>) -> Self
    where
        S: NotificationStore
            + SubscriptionStore
            + DeliveryQueue
            + StoreAdmin
            + IdentityStore
            + 'static,
    {
        Self {
            notifications: store.clone(),
            subscriptions: store.clone(),
            queue: store.clone(),
            admin: store.clone(),
            identity: store,
        }
    }
}

/// "Something changed": after a durable write, a feed's new last change number and that jobs
/// are due; and, for whoever waits on them, per-feed and job wake-ups.
///
/// An event is a hint, never the truth: subscribers re-read by cursor (a feed's changes after
/// the last `changeSeq` they applied; the queue's due jobs), so a missed, late, repeated or
/// merged event costs at most a read. That is what lets an implementation be a local wake-up,
/// a database's `LISTEN/NOTIFY`, or polling.
pub trait FeedEvents: Send + Sync + Debug {
    /// `feed` changed, and its last change number is now `last_seq`.
    fn feed_changed(&self, feed: &FeedKey, last_seq: ChangeSeq);

    /// Delivery jobs were queued and may be due.
    fn jobs_due(&self);

    /// Wake-ups for changes of `feed`, from now on.
    fn watch_feed(&self, feed: &FeedKey) -> Box<dyn Wakeup>;

    /// Wake-ups for due jobs, from now on.
    fn watch_jobs(&self) -> Box<dyn Wakeup>;
}

/// A subscription to events: each `wait` resolves once an event came since the previous
/// one resolved (several events may resolve it once).
#[async_trait]
pub trait Wakeup: Send + Debug {
    /// Resolves at the next event, or at once when one came since the last wait.
    async fn wait(&mut self);
}

/// The registry of cross-device apps.
pub trait AppRegistry: Send + Sync + Debug {
    /// The app `client` belongs to.
    fn app_for_client(&self, client: &ClientId) -> Option<App>;
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Before its `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not a trusted issuer.
    #[error("untrusted issuer")]
    WrongIssuer,
    /// `aud` is not this service.
    #[error("wrong audience")]
    WrongAudience,
    /// The algorithm is not allowed (`none`, HS*, or not the key's).
    #[error("algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// No key with the token's `kid`.
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// A required claim is missing or malformed.
    #[error("missing or invalid claim {0}")]
    InvalidClaim(&'static str),
    /// The issuer's keys could not be fetched.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

/// Verifies bearer tokens.
#[async_trait]
pub trait TokenVerifier: Send + Sync + Debug {
    /// The principal a valid token speaks for.
    ///
    /// # Errors
    /// [`TokenError`] naming why the token is refused.
    async fn verify(&self, bearer: &str) -> Result<Principal, TokenError>;
}

/// Sends pushes to one platform's provider.
#[async_trait]
pub trait PushGateway: Send + Sync + Debug {
    /// The platform served.
    fn platform(&self) -> Platform;

    /// Sends one push and classifies the provider's answer.
    async fn send(&self, push: &PushMessage) -> DeliveryOutcome;
}
