//! kdev-core's integration tests: one binary, a module per area.

mod controller;
mod delta_fifo;
mod informer;
mod leader_election;
mod manager;
mod metrics;
mod real_fifo;
mod reflector;
mod send_sync;
mod storage_version;
mod store;
mod toolkit;
mod wait;
mod workqueue;
