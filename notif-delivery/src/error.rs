//! The crate's error: what can go wrong setting up an adapter.

/// Why an adapter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A credential (key, service account, secret) is malformed.
    #[error("invalid {what} credential: {reason}")]
    InvalidCredential {
        /// Which credential.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}
