//! Token-bucket rate limits per app and per (app, user).

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

/// The buckets.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from the app's and the user's buckets, or says how long to wait.
    pub(crate) fn admit(&self, app: &str, user: &str) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let limits = self.limits;
        let app_key = format!("app\u{0}{app}");
        let user_key = format!("user\u{0}{app}\u{0}{user}");
        let app_wait = wait(
            &mut buckets,
            &app_key,
            limits.per_app_per_second,
            limits.per_app_burst,
            now,
        );
        let user_wait = wait(
            &mut buckets,
            &user_key,
            limits.per_user_per_second,
            limits.per_user_burst,
            now,
        );
        match app_wait.max(user_wait) {
            Some(wait) => Err(wait),
            None => {
                for key in [app_key, user_key] {
                    if let Some(bucket) = buckets.get_mut(&key) {
                        bucket.tokens -= 1.0;
                    }
                }
                Ok(())
            }
        }
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
            assert!(limiter.admit("demo", "alice").is_ok());
        }
        let wait = limiter.admit("demo", "alice").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiter.admit("demo", "bob").is_ok());
    }
}
