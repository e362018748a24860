//! The crate's error for configuration and key storage.

/// Why the app registry or the identity provider could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid configuration {field}: {reason}")]
    InvalidConfig {
        /// The offending field, e.g. `apps[0].host_name`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A signing key (stored, or in a legacy key file) could not be understood.
    #[error("signing key store {path}: {reason}")]
    KeyStore {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The store holding the identity provider's state failed.
    #[error("identity store: {0}")]
    Store(#[from] notif_core::ports::StoreError),
}
