//! `VerifiedTokens`: a small memo of bearer tokens whose signature and claims were verified,
//! so a client reusing its access token (as clients do, for an hour) pays for one signature
//! check, not one per request.
//!
//! An entry is good until the earlier of the token's own expiry (with the leeway) and a short
//! time to live, so a signing key withdrawn from an issuer's JWKS stops being honoured within
//! that time. Failures are never remembered.

use std::collections::HashMap;
use std::sync::Mutex;

use notif_core::app::Principal;

/// How long a verification is trusted without checking the signature again, in seconds.
pub(crate) const TIME_TO_LIVE_SECS: u64 = 60;
/// The most tokens remembered; when full, lapsed entries go first, then everything.
const CAPACITY: usize = 4096;

/// Tokens verified recently, with the principal each names and when the memo lapses.
#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<HashMap<String, (Principal, u64)>>,
}

impl VerifiedTokens {
    /// The principal of `token` if it was verified and its entry has not lapsed at `now`
    /// (Unix seconds).
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(token)
            .filter(|(_, lapses_at)| now < *lapses_at)
            .map(|(principal, _)| principal.clone())
    }

    /// Remembers that `token` verified at `now` as `principal`, and is valid until
    /// `expires_at` (Unix seconds, leeway included).
    pub(crate) fn insert(&self, token: &str, principal: Principal, now: u64, expires_at: u64) {
        let lapses_at = expires_at.min(now.saturating_add(TIME_TO_LIVE_SECS));
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, entry_lapses_at)| now < *entry_lapses_at);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token.to_owned(), (principal, lapses_at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notif_core::ids::ClientId;

    fn principal(client: &str) -> Principal {
        Principal {
            user: None,
            client_id: ClientId::new(client).unwrap(),
            scopes: Default::default(),
            roles: Default::default(),
        }
    }

    #[test]
    fn an_entry_lapses_at_the_token_expiry_or_the_time_to_live_whichever_is_first() {
        let memo = VerifiedTokens::default();
        memo.insert("short", principal("a"), 1_000, 1_010);
        memo.insert("long", principal("b"), 1_000, 5_000);

        assert_eq!(memo.get("short", 1_009), Some(principal("a")));
        assert_eq!(memo.get("short", 1_010), None, "the token expired");
        assert_eq!(
            memo.get("long", 1_000 + TIME_TO_LIVE_SECS - 1),
            Some(principal("b"))
        );
        assert_eq!(
            memo.get("long", 1_000 + TIME_TO_LIVE_SECS),
            None,
            "checked again after the time to live"
        );
        assert_eq!(memo.get("never-seen", 1_000), None);
    }

    #[test]
    fn a_full_memo_makes_room() {
        let memo = VerifiedTokens::default();
        for index in 0..CAPACITY {
            memo.insert(&format!("t{index}"), principal("a"), 1_000, 2_000);
        }
        memo.insert("newest", principal("b"), 1_000, 2_000);
        assert_eq!(memo.get("newest", 1_001), Some(principal("b")));
        assert!(memo.entries.lock().unwrap().len() <= CAPACITY);
    }
}
