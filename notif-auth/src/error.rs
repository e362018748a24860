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
    /// The signing-key file could not be read, written or understood.
    #[error("signing key store {path}: {reason}")]
    KeyStore {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}
