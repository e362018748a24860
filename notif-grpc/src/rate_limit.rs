//! Token-bucket rate limits per app and per (app, user), keyed only by validated identities,
//! in a bounded table from which idle buckets are evicted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Rates and bursts.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Requests per second allowed for one app.
    pub per_app_per_second: f64,
    /// The app's burst.
    pub per_app_burst: f64,
    /// Requests per second allowed for one user of one app.
    pub per_user_per_second: f64,
    /// The user's burst.
    pub per_user_burst: f64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_app_per_second: 5_000.0,
            per_app_burst: 10_000.0,
            per_user_per_second: 100.0,
            per_user_burst: 200.0,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Most buckets kept; at the cap, buckets that have refilled (as good as new) are dropped,
/// then the longest unused.
const MAX_BUCKETS: usize = 100_000;

/// The buckets.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limits: RateLimits,
    capacity: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Self::with_capacity(limits, MAX_BUCKETS)
    }

    fn with_capacity(limits: RateLimits, capacity: usize) -> Self {
        Self {
            limits,
            capacity: capacity.max(2),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// How many buckets are held.
    pub(crate) fn buckets(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Takes one token from the app's bucket and, for a resolved user, the user's; or says
    /// how long to wait. `app` and `user` must be validated identities (a verified token's
    /// app, a user a token names or a subscription resolved to): raw request values would let
    /// a client mint buckets at will.
    pub(crate) fn admit(&self, app: &str, user: Option<&str>) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let limits = self.limits;
        if buckets.len() + 2 > self.capacity {
            evict(&mut buckets, &limits, self.capacity, now);
        }
        let app_key = format!("app\u{0}{app}");
        let user_key = user.map(|user| format!("user\u{0}{app}\u{0}{user}"));
        let app_wait = wait(
            &mut buckets,
            &app_key,
            limits.per_app_per_second,
            limits.per_app_burst,
            now,
        );
        let user_wait = user_key.as_deref().and_then(|user_key| {
            wait(
                &mut buckets,
                user_key,
                limits.per_user_per_second,
                limits.per_user_burst,
                now,
            )
        });
        match app_wait.max(user_wait) {
            Some(wait) => Err(wait),
            None => {
                for key in std::iter::once(app_key).chain(user_key) {
                    if let Some(bucket) = buckets.get_mut(&key) {
                        bucket.tokens -= 1.0;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Makes room for two buckets: drops every bucket that has refilled since its last use (a
/// fresh one would be the same), then, if that is not enough, the least recently used half.
fn evict(
    buckets: &mut HashMap<String, Bucket>,
    limits: &RateLimits,
    capacity: usize,
    now: Instant,
) {
    buckets.retain(|key, bucket| {
        let (rate, burst) = if key.starts_with("app\u{0}") {
            (limits.per_app_per_second, limits.per_app_burst)
        } else {
            (limits.per_user_per_second, limits.per_user_burst)
        };
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens + elapsed * rate < burst
    });
    if buckets.len() + 2 > capacity {
        let mut updated: Vec<Instant> = buckets.values().map(|bucket| bucket.updated).collect();
        updated.sort_unstable();
        let cutoff = updated[updated.len() / 2];
        buckets.retain(|_, bucket| bucket.updated > cutoff);
    }
}

/// Refills the bucket and returns how long until it holds a token, if it holds none now.
fn wait(
    buckets: &mut HashMap<String, Bucket>,
    key: &str,
    rate: f64,
    burst: f64,
    now: Instant,
) -> Option<Duration> {
    let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
        tokens: burst,
        updated: now,
    });
    let elapsed = now.duration_since(bucket.updated).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
    bucket.updated = now;
    if bucket.tokens >= 1.0 {
        None
    } else {
        Some(Duration::from_secs_f64(
            (1.0 - bucket.tokens) / rate.max(f64::MIN_POSITIVE),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_over_its_burst_waits_and_others_do_not() {
        let limiter = RateLimiter::new(RateLimits {
            per_user_per_second: 1.0,
            per_user_burst: 3.0,
            ..RateLimits::default()
        });
        for _ in 0..3 {
            assert!(limiter.admit("demo", Some("alice")).is_ok());
        }
        let wait = limiter.admit("demo", Some("alice")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiter.admit("demo", Some("bob")).is_ok());
    }

    #[test]
    fn the_table_stays_bounded_and_busy_buckets_survive() {
        let limiter = RateLimiter::with_capacity(
            RateLimits {
                per_user_per_second: 0.001,
                per_user_burst: 2.0,
                ..RateLimits::default()
            },
            100,
        );
        // A user over its limit stays limited while many others come and go.
        assert!(limiter.admit("demo", Some("busy")).is_ok());
        assert!(limiter.admit("demo", Some("busy")).is_ok());
        for user in 0..10_000 {
            let _ = limiter.admit("demo", Some(&format!("user{user}")));
            assert!(limiter.buckets() <= 100);
            if user % 40 == 0 {
                assert!(limiter.admit("demo", Some("busy")).is_err(), "after {user}");
            }
        }
    }
}
