//! kdev-derive's integration tests: the generated CRD as JSON, and on an API server.

#![recursion_limit = "256"]

mod markers;
mod resource;
mod server;
mod shapes;
mod snapshot;
mod ui;
