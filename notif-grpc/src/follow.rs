//! Following a feed's changes live: the one loop behind gRPC `WatchChanges` and the HTTP
//! event stream — pages of changes after a cursor, then a wait for the feed's next wake-up —
//! with a bound on the streams one user holds open, and an end for a reader that stops
//! reading (nothing is buffered for it beyond one small channel).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notif_core::notification::{ChangeSeq, FeedKey, Notification};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::state::{Authenticated, ServerState};

/// Changes read ahead of the reader.
const READ_AHEAD: usize = 64;
/// Changes read from the store at a time.
const PAGE: usize = 100;

/// The live streams each user holds open on this node, at most `per_user` at once, and how
/// long a change waits for a reader that stopped reading before its stream is ended.
#[derive(Debug)]
pub(crate) struct StreamSlots {
    held: Mutex<HashMap<FeedKey, usize>>,
    per_user: usize,
    stall: Duration,
}

/// One open stream's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<StreamSlots>,
    feed: FeedKey,
}

impl StreamSlots {
    /// Room for `per_user` streams per user, each ended when its reader leaves a change
    /// unread for `stall`.
    pub(crate) fn new(per_user: usize, stall: Duration) -> Arc<Self> {
        Arc::new(Self {
            held: Mutex::new(HashMap::new()),
            per_user,
            stall,
        })
    }

    /// A place for one more stream of `feed`.
    ///
    /// # Errors
    /// [`ApiError::TooManyStreams`] when the user holds the most already.
    pub(crate) fn take(self: &Arc<Self>, feed: &FeedKey) -> Result<Slot, ApiError> {
        let mut held = self.held();
        let count = held.entry(feed.clone()).or_default();
        if *count >= self.per_user {
            return Err(ApiError::TooManyStreams {
                limit: self.per_user,
            });
        }
        *count += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            feed: feed.clone(),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<FeedKey, usize>> {
        // Every update leaves the map consistent: a panic elsewhere does not poison it.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        if let Some(count) = held.get_mut(&self.feed) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.feed);
            }
        }
    }
}

/// Follows `feed` for `caller` after `cursor`: every change, in order, as it is stored, until
/// the reader goes away, leaves a change unread for the slots' stall time, or the server
/// shuts down. A failure is the stream's last item.
pub(crate) fn follow(
    context: Arc<ServerState>,
    caller: Authenticated,
    feed: &FeedKey,
    mut cursor: ChangeSeq,
    slot: Slot,
) -> mpsc::Receiver<Result<Notification, ApiError>> {
    // Watch before the first read, so a change between the read and the wait is not missed.
    let mut changes = context.events.watch_feed(feed);
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        let stall = slot.slots.stall;
        let _slot = slot;
        let mut shutting_down = context.shutting_down.clone();
        let send = |item| async {
            matches!(
                tokio::time::timeout(stall, sender.send(item)).await,
                Ok(Ok(()))
            )
        };
        loop {
            let page = match context
                .service
                .changes_since(caller.caller(), cursor, PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    send(Err(ApiError::from(error))).await;
                    return;
                }
            };
            for change in page.changes {
                if !send(Ok(change)).await {
                    return;
                }
            }
            cursor = page.cursor;
            if page.has_more {
                continue;
            }
            tokio::select! {
                () = changes.wait() => {}
                () = sender.closed() => return,
                _ = shutting_down.changed() => return,
            }
        }
    });
    receiver
}
