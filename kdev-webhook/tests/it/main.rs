//! kdev-webhook's integration tests: a real server over HTTPS on loopback.

mod admission;
mod certs;
mod certs_shared;
mod client_auth;
mod config;
mod conversion;
mod fixtures;
mod inject;
mod metrics;
mod reload;
mod server;
mod support;
mod untrusted;
mod watch;
