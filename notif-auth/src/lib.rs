//! notif-auth: token verification, the app registry and the embedded identity provider.
//!
//! Not implemented yet (issue 4): this crate has no public items so far.
