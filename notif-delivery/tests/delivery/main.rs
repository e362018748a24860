//! notif-delivery's integration tests: every adapter against the loopback sandbox providers
//! (rendering, error classification, provider tokens) and the dispatcher over a real store.

// Test code unwraps: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod adapters;
mod dispatcher;
mod fidelity;
mod fixtures;
