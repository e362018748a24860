//! notif-grpc: the gRPC and Graph-compatible HTTP server, and the `notifd` binary.
//!
//! Not implemented yet (issue 6): this crate has no public items so far.
