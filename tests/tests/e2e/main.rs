//! End-to-end suites over real sockets: an in-process notifd on an ephemeral port, real
//! HTTP and gRPC clients, and the sandbox providers speaking each push protocol.

// Test code unwraps: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod authz;
mod bad_input;
mod chaos;
mod crash;
mod edge;
mod graph;
mod grpc;
mod security;
mod system;
