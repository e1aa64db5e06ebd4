//! Kubernetes admission webhooks for Rust: an HTTPS server with one path per webhook and a
//! certificate reloaded from files as it rotates, typed validators and defaulters (the JSON
//! patch computed for you), and raw AdmissionReview handlers — what controller-runtime's
//! `webhook` package gives Go operators.
//!
//! # Examples
//!
//! A validating webhook that refuses `:latest` images and a mutating one that labels pods,
//! served on a free loopback port with a self-signed certificate:
//!
//! ```
//! use k8s_openapi::api::core::v1::Pod;
//! use kdev_webhook::admission::{Defaulter, Request, Validator, Verdict};
//! use kdev_webhook::{CancellationToken, Server, certs, server, tls::ServingCert};
//!
//! struct NoLatest;
//!
//! impl Validator<Pod> for NoLatest {
//!     async fn validate_create(&self, _req: &Request, pod: &Pod) -> Verdict {
//!         let images = pod.spec.iter().flat_map(|s| &s.containers).filter_map(|c| c.image.as_deref());
//!         match images.into_iter().find(|i| i.ends_with(":latest")) {
//!             Some(image) => Verdict::deny(format!("image {image} uses the :latest tag")),
//!             None => Verdict::allow(),
//!         }
//!     }
//! }
//!
//! struct Labels;
//!
//! impl Defaulter<Pod> for Labels {
//!     async fn set_defaults(&self, req: &Request, pod: &mut Pod) -> Verdict {
//!         let labels = pod.metadata.labels.get_or_insert_with(Default::default);
//!         labels.entry("team".into()).or_insert_with(|| "platform".into());
//!         // A dry run sees the same mutation; only side effects must be skipped.
//!         let _ = req.dry_run;
//!         Verdict::allow()
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A CA and a certificate it signs; kube-apiserver trusts `bundle.ca_pem()` (the caBundle).
//! let bundle = certs::Settings::default().dns_names(["localhost"]).generate()?;
//! let tls = ServingCert::from_bundle(&bundle)?;
//! let server = Server::builder()
//!     .validating("/validate-pods", NoLatest)
//!     .mutating("/mutate-pods", Labels)
//!     .tls(tls)
//!     .build()?;
//!
//! // Port 0: the system picks a free port, which `local_addr` reports.
//! let bound = server.bind("127.0.0.1:0".parse()?).await?;
//! println!("serving on https://{}", bound.local_addr());
//! let stop = CancellationToken::new();
//! let running = tokio::spawn(bound.serve_with_shutdown(stop.clone().cancelled_owned()));
//! // ... kube-apiserver calls https://<service>/validate-pods and /mutate-pods ...
//! stop.cancel();
//! running.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! | module | what |
//! |---|---|
//! | [`admission`] | the AdmissionReview v1 types, [`Validator`](admission::Validator), [`Defaulter`](admission::Defaulter), raw [`Handler`](admission::Handler) |
//! | [`conversion`] (feature `conversion`) | CRD conversion webhooks: the ConversionReview v1 types, served from kdev-crd's [`Convert`](conversion::Convert) (hub and spoke) |
//! | [`server`] | [`Server`], its builder, limits and timeouts; in-process calls ([`Server::call`], [`server::InProcess`]) for unit tests |
//! | [`tls`] | the serving certificate, from memory or from files reloaded as they change (file watch plus poll); client certificates ([`ClientAuth`](tls::ClientAuth), mutual TLS) |
//! | [`certs`] | a self-signed CA and serving certificate for a Service, written to a directory and rotated before expiry; for several replicas, kept in one Secret they share |
//! | [`config`] | ValidatingWebhookConfiguration, MutatingWebhookConfiguration and a CRD's conversion stanza generated from the server's webhooks |
//! | [`inject`] | the `caBundle` patched into existing webhook configurations and CRDs, as cert-manager's cainjector |
//! | [`metrics`] | controller-runtime's `controller_runtime_webhook_*` and `certwatcher_*` metrics |
//! | `manager` (feature `manager`) | the server as a kdev-core Manager runnable, its metrics in the Manager's `/metrics` |
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `conversion` | yes | CRD conversion webhooks (`Builder::conversion`) |
//! | `manager` | no | `kdev_webhook::manager`: running the server in a kdev-core `Manager` |
//!
//! # Certificates, from nothing to a called webhook
//!
//! 1. [`certs::Rotator::new`] writes a CA and a serving certificate for the webhook's Service
//!    into a directory — for one replica, since each rotator has its own CA —,
//!    [`certs::SharedRotator::new`] does the same from one Secret every replica shares (for any
//!    number of replicas), or cert-manager mounts one there (see [`certs`]' caveats);
//! 2. [`tls::ServingCert::from_dir`] serves that directory and reloads it as it changes;
//! 3. [`config::Configurations`] turns the server's webhooks into webhook configurations
//!    carrying the CA bundle — or [`inject::Injector`] writes the bundle into configurations
//!    deployed with the manifests;
//! 4. [`certs::Rotator::run`] (or [`certs::SharedRotator::run`], which also adopts what another
//!    replica renewed) renews before expiry and [`inject::Injector::run`] follows a renewed CA,
//!    and injects again every minute for configurations created since.
//!
//! # Testing a webhook without a network
//!
//! [`Server::call`] (or [`Builder::build_in_process`](server::Builder::build_in_process), which
//! needs no certificate) hands a request body to the webhook at a path and returns exactly the
//! HTTP response a client would get, so a webhook is unit-tested with a JSON fixture and no
//! socket or TLS.
//!
//! # Untrusted input
//!
//! The server reads requests from the network and treats them as untrusted. Whatever the bytes,
//! it answers with an HTTP response and never panics:
//! 1. a body that is not an AdmissionReview (or, at a conversion path, a ConversionReview) gets
//!    HTTP 400 with a `metav1.Status` saying why;
//! 2. a review whose uid is readable but that is otherwise malformed, or whose object does not
//!    decode into the handler's type, gets a denied review with code 400 and the decode error
//!    (a conversion review: `result.status: Failure` with the error);
//! 3. a body over the limit (7 MiB by default for an AdmissionReview, 64 MiB for a ConversionReview)
//!    gets 413, a slow one 408, an unknown path 404;
//! 4. a handler that panics gets a denied review with code 500 (a converter that panics, a
//!    Failure), and the connection stays open;
//! 5. JSON nested deeper than 128 levels is refused before it is built (HTTP 400), so no input
//!    exhausts the stack, and numbers out of range are decode errors, never wrapped or clamped.
//!
//! These hold for every handler kind and are tested so: property tests feed arbitrary bytes,
//! arbitrary JSON and mutated AdmissionReviews and ConversionReviews (random and missing fields,
//! wrong types, huge numbers, deep nesting) to validating, mutating, raw and conversion webhooks
//! and check every answer's status and shape; garbage sent over TLS leaves the server serving;
//! and a cargo-fuzz target (`kdev-webhook/fuzz`, see the README) does the same under libFuzzer.
//!
//! # Performance
//!
//! A typed handler's cost is mostly decoding the object: the server parses the review in one
//! pass straight into `K`, with no intermediate JSON tree, so a validating review of a 7 KB Pod
//! costs about 35 µs of CPU in process (built as below). A mutating one also parses the object
//! into a JSON tree once (the typed object is read from that tree), encodes the defaulted
//! object and diffs the two: about three times a validating review. `cargo bench -p kdev-webhook --bench admission`
//! measures both over TLS; see the README for the figures.
//!
//! Decoding a Pod allocates a few hundred strings and vectors, so the allocator matters: on
//! glibc, mimalloc as the webhook binary's global allocator took 15–25% off the
//! CPU per review in the admission bench (`--bench admission` runs on mimalloc, `--bench
//! admission_system_alloc` on the system allocator):
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
//! # fn main() {}
//! ```
//!
//! Decoding also moves k8s-openapi's large structs around (a `Container` is 2.3 KB), and
//! cross-crate inlining removes many of those moves: building the webhook binary with
//! whole-program optimisation took another 12% off the CPU per review (the workspace's
//! benchmarks are built so). In the binary's `Cargo.toml`:
//!
//! ```toml
//! [profile.release]
//! lto = "fat"
//! codegen-units = 1
//! ```

#![deny(missing_docs)]

pub mod admission;
pub mod certs;
pub mod config;
#[cfg(feature = "conversion")]
pub mod conversion;
pub mod inject;
#[cfg(feature = "manager")]
pub mod manager;
pub mod metrics;
pub mod server;
pub mod tls;
mod wire;

pub use server::Server;
/// The token [`Server::serve_with_incoming_shutdown`] and the certificate rotators stop on
/// (`cancelled_owned()` is the server's shutdown future), re-exported so that no
/// `tokio-util` dependency of your own is needed.
pub use tokio_util::sync::CancellationToken;
