//! The identity provider's state: signing keys and refresh-token grants, shared by every
//! node.

use deadpool_postgres::GenericClient;
use notif_core::ids::{ClientId, UserId};
use notif_core::ports::{RefreshGrant, SpentRefresh, StoreError, StoredSigningKey};
use notif_core::time::Timestamp;

use super::tx::{TxError, execute, query};

/// The signing keys, oldest first.
pub(crate) async fn signing_keys(
    client: &impl GenericClient,
) -> Result<Vec<StoredSigningKey>, TxError> {
    let found = query(
        client,
        "SELECT kid, pkcs8 FROM notif_idp_keys ORDER BY position",
        &[],
    )
    .await?;
    Ok(found
        .iter()
        .map(|row| StoredSigningKey {
            kid: row.get(0),
            pkcs8: row.get(1),
        })
        .collect())
}

/// Adds a key after the others — with `first`, only when there is none. Two nodes adding at
/// once collide on the position; the loser's re-run finds the winner's key.
pub(crate) async fn add_signing_key(
    client: &impl GenericClient,
    key: &StoredSigningKey,
    first: bool,
) -> Result<Vec<StoredSigningKey>, TxError> {
    let existing = signing_keys(client).await?;
    if first && !existing.is_empty() {
        return Ok(existing);
    }
    let position = i64::try_from(existing.len()).unwrap_or(i64::MAX);
    execute(
        client,
        "INSERT INTO notif_idp_keys (position, kid, pkcs8) VALUES ($1, $2, $3)",
        &[&position, &key.kid, &key.pkcs8],
    )
    .await?;
    let mut keys = existing;
    keys.push(key.clone());
    Ok(keys)
}

/// Records an unspent grant.
pub(crate) async fn grant_refresh(
    client: &impl GenericClient,
    token_hash: &str,
    grant: &RefreshGrant,
) -> Result<(), TxError> {
    execute(
        client,
        "INSERT INTO notif_idp_grants (token_hash, usr, client, expires_at) VALUES ($1, $2, $3, $4)",
        &[
            &token_hash,
            &grant.user.as_str(),
            &grant.client.as_str(),
            &grant.expires_at.unix_millis(),
        ],
    )
    .await?;
    Ok(())
}

/// Spends a grant: the row is locked, so of two nodes spending the same token at once the
/// second finds it spent.
pub(crate) async fn spend_refresh(
    client: &impl GenericClient,
    token_hash: &str,
    presented_by: &ClientId,
    now: Timestamp,
) -> Result<SpentRefresh, TxError> {
    let found = query(
        client,
        "SELECT usr, client, expires_at, used FROM notif_idp_grants WHERE token_hash = $1 FOR UPDATE",
        &[&token_hash],
    )
    .await?;
    let Some(row) = found.first() else {
        return Ok(SpentRefresh::Unknown);
    };
    let (user, client_id, expires_at, used): (&str, &str, i64, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let expires_at = Timestamp::from_unix_millis(expires_at);
    if let Some(refused) =
        crate::records::refresh_refusal(used, client_id, presented_by, expires_at, now)
    {
        return Ok(refused);
    }
    let corrupt = |error: notif_core::ids::TextError| {
        TxError::Store(StoreError::Corrupt {
            key: format!("grant {token_hash}"),
            reason: error.to_string(),
        })
    };
    let grant = RefreshGrant {
        user: UserId::new(user).map_err(corrupt)?,
        client: ClientId::new(client_id).map_err(corrupt)?,
        expires_at,
    };
    execute(
        client,
        "UPDATE notif_idp_grants SET used = TRUE WHERE token_hash = $1",
        &[&token_hash],
    )
    .await?;
    Ok(SpentRefresh::Granted(grant))
}

/// Removes up to `limit` expired grants; rows another node is sweeping are skipped.
pub(crate) async fn expire_grants(
    client: &impl GenericClient,
    now: Timestamp,
    limit: i64,
) -> Result<usize, TxError> {
    let removed = execute(
        client,
        "DELETE FROM notif_idp_grants WHERE token_hash IN \
           (SELECT token_hash FROM notif_idp_grants WHERE expires_at <= $1 \
            ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&now.unix_millis(), &limit],
    )
    .await?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}
