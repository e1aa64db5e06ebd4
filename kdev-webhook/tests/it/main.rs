//! kdev-webhook's integration tests: a real server over HTTPS on loopback.

mod admission;
mod reload;
mod server;
mod support;
