//! kdev-webhook's integration tests: a real server over HTTPS on loopback.

mod admission;
mod conversion;
mod fixtures;
mod reload;
mod server;
mod support;
mod untrusted;
