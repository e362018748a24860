//! `SecretGate`: what stands between a token request and argon2. A verification costs 19 MiB
//! and many milliseconds, so at most one per core runs at once, each on one of the gate's own
//! threads (others queue briefly, then are told to retry) — on the shared blocking pool every
//! thread that ever ran one would keep its 19 MiB in its malloc arena; a client id or source address that keeps failing waits longer and
//! longer before its next attempt is even checked; and a secret that verified before is
//! recognised by a SHA-256 memo without argon2, so a client's own correct requests pass
//! while someone else floods it with wrong ones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use notif_core::ids::ClientId;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, oneshot};

use super::oauth::{OAuthError, OAuthErrorCode};

/// Failures allowed before a key must wait.
const FREE_FAILURES: u32 = 5;
/// The longest wait a key is given.
const MAX_COOLDOWN: Duration = Duration::from_secs(60);
/// A key's failures are forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(10 * 60);
/// Most keys tracked; beyond it the stalest are dropped.
const MAX_TRACKED: usize = 10_000;

/// Whose failures count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Client(ClientId),
    Source(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When the key may try again: `2^(count - FREE_FAILURES)` seconds after its last
    /// failure, capped.
    fn blocked_until(&self) -> Option<Instant> {
        let over = self.count.checked_sub(FREE_FAILURES)?;
        let wait = Duration::from_secs(1u64 << over.min(6)).min(MAX_COOLDOWN);
        Some(self.last + wait)
    }
}

/// Work for a verifier thread.
type Job = Box<dyn FnOnce() + Send>;

/// The guard around client-secret verification.
#[derive(Debug)]
pub(crate) struct SecretGate {
    verifications: Semaphore,
    /// Feeds the verifier threads; they end when the gate is dropped.
    jobs: Mutex<mpsc::Sender<Job>>,
    queue_wait: Duration,
    failures: Mutex<HashMap<Key, Failures>>,
    /// SHA-256 of `client id, NUL, secret` for each client's last verified secret.
    verified: Mutex<HashMap<ClientId, [u8; 32]>>,
}

fn digest(client: &ClientId, secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(client.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

fn retry_in(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs_f64().ceil().max(1.0) as u64)
}

impl SecretGate {
    /// At most `concurrency` verifications at once; a request waits at most `queue_wait`
    /// for its turn.
    pub(crate) fn new(concurrency: usize, queue_wait: Duration) -> Self {
        let concurrency = concurrency.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..concurrency {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("notif-secrets-{index}"))
                .spawn(move || {
                    loop {
                        let job = queue
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                // Fewer threads only means fewer verifications at once.
                tracing::warn!(%error, "starting a secret-verification thread failed");
            }
        }
        Self {
            verifications: Semaphore::new(concurrency),
            jobs: Mutex::new(jobs),
            queue_wait,
            failures: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `secret` is the one `client` last verified with (no argon2 needed).
    pub(crate) fn recognises(&self, client: &ClientId, secret: &str) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(client)
            .is_some_and(|known| *known == digest(client, secret))
    }

    /// Refuses at once, with the wait, when `client` or `source` failed too often lately.
    ///
    /// # Errors
    /// [`OAuthErrorCode::SlowDown`] with `retry_after`.
    pub(crate) fn admit(
        &self,
        client: Option<&ClientId>,
        source: Option<IpAddr>,
    ) -> Result<(), OAuthError> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let keys = client
            .cloned()
            .map(Key::Client)
            .into_iter()
            .chain(source.map(Key::Source));
        let blocked = keys
            .filter_map(|key| failures.get(&key)?.blocked_until())
            .filter(|until| *until > now)
            .max();
        match blocked {
            Some(until) => Err(OAuthError::new(
                OAuthErrorCode::SlowDown,
                "too many failed client authentications; retry later",
            )
            .retry_after(retry_in(until - now))),
            None => Ok(()),
        }
    }

    /// Runs `verify` on a verifier thread once a turn is free, waiting at most the queue
    /// wait for one.
    ///
    /// # Errors
    /// [`OAuthErrorCode::TemporarilyUnavailable`] when no turn came in time (or no verifier
    /// thread could run it).
    ///
    /// `client` and `source` are checked again once the turn came: failures recorded while
    /// the request queued (a flood arriving at once) refuse it without a verification.
    pub(crate) async fn verify<T: Send + 'static>(
        &self,
        client: Option<&ClientId>,
        source: Option<IpAddr>,
        verify: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, OAuthError> {
        let busy = || {
            OAuthError::new(
                OAuthErrorCode::TemporarilyUnavailable,
                "client authentication is busy; retry shortly",
            )
            .retry_after(Duration::from_secs(1))
        };
        let _turn = match tokio::time::timeout(self.queue_wait, self.verifications.acquire()).await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(busy()),
        };
        self.admit(client, source)?;
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(verify());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .send(job)
            .map_err(|_| busy())?;
        result.await.map_err(|_| busy())
    }

    /// Records a verification's result: a success remembers the secret and clears the keys'
    /// failures; a failure counts against both keys.
    pub(crate) fn record(
        &self,
        client: Option<&ClientId>,
        source: Option<IpAddr>,
        secret: &str,
        succeeded: bool,
    ) {
        let keys: Vec<Key> = client
            .cloned()
            .map(Key::Client)
            .into_iter()
            .chain(source.map(Key::Source))
            .collect();
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if succeeded {
            for key in &keys {
                failures.remove(key);
            }
            if let Some(client) = client {
                self.verified
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(client.clone(), digest(client, secret));
            }
            return;
        }
        let now = Instant::now();
        if failures.len() + keys.len() > MAX_TRACKED {
            failures.retain(|_, failed| now.duration_since(failed.last) < FORGET_AFTER);
            if failures.len() + keys.len() > MAX_TRACKED {
                let mut lasts: Vec<Instant> = failures.values().map(|failed| failed.last).collect();
                lasts.sort_unstable();
                let cutoff = lasts[lasts.len() / 2];
                failures.retain(|_, failed| failed.last > cutoff);
            }
        }
        for key in keys {
            let entry = failures.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(entry.last) >= FORGET_AFTER {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_wait_longer_and_a_success_clears_them() {
        let gate = SecretGate::new(1, Duration::from_millis(10));
        let client = ClientId::new("service").unwrap();
        let source: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..FREE_FAILURES {
            assert!(gate.admit(Some(&client), Some(source)).is_ok());
            gate.record(Some(&client), Some(source), "wrong", false);
        }
        let refused = gate.admit(Some(&client), None).unwrap_err();
        assert_eq!(refused.code, OAuthErrorCode::SlowDown);
        assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
        // The source is blocked for any client; another source is not.
        let other = ClientId::new("other").unwrap();
        assert!(gate.admit(Some(&other), Some(source)).is_err());
        assert!(gate.admit(Some(&other), Some([10, 0, 0, 2].into())).is_ok());
        gate.record(Some(&client), Some(source), "right", true);
        assert!(gate.admit(Some(&client), Some(source)).is_ok());
        assert!(gate.recognises(&client, "right"));
        assert!(!gate.recognises(&client, "wrong"));
    }

    #[test]
    fn the_tracked_keys_stay_bounded() {
        let gate = SecretGate::new(1, Duration::from_millis(10));
        for index in 0..(MAX_TRACKED as u32 + 500) {
            gate.record(None, Some(IpAddr::from(index.to_be_bytes())), "x", false);
        }
        assert!(gate.failures.lock().unwrap().len() <= MAX_TRACKED);
    }

    #[tokio::test]
    async fn verifications_are_bounded_and_a_waiting_request_is_turned_away() {
        let gate = Arc::new(SecretGate::new(1, Duration::from_millis(20)));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let running = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                gate.verify(None, None, move || released.recv().is_ok())
                    .await
            })
        };
        // Wait until the first verification holds the only turn.
        while gate.verifications.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = gate.verify(None, None, || true).await.unwrap_err();
        assert_eq!(refused.code, OAuthErrorCode::TemporarilyUnavailable);
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(true));
        assert_eq!(gate.verify(None, None, || 7).await, Ok(7));
    }
}
