//! notif-store's integration tests: the exported contract suite against both stores (its
//! cases and its model-based property test, from `notif_store::contract`), what only the sled
//! store promises (its leases voided at open), what only the PostgreSQL store promises, and
//! the SIGKILL crash test.

// Test code unwraps: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod crash;
mod postgres;
mod sled;

mod memory_contract {
    notif_store::contract_suite!(notif_store::contract::MemoryFactory);
}

mod sled_contract {
    notif_store::contract_suite!(notif_store::contract::SledFactory::new());
}

mod postgres_contract {
    notif_store::contract_suite!(notif_store::contract::PostgresFactory::new(
        notif_store::EventDelivery::Notify
    ));
}
