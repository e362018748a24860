//! Transactions: each in a bounded, jittered retry loop for the failures a concurrent engine
//! reports routinely (serialization failures, deadlocks), and the statement helpers every
//! query goes through (prepared once per connection).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use std::hash::{BuildHasher, Hasher};

use deadpool_postgres::{GenericClient, Pool, Transaction};
use futures_util::future::try_join_all;
use notif_core::ports::StoreError;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

/// The most attempts a transaction gets.
const MAX_ATTEMPTS: u32 = 12;
/// The first back-off between attempts; it doubles, up to [`MAX_BACKOFF`], with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Why a transaction's body failed: the database, or a store rule (not found, a limit, a
/// corrupt record), which is final.
#[derive(Debug)]
pub(crate) enum TxError {
    /// The database or the connection failed.
    Database(tokio_postgres::Error),
    /// A store rule refused the operation, or a record could not be decoded.
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(error: tokio_postgres::Error) -> Self {
        TxError::Database(error)
    }
}

impl From<StoreError> for TxError {
    fn from(error: StoreError) -> Self {
        TxError::Store(error)
    }
}

impl From<notif_core::feed::FeedError> for TxError {
    fn from(error: notif_core::feed::FeedError) -> Self {
        TxError::Store(error.into())
    }
}

impl From<TxError> for StoreError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::Store(error) => error,
            TxError::Database(error) => StoreError::Unavailable(describe(&error)),
        }
    }
}

/// A database error in one line: the server's message when it sent one.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("database: {} ({})", db.message(), db.code().code()),
        None => format!("database: {error}"),
    }
}

/// Whether re-running the whole transaction may succeed: a serialization failure, a
/// deadlock, or a unique violation from a concurrent insert of the same key (the re-run
/// reads the row the other transaction wrote).
pub(crate) fn is_retryable(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::UNIQUE_VIOLATION
    })
}

/// A transaction body: given the open transaction, its future.
pub(crate) type Body<'t, T> = Pin<Box<dyn Future<Output = Result<T, TxError>> + Send + 't>>;

/// Runs `body` in a transaction, committing it; re-runs it from the start after a
/// retryable failure (of the body or of the commit), at most [`MAX_ATTEMPTS`] times.
pub(crate) async fn transact<T, F>(pool: &Pool, mut body: F) -> Result<T, StoreError>
where
    F: for<'t> FnMut(&'t Transaction<'t>) -> Body<'t, T>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let mut client = pool
            .get()
            .await
            .map_err(|error| StoreError::Unavailable(format!("database: {error}")))?;
        let outcome = async {
            let transaction = client.transaction().await?;
            let value = body(&transaction).await?;
            transaction.commit().await?;
            Ok(value)
        }
        .await;
        match outcome {
            Ok(value) => return Ok(value),
            Err(TxError::Database(error)) if attempt < MAX_ATTEMPTS && is_retryable(&error) => {
                tracing::debug!(attempt, error = %describe(&error), "retrying a transaction");
            }
            Err(error) => return Err(error.into()),
        }
        drop(client);
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt += 1;
    }
}

/// `backoff` scaled by a factor in [0.5, 1.5), so transactions that collided do not collide
/// again in step.
fn jittered(backoff: Duration) -> Duration {
    // Each `RandomState` is seeded afresh: a cheap source of noise that needs no crate.
    let noise = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 1_000;
    backoff.mul_f64(0.5 + noise as f64 / 1_000.0)
}

/// Prepares those of `statements` the connection has not prepared yet (together, in one
/// round trip). Statements sent together run in the order they were sent; one not prepared
/// yet would prepare first and be overtaken, so a caller whose statements must run in order
/// prepares them first.
pub(crate) async fn prepare(
    client: &impl GenericClient,
    statements: &[&str],
) -> Result<(), TxError> {
    try_join_all(statements.iter().map(|sql| client.prepare_cached(sql))).await?;
    Ok(())
}

/// Runs `sql` (prepared once per connection) and returns its rows.
pub(crate) async fn query(
    client: &impl GenericClient,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, TxError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, parameters).await?)
}

/// Runs `sql` (prepared once per connection) and returns how many rows it touched.
pub(crate) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<u64, TxError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, parameters).await?)
}

/// Runs `body` on a pooled connection, outside a transaction: for reads of one statement
/// (or of statements that need not agree with each other).
pub(crate) async fn read<T, F>(pool: &Pool, body: F) -> Result<T, StoreError>
where
    F: for<'c> FnOnce(&'c deadpool_postgres::Client) -> Body<'c, T>,
{
    let client = pool
        .get()
        .await
        .map_err(|error| StoreError::Unavailable(format!("database: {error}")))?;
    Ok(body(&client).await?)
}
