//! `LocalEvents`: the feed events of one process — one watch channel per feed someone is
//! watching (not a broadcast that wakes every watcher at every write), and one for due jobs.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use notif_core::notification::{ChangeSeq, FeedKey};
use notif_core::ports::{FeedEvents, Wakeup};
use tokio::sync::watch;

/// In-process feed events: what a write announces wakes the watchers of that feed and the
/// dispatchers of this process.
pub struct LocalEvents {
    feeds: Mutex<HashMap<FeedKey, watch::Sender<u64>>>,
    jobs: watch::Sender<u64>,
}

impl fmt::Debug for LocalEvents {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let watched = self
            .feeds
            .lock()
            .map(|feeds| feeds.len())
            .unwrap_or_default();
        formatter
            .debug_struct("LocalEvents")
            .field("watched_feeds", &watched)
            .finish_non_exhaustive()
    }
}

impl Default for LocalEvents {
    fn default() -> Self {
        Self {
            feeds: Mutex::new(HashMap::new()),
            jobs: watch::channel(0).0,
        }
    }
}

impl LocalEvents {
    /// No watchers yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The feeds someone in this process watches now.
    #[cfg(feature = "postgres")]
    pub(crate) fn watched(&self) -> Vec<FeedKey> {
        self.feeds()
            .iter()
            .filter(|(_, sender)| sender.receiver_count() > 0)
            .map(|(feed, _)| feed.clone())
            .collect()
    }

    /// Wakes every watcher and dispatcher: events may have been missed, and each re-reads
    /// from its cursor.
    #[cfg(feature = "postgres")]
    pub(crate) fn wake_all(&self) {
        for sender in self.feeds().values() {
            sender.send_modify(|_| {});
        }
        self.jobs_due();
    }

    fn feeds(&self) -> std::sync::MutexGuard<'_, HashMap<FeedKey, watch::Sender<u64>>> {
        // Every update leaves the map consistent: a panic elsewhere does not poison it.
        self.feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl FeedEvents for LocalEvents {
    fn feed_changed(&self, feed: &FeedKey, last_seq: ChangeSeq) {
        let mut feeds = self.feeds();
        let Some(sender) = feeds.get(feed) else {
            return;
        };
        if sender.receiver_count() == 0 {
            // Its last watcher has gone: forget the feed.
            feeds.remove(feed);
            return;
        }
        sender.send_replace(last_seq.value());
    }

    fn jobs_due(&self) {
        self.jobs
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    fn watch_feed(&self, feed: &FeedKey) -> Box<dyn Wakeup> {
        let mut feeds = self.feeds();
        let receiver = match feeds.get(feed) {
            Some(sender) => sender.subscribe(),
            None => {
                // Feeds whose watchers all left but that never changed since are forgotten
                // here, when the map would grow, so it holds about the feeds watched now.
                if feeds.len() == feeds.capacity() {
                    feeds.retain(|_, sender| sender.receiver_count() > 0);
                }
                let (sender, receiver) = watch::channel(0);
                feeds.insert(feed.clone(), sender);
                receiver
            }
        };
        Box::new(WatchWakeup(receiver))
    }

    fn watch_jobs(&self) -> Box<dyn Wakeup> {
        Box::new(WatchWakeup(self.jobs.subscribe()))
    }
}

/// A wake-up on a watch channel: the channel keeps only the latest value, so events merge.
#[derive(Debug)]
struct WatchWakeup(watch::Receiver<u64>);

#[async_trait]
impl Wakeup for WatchWakeup {
    async fn wait(&mut self) {
        if self.0.changed().await.is_err() {
            // The events are gone (shutdown): nothing will ever come; wait forever like a
            // quiet feed, and let the caller's other branches (shutdown) decide.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use notif_core::ids::{AppId, UserId};

    use super::*;

    fn feed(user: &str) -> FeedKey {
        FeedKey {
            app: AppId::new("demo").unwrap_or_else(|error| panic!("{error}")),
            user: UserId::new(user).unwrap_or_else(|error| panic!("{error}")),
        }
    }

    async fn woke(wakeup: &mut Box<dyn Wakeup>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), wakeup.wait())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_change_wakes_only_the_watchers_of_its_feed_and_merges() {
        let events = LocalEvents::new();
        let mut alice = events.watch_feed(&feed("alice"));
        let mut also_alice = events.watch_feed(&feed("alice"));
        let mut bob = events.watch_feed(&feed("bob"));
        events.feed_changed(&feed("alice"), ChangeSeq::new(1));
        events.feed_changed(&feed("alice"), ChangeSeq::new(2));
        assert!(woke(&mut alice).await);
        assert!(!woke(&mut alice).await, "two events, one wake-up");
        assert!(woke(&mut also_alice).await);
        assert!(!woke(&mut bob).await);
    }

    #[tokio::test]
    async fn feeds_nobody_watches_are_forgotten() {
        let events = LocalEvents::new();
        drop(events.watch_feed(&feed("alice")));
        events.feed_changed(&feed("alice"), ChangeSeq::new(1));
        assert!(events.feeds().is_empty());
        events.feed_changed(&feed("carol"), ChangeSeq::new(1));
        assert!(
            events.feeds().is_empty(),
            "an unwatched feed is not remembered"
        );
    }

    #[tokio::test]
    async fn watchers_that_left_quiet_feeds_are_forgotten_as_others_come() {
        let events = LocalEvents::new();
        for user in 0..1_000 {
            drop(events.watch_feed(&feed(&format!("user{user}"))));
        }
        let _still_watching = events.watch_feed(&feed("alice"));
        assert!(
            events.feeds().len() < 100,
            "{} feeds held",
            events.feeds().len()
        );
    }

    #[tokio::test]
    async fn due_jobs_wake_every_job_watcher() {
        let events = LocalEvents::new();
        let mut first = events.watch_jobs();
        let mut second = events.watch_jobs();
        events.jobs_due();
        assert!(woke(&mut first).await);
        assert!(woke(&mut second).await);
        assert!(!woke(&mut first).await);
    }
}
