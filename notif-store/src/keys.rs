//! Key encodings: order-preserving byte keys for every tree, and their decoding.
//!
//! Text parts are length-prefixed so one feed's keys form an exact prefix (app "a" with user
//! "bc" never shares a prefix with app "ab" and user "c"); numbers are big-endian so keys sort
//! like the numbers; ids are their 16 UUID bytes, which sort by creation for UUID v7.

use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::{ChangeSeq, FeedKey};
use notif_core::time::Timestamp;
use uuid::Uuid;

/// `len(app) | app | len(user) | user`: the prefix of every key of one feed.
pub(crate) fn feed_prefix(feed: &FeedKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + feed.app.as_str().len() + feed.user.as_str().len() + 40);
    push_text(&mut key, feed.app.as_str());
    push_text(&mut key, feed.user.as_str());
    key
}

/// `len(text) | text`. Texts are bounded far below `u16::MAX` bytes by validation.
pub(crate) fn push_text(key: &mut Vec<u8>, text: &str) {
    let length = u16::try_from(text.len()).unwrap_or(u16::MAX);
    key.extend_from_slice(&length.to_be_bytes());
    key.extend_from_slice(&text.as_bytes()[..usize::from(length)]);
}

/// A feed key followed by a suffix.
pub(crate) fn feed_key(feed: &FeedKey, suffix: &[u8]) -> Vec<u8> {
    let mut key = feed_prefix(feed);
    key.extend_from_slice(suffix);
    key
}

/// A notification's key: the feed, then the id with every bit inverted, so a forward scan
/// (which sled does faster than a reverse one) lists the newest first.
pub(crate) fn notification_key(feed: &FeedKey, id: NotificationId) -> Vec<u8> {
    let inverted: Vec<u8> = id.as_bytes().iter().map(|byte| !byte).collect();
    feed_key(feed, &inverted)
}

/// A feed key followed by a length-prefixed text (app notification ids, group names).
pub(crate) fn feed_text_key(feed: &FeedKey, text: &str) -> Vec<u8> {
    let mut key = feed_prefix(feed);
    push_text(&mut key, text);
    key
}

/// A change-log key: the feed, then the sequence number.
pub(crate) fn change_key(feed: &FeedKey, seq: ChangeSeq) -> Vec<u8> {
    feed_key(feed, &seq.value().to_be_bytes())
}

/// Timestamps as big-endian with the sign bit flipped, so negative instants sort first.
pub(crate) fn time_bytes(time: Timestamp) -> [u8; 8] {
    (time.unix_millis() as u64 ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`time_bytes`].
pub(crate) fn time_from_bytes(bytes: [u8; 8]) -> Timestamp {
    Timestamp::from_unix_millis((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// An expiry-index key: expiration, then the feed, then the notification id.
pub(crate) fn expiry_key(expiration: Timestamp, feed: &FeedKey, id: NotificationId) -> Vec<u8> {
    let mut key = time_bytes(expiration).to_vec();
    key.extend_from_slice(&feed_prefix(feed));
    key.extend_from_slice(id.as_bytes());
    key
}

/// A job (and delivery-status) key: notification id, then subscription id.
pub(crate) fn job_key(notification: NotificationId, subscription: SubscriptionId) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(notification.as_bytes());
    key[16..].copy_from_slice(subscription.as_bytes());
    key
}

/// A due-index key: due time, then the job key.
pub(crate) fn due_key(due: Timestamp, job: &[u8; 32]) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&time_bytes(due));
    key[8..].copy_from_slice(job);
    key
}

/// A key of something timed by subscription: expiry, then the subscription id.
pub(crate) fn subscription_expiry_key(expires_at: Timestamp, id: SubscriptionId) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&time_bytes(expires_at));
    key[8..].copy_from_slice(id.as_bytes());
    key
}

/// A channel-identity key: the app, then the channel identity.
pub(crate) fn channel_key(app: &notif_core::ids::AppId, identity: &str) -> Vec<u8> {
    let mut key = Vec::new();
    push_text(&mut key, app.as_str());
    key.extend_from_slice(identity.as_bytes());
    key
}

/// The smallest key greater than every key starting with `prefix`, if one exists.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Reads a fixed-size array at `offset`, if the key is long enough.
pub(crate) fn array_at<const N: usize>(key: &[u8], offset: usize) -> Option<[u8; N]> {
    key.get(offset..offset + N)?.try_into().ok()
}

/// Reads a UUID at `offset`.
pub(crate) fn uuid_at(key: &[u8], offset: usize) -> Option<Uuid> {
    array_at::<16>(key, offset).map(Uuid::from_bytes)
}

/// Splits a key that starts with a feed prefix into the feed and the rest.
pub(crate) fn split_feed(key: &[u8]) -> Option<(FeedKey, &[u8])> {
    let (app, rest) = take_text(key)?;
    let (user, rest) = take_text(rest)?;
    let feed = FeedKey {
        app: notif_core::ids::AppId::new(app).ok()?,
        user: notif_core::ids::UserId::new(user).ok()?,
    };
    Some((feed, rest))
}

fn take_text(key: &[u8]) -> Option<(&str, &[u8])> {
    let length = usize::from(u16::from_be_bytes(array_at::<2>(key, 0)?));
    let text = std::str::from_utf8(key.get(2..2 + length)?).ok()?;
    Some((text, &key[2 + length..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notif_core::ids::{AppId, UserId};

    fn feed(app: &str, user: &str) -> FeedKey {
        FeedKey {
            app: AppId::new(app).unwrap(),
            user: UserId::new(user).unwrap(),
        }
    }

    #[test]
    fn feed_prefixes_never_overlap() {
        let first = feed_prefix(&feed("a", "bc"));
        let second = feed_prefix(&feed("ab", "c"));
        assert!(!first.starts_with(&second) && !second.starts_with(&first));
    }

    #[test]
    fn time_keys_sort_like_time() {
        let times = [-5_000i64, -1, 0, 1, 1_700_000_000_000];
        let keys: Vec<_> = times
            .iter()
            .map(|&t| time_bytes(Timestamp::from_unix_millis(t)))
            .collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        for t in times {
            let time = Timestamp::from_unix_millis(t);
            assert_eq!(time_from_bytes(time_bytes(time)), time);
        }
    }

    #[test]
    fn feed_keys_split_back() {
        let key = feed_key(&feed("demo", "alice"), b"rest");
        let (decoded, rest) = split_feed(&key).unwrap();
        assert_eq!(decoded, feed("demo", "alice"));
        assert_eq!(rest, b"rest");
        assert!(split_feed(&[0, 9, b'x']).is_none());
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255, 255]), None);
    }
}
