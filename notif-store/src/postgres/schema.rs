//! Schema migrations: versioned SQL embedded in the binary, applied at start-up.
//!
//! Two nodes may start at the same moment, on engines without advisory locks (CockroachDB
//! ignores them): the version lives in a one-row table, and a migrating node holds that row
//! `FOR UPDATE` for the whole migration, so the other waits, then finds the work done.

use tokio_postgres::Client;

use super::tx::{TxError, is_retryable};
use notif_core::ports::StoreError;

/// Every migration, in order; the schema's version is how many have been applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_identity.sql"),
    include_str!("migrations/0003_lease_owner.sql"),
];

/// The schema version this binary writes.
pub(super) const LATEST: i32 = MIGRATIONS.len() as i32;

/// How often creating the version table is retried: concurrent `CREATE TABLE IF NOT EXISTS`
/// can fail on PostgreSQL with a unique violation of its catalog.
const BOOTSTRAP_ATTEMPTS: u32 = 5;

/// Brings the schema up to [`LATEST`].
///
/// # Errors
/// [`StoreError::Unavailable`] when the database fails, or holds a newer schema than this
/// binary knows (an older binary must not write to it).
pub(super) async fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    create_version_table(client).await?;
    let transaction = client.transaction().await.map_err(TxError::from)?;
    let row = transaction
        .query_one(
            "SELECT version FROM notif_schema WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await
        .map_err(TxError::from)?;
    let version: i32 = row.get(0);
    if version > LATEST {
        return Err(StoreError::Unavailable(format!(
            "the database's notif schema is version {version}, newer than this binary's \
             {LATEST}: run a newer notifd"
        )));
    }
    let from = usize::try_from(version).unwrap_or_default();
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(from) {
        transaction
            .batch_execute(migration)
            .await
            .map_err(TxError::from)?;
        tracing::info!(version = index + 1, "applied a schema migration");
    }
    transaction
        .execute(
            "UPDATE notif_schema SET version = $1 WHERE id = 1",
            &[&LATEST],
        )
        .await
        .map_err(TxError::from)?;
    transaction.commit().await.map_err(TxError::from)?;
    Ok(LATEST)
}

async fn create_version_table(client: &Client) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        let created = client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS notif_schema (id INT PRIMARY KEY, version INT NOT NULL);
                 INSERT INTO notif_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
            )
            .await;
        match created {
            Ok(()) => return Ok(()),
            Err(error) if attempt < BOOTSTRAP_ATTEMPTS && bootstrap_race(&error) => attempt += 1,
            Err(error) => return Err(TxError::from(error).into()),
        }
    }
}

/// A concurrent creation of the same table: retrying finds it.
fn bootstrap_race(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    is_retryable(error)
        || error.code().is_some_and(|code| {
            *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::DUPLICATE_TABLE
        })
}
