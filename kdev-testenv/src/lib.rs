//! kdev-testenv: an embedded Kubernetes API server for tests, examples and learners.
//!
//! It speaks the real Kubernetes REST protocol (discovery, get, list, watch, create, update,
//! patch including server-side apply, delete) over HTTPS on loopback, so that an unmodified
//! `kube::Client`, kdev and kubectl talk to it. It starts in milliseconds inside the test
//! process, and it injects faults a real cluster cannot: failed requests, latency, dropped
//! watches, compacted history, a restart. Set `KDEV_TEST_KUBECONFIG` to a kubeconfig file and
//! [`TestEnv::start`] returns a client for that real cluster instead: every test written on
//! `TestEnv` runs on both.
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube_client::{Api, api::{ListParams, PostParams}};
//!
//! let env = kdev_testenv::TestEnv::start().await?;
//! let ns = env.namespace().await?;
//! let cms: Api<ConfigMap> = Api::namespaced(env.client(), &ns);
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("greeting".into());
//! cm.data = Some([("hello".to_string(), "world".to_string())].into());
//! cms.create(&PostParams::default(), &cm).await?;
//!
//! let names: Vec<String> = cms.list(&ListParams::default()).await?.items.into_iter()
//!     .filter_map(|c| c.metadata.name).collect();
//! assert!(names.contains(&"greeting".to_string()));
//! # Ok(()) }
//! ```
//!
//! # Modules
//! | item | what it is |
//! |---|---|
//! | [`TestEnv`] | the handle a test holds: client, kubeconfig, namespaces, faults |
//! | [`Server`], [`Config`] | the embedded server itself (what `kdev-testenv serve` runs) |
//! | [`Faults`], [`Failure`] | fault injection |
//! | [`selector`], [`patch`], [`schema`] | label/field selectors, patch types and server-side apply, CRD schemas — usable on their own |
//!
//! # Untrusted input
//! The server is meant for loopback and tests, yet it treats every request as untrusted:
//! malformed paths, bodies, selectors, patches and schemas get a `metav1.Status` error with
//! the code kube-apiserver would send (400, 404, 409, 415, 422, ...), never a panic or a
//! dropped connection. Bodies are limited to 3 MiB.
//!
//! # Admission and conversion webhooks
//! The server calls admission webhooks on every create, update, patch and delete, as
//! kube-apiserver does: mutating webhooks (configurations by name, JSON patches applied in turn,
//! `reinvocationPolicy: IfNeeded`), then its own defaults and validation, then validating webhooks
//! in parallel; with kube-apiserver's matching (rules, `matchPolicy`, namespace and object
//! selectors, CEL `matchConditions`), AdmissionReview, `failurePolicy`, timeouts, dry-run and
//! `sideEffects` rules, warnings and error messages. A CRD converting through a webhook gets a
//! ConversionReview for every object moving between its storage version and another one.
//! Calls are HTTPS with the `caBundle` verified. A webhook's `clientConfig.service` is reached
//! through [`Config::webhook_service`], which maps the Service to a local address (the embedded
//! server has no pod network):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The address where the test serves its webhook (kdev-webhook's Server, say).
//! let webhook: std::net::SocketAddr = "127.0.0.1:9443".parse()?;
//! let config = kdev_testenv::Config::default().webhook_service("webhook-system", "my-webhook", 443, webhook);
//! let env = kdev_testenv::TestEnv::embedded(config).await?;
//! // A configuration whose clientConfig is
//! //   service: { namespace: webhook-system, name: my-webhook, path: /validate }
//! //   caBundle: <the CA that signed a certificate for my-webhook.webhook-system.svc>
//! // now has its webhook called at https://127.0.0.1:9443/validate.
//! # drop(env);
//! # Ok(()) }
//! ```
//!
//! # Differences from kube-apiserver
//! The crate's README (`kdev-testenv/README.md` in the repository) has the full list; in short: no authentication or authorization,
//! no built-in admission plugins (webhooks are called), no controllers besides garbage
//! collection, namespace and CRD clean-up (a Deployment creates no ReplicaSet), JSON only (no
//! protobuf or CBOR), HTTP/1.1 only.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod env;
mod faults;
mod handler;
mod kubeconfig;
mod meta;
pub mod patch;
mod registry;
mod request;
pub mod schema;
pub mod selector;
mod server;
mod status;
mod store;
mod tls;
mod webhook;
mod wire;

pub use env::{Answer, Error, KUBECONFIG_ENV, TEST_NAMESPACE_LABEL, TestEnv};
pub use faults::{Failure, Faults, Unsupported};
pub use server::{Config, Error as ServerError, Server};
