//! The embedded identity provider.

mod keys;
pub(crate) mod oauth;
pub(crate) mod provider;
mod secrets;
