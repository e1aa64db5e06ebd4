//! kdev-core's integration tests: one binary, a module per area.

mod controller;
mod delta_fifo;
mod informer;
mod leader_election;
mod manager;
mod metrics;
mod real_fifo;
mod reflector;
mod secure_metrics;
mod send_sync;
mod storage_version;
mod store;
mod toolkit;
mod wait;
mod workqueue;

/// An API group no other test or run uses, `t<8 random letters>.kdev.dev`, so that CRDs of
/// tests sharing a real cluster never collide.
pub fn unique_group() -> String {
    format!(
        "t{}.kdev.dev",
        (0..8).map(|_| fastrand::lowercase()).collect::<String>()
    )
}
