//! notif-auth's integration tests: the security table, the on-behalf-of round trip, JWKS
//! fetching from a loopback HTTP server, and a no-panic property for arbitrary tokens.

// Test code unwraps: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod jwks;
mod keys;
mod oauth;
mod properties;
mod security;
