//! End-to-end suites over real sockets: an in-process notifd on an ephemeral port, real
//! HTTP and gRPC clients, and the sandbox providers speaking each push protocol.

// Test code unwraps: a panic is the failure report.
#![allow(clippy::unwrap_used)]

/// Runs each named suite function (`async fn name(store: TestStore)`) as a test on every
/// store: `on_sled::name` and `on_postgres::name`.
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod on_sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(notif_tests::TestStore::Sled).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(notif_tests::TestStore::Postgres).await;
                }
            )*
        }
    };
}

mod authz;
mod bad_input;
mod browser;
mod chaos;
mod cluster;
mod crash;
mod edge;
mod fallback;
mod graph;
mod grpc;
mod openapi;
mod outage;
mod security;
mod stream;
mod system;
