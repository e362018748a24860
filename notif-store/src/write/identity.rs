//! The identity provider's writes: signing keys and refresh-token grants.

use std::ops::{Bound, ControlFlow};

use notif_core::ids::ClientId;
use notif_core::ports::{RefreshGrant, SpentRefresh, StoreError, StoredSigningKey};
use notif_core::time::Timestamp;

use crate::engine::{Engine, Tree};
use crate::keys;
use crate::records::{self, GrantRecord, SigningKeyRecord};
use crate::tx::{Reader, Tx};

/// The signing keys, oldest first.
pub(crate) fn signing_keys<R: Reader>(reader: &R) -> Result<Vec<StoredSigningKey>, StoreError> {
    let mut found = Vec::new();
    let mut failure = None;
    reader.scan(
        Tree::IdpKeys,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |key, value| match records::decode::<SigningKeyRecord>(key, value) {
            Ok(record) => {
                found.push(StoredSigningKey::from(record));
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        },
    )?;
    failure.map_or(Ok(found), Err)
}

/// Adds a signing key after the others — with `first`, only when there is none.
pub(crate) fn add_signing_key<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    key: StoredSigningKey,
    first: bool,
) -> Result<Vec<StoredSigningKey>, StoreError> {
    let mut keys = signing_keys(&*tx)?;
    if first && !keys.is_empty() {
        return Ok(keys);
    }
    let position = u64::try_from(keys.len()).unwrap_or(u64::MAX);
    tx.put(
        Tree::IdpKeys,
        position.to_be_bytes().to_vec(),
        &SigningKeyRecord::from(&key),
    );
    keys.push(key);
    Ok(keys)
}

/// Records an unspent grant.
pub(crate) fn grant_refresh<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    token_hash: &str,
    grant: &RefreshGrant,
) {
    tx.put(
        Tree::IdpGrants,
        token_hash.as_bytes().to_vec(),
        &GrantRecord::new(grant),
    );
    tx.put_raw(
        Tree::IdpGrantExpiry,
        grant_expiry_key(grant.expires_at, token_hash),
        &[],
    );
}

/// Spends a grant.
pub(crate) fn spend_refresh<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    token_hash: &str,
    client: &ClientId,
    now: Timestamp,
) -> Result<SpentRefresh, StoreError> {
    let key = token_hash.as_bytes();
    let Some(mut record) = tx.record::<GrantRecord>(Tree::IdpGrants, key)? else {
        return Ok(SpentRefresh::Unknown);
    };
    let spent = record.spend(key, client, now)?;
    if matches!(spent, SpentRefresh::Granted(_)) {
        tx.put(Tree::IdpGrants, key.to_vec(), &record);
    }
    Ok(spent)
}

/// Removes up to `limit` grants expired at `now`; returns how many.
pub(crate) fn expire_grants<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    now: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    let expired = super::queue::due_keys(&*tx, Tree::IdpGrantExpiry, now, limit)?;
    let removed = expired.len();
    for expiry_key in expired {
        if let Some(hash) = expiry_key.get(8..) {
            tx.delete(Tree::IdpGrants, hash.to_vec());
        }
        tx.delete(Tree::IdpGrantExpiry, expiry_key);
    }
    Ok(removed)
}

fn grant_expiry_key(expires_at: Timestamp, token_hash: &str) -> Vec<u8> {
    let mut key = keys::time_bytes(expires_at).to_vec();
    key.extend_from_slice(token_hash.as_bytes());
    key
}
